/* The frontend's end of a vhost-user socket (QEMU's role): messages with
 * their fds, replies, REPLY_ACK, and the set-up steps a frontend takes.
 * Every call returns 0 (or a size) or a negative errno; with `who` set,
 * failures are also printed on stderr as "who: ...", naming the request. */
#ifndef VUF_CONN_H
#define VUF_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vuf_wire.h"

/* How long a reply may take (SO_RCVTIMEO on the socket). */
#define VUF_REPLY_TIMEOUT_S 10

struct vuf_conn {
	int sock;
	const char *who;       /* prefix of printed errors; NULL: silent */
	uint64_t dev_features; /* GET_FEATURES, by vuf_negotiate */
	uint64_t protocol;     /* negotiated protocol features */
	unsigned max_queues;   /* GET_QUEUE_NUM, or 1 without MQ */
};

/* The spec's name of a request (GET_FEATURES, ...), "?" if unknown. */
const char *vuf_request_name(uint32_t request);

/* Connect to a backend's socket, retrying for up to timeout_ms while it is
 * not there yet (a backend still starting); 0: one attempt. */
int vuf_connect(struct vuf_conn *c, const char *path, int timeout_ms,
		const char *who);
void vuf_close(struct vuf_conn *c);

/* One message as given: the header says `h->size`, `len` payload bytes
 * follow (fewer makes a truncated message), fds ride on it. Returns the
 * bytes sent or -errno. For frontends that break the rules on purpose. */
ssize_t vuf_send_raw(int sock, const struct vhost_user_hdr *h,
		     const void *payload, size_t len, const int *fds,
		     unsigned n_fds);
/* One well-formed message: 0 or -errno (-EIO: sent in part). */
int vuf_send(struct vuf_conn *c, uint32_t request, uint32_t flags,
	     const void *payload, uint32_t size, const int *fds,
	     unsigned n_fds);
/* One recvmsg (flags as recvmsg's): up to len bytes; fds that come with
 * them go to fds[] (*n_fds of them), any beyond max_fds are closed.
 * Returns the bytes read (0: the peer closed) or -errno. */
ssize_t vuf_recvmsg(int sock, void *buf, size_t len, int flags, int *fds,
		    unsigned max_fds, unsigned *n_fds);
/* One message from the backend, waiting up to timeout_ms for it to begin
 * (<0: no limit but the socket's). Its payload goes to payload (max
 * bytes), its first fd to *fd (if fd is not NULL; -1 if none), other fds
 * are closed. Returns the payload size, -ETIMEDOUT, -ECONNRESET (closed),
 * -EMSGSIZE (payload over max, not read). */
int vuf_recv(struct vuf_conn *c, struct vhost_user_hdr *h, void *payload,
	     size_t max, int *fd, int timeout_ms);

/* The reply to `request`: a reply header for it and a payload of exactly
 * size bytes (exact) or at most size; -EPROTO otherwise. */
int vuf_reply(struct vuf_conn *c, uint32_t request, void *payload,
	      uint32_t size, bool exact);
/* A request without a reply of its own. With REPLY_ACK negotiated it asks
 * for one and a non-zero ack is -EREMOTEIO ("backend refused"). */
int vuf_request(struct vuf_conn *c, uint32_t request, const void *payload,
		uint32_t size, const int *fds, unsigned n_fds);
/* The same, always with NEED_REPLY: *ack is the backend's answer (0 ok). */
int vuf_request_acked(struct vuf_conn *c, uint32_t request, const void *payload,
		      uint32_t size, const int *fds, unsigned n_fds,
		      uint64_t *ack);
int vuf_get_u64(struct vuf_conn *c, uint32_t request, uint64_t *v);
int vuf_set_u64(struct vuf_conn *c, uint32_t request, uint64_t v);

/* GET_FEATURES, then with PROTOCOL_FEATURES offered GET/SET_PROTOCOL_
 * FEATURES (what is offered of `want`) and with MQ GET_QUEUE_NUM, then
 * SET_OWNER: QEMU's order in vhost_dev_init. */
int vuf_negotiate(struct vuf_conn *c, uint64_t want_protocol);
int vuf_set_features(struct vuf_conn *c, uint64_t features);
/* GET_CONFIG of len bytes at off (CONFIG must be negotiated). */
int vuf_get_config(struct vuf_conn *c, uint32_t off, void *buf, uint32_t len);

/* A memory region as a frontend shares it: fd mapped from mmap_offset
 * covers [gpa, gpa+size) at the frontend's address uaddr. */
struct vuf_region {
	int fd;
	uint64_t gpa, size, uaddr, mmap_offset;
};

struct vhost_user_memory_region vuf_region_wire(const struct vuf_region *r);
int vuf_set_mem_table(struct vuf_conn *c, const struct vuf_region *r,
		      unsigned n);

/* SET_VRING_NUM/BASE/ENABLE: a vring state. */
int vuf_set_vring_state(struct vuf_conn *c, uint32_t request, unsigned index,
			uint32_t num);
int vuf_set_vring_addr(struct vuf_conn *c, const struct vhost_vring_addr *a);
/* SET_VRING_KICK/CALL/ERR; fd < 0 sends the "no fd" flag. */
int vuf_set_vring_fd(struct vuf_conn *c, uint32_t request, unsigned index,
		     int fd);

/* A split or packed ring at the frontend's addresses, started at base. */
struct vuf_vring_setup {
	unsigned index;
	unsigned num;
	uint32_t base;
	uint64_t desc_uaddr, avail_uaddr, used_uaddr;
	int kick_fd, call_fd;
};

/* NUM, BASE, ADDR, CALL, KICK, then ENABLE 1 when PROTOCOL_FEATURES was
 * offered (rings start disabled then, "Ring states"). CALL goes before
 * KICK: a backend may start the ring on the kick fd. */
int vuf_setup_vring(struct vuf_conn *c, const struct vuf_vring_setup *s);
/* Stops the ring; *base is where the backend stood. */
int vuf_get_vring_base(struct vuf_conn *c, unsigned index, uint32_t *base);

/* GET_INFLIGHT_FD for nq queues of qs: the backend's description and fd. */
int vuf_get_inflight_fd(struct vuf_conn *c, uint16_t nq, uint16_t qs,
			struct vhost_user_inflight *out, int *fd);
int vuf_set_inflight_fd(struct vuf_conn *c,
			const struct vhost_user_inflight *in, int fd);

#endif
