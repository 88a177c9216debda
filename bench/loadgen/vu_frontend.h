/* vhost-user frontend side (QEMU's role in docs/interop/vhost-user.rst),
 * as much as the load generator needs: negotiation, memory table, vrings.
 * Errors are printed here with the request's name; callers only propagate. */
#ifndef LOADGEN_VU_FRONTEND_H
#define LOADGEN_VU_FRONTEND_H

#include <stdint.h>

/* Wire constants of vhost-user.rst; the kernel uapi has no header for them. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

enum vu_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
};

#define VHOST_USER_PROTOCOL_F_MQ	0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG	9

struct vu_front {
	int sock;
	uint64_t dev_features; /* offered by the backend */
	uint64_t protocol;     /* negotiated protocol features */
	unsigned max_queues;   /* GET_QUEUE_NUM, or 1 without MQ */
};

struct vu_vring_setup {
	unsigned index;
	unsigned num;
	uint64_t desc_uaddr, avail_uaddr,
		used_uaddr; /* our virtual addresses */
	int kick_fd, call_fd;
};

/* Connects, retrying for up to timeout_ms while the socket is not there
 * yet (a backend that is still starting). */
int vu_connect(struct vu_front *f, const char *path, int timeout_ms);
/* GET_FEATURES, protocol features (MQ, REPLY_ACK, CONFIG), GET_QUEUE_NUM,
 * SET_OWNER: QEMU's order in vhost_dev_init. */
int vu_negotiate(struct vu_front *f);
int vu_get_config(struct vu_front *f, uint32_t off, void *buf, uint32_t len);
int vu_set_features(struct vu_front *f, uint64_t features);
/* One region: fd mapped at offset 0 covers [gpa, gpa+size) at uaddr. */
int vu_set_mem_table(struct vu_front *f, int fd, uint64_t gpa, uint64_t size,
		     uint64_t uaddr);
/* NUM, BASE 0, ADDR, CALL, KICK, ENABLE 1. */
int vu_setup_vring(struct vu_front *f, const struct vu_vring_setup *s);
/* Stops the ring; *base is where the backend stood. */
int vu_get_vring_base(struct vu_front *f, unsigned index, uint32_t *base);
void vu_close(struct vu_front *f);

#endif
