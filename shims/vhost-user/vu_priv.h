/* What the vhost-user shim's files share: the wire structures of QEMU's
 * docs/interop/vhost-user.rst, the backend and per-ring state. Private to
 * shims/vhost-user; nothing here knows which device it serves. */
#ifndef VIRTIOD_SHIM_VU_PRIV_H
#define VIRTIOD_SHIM_VU_PRIV_H

#include <linux/vhost_types.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "vhost_user.h"

/* ------------------------------------------------------------ protocol */

/* vhost-user.rst "Header": version in the low 2 bits, then REPLY, NEED_REPLY */
#define VU_VERSION	     0x1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY	     (1u << 2)
#define VU_FLAG_NEED_REPLY   (1u << 3)

/* "Communication": VHOST_USER_F_PROTOCOL_FEATURES is feature bit 30. */
#define VU_F_PROTOCOL_FEATURES 30

enum vu_protocol_feature {
	VU_PF_MQ = 0,
	VU_PF_LOG_SHMFD = 1,
	VU_PF_REPLY_ACK = 3,
	VU_PF_BACKEND_REQ = 5,
	VU_PF_CONFIG = 9,
	VU_PF_INFLIGHT_SHMFD = 12,
	VU_PF_RESET_DEVICE = 13,
	VU_PF_CONFIGURE_MEM_SLOTS = 15,
	VU_PF_STATUS = 16,
};

/* What this backend offers ("Protocol features"). */
#define VU_PROTOCOL_FEATURES                                                   \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_LOG_SHMFD) |                      \
	 (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_BACKEND_REQ) |             \
	 (1ull << VU_PF_CONFIG) | (1ull << VU_PF_INFLIGHT_SHMFD) |             \
	 (1ull << VU_PF_RESET_DEVICE) | (1ull << VU_PF_CONFIGURE_MEM_SLOTS) |  \
	 (1ull << VU_PF_STATUS))

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SET_BACKEND_REQ_FD = 21,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_SET_STATUS = 39,
	VU_GET_STATUS = 40,
};

/* Back-end message types (sent on the backend request channel). */
#define VU_BACKEND_CONFIG_CHANGE_MSG 2

#define VU_MAX_FDS		 8 /* VHOST_MEMORY_BASELINE_NREGIONS: fds per message */
#define VU_MAX_MEM_SLOTS	 509 /* GET_MAX_MEM_SLOTS, as QEMU's KVM limit */
#define VU_MAX_CONFIG_SIZE	 256
#define VU_VRING_IDX_MASK	 0xffu	   /* SET_VRING_KICK/CALL/ERR payload */
#define VU_VRING_NOFD_MASK	 (1u << 8) /* "invalid FD flag" */
#define VU_LOG_PAGE		 0x1000u   /* "Migration": VHOST_LOG_PAGE */
#define VU_CONFIG_TYPE_MIGRATION 1	   /* SET_CONFIG flags */

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

/* "Memory regions description" */
struct vu_region_wire {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_mem_table_wire {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region_wire regions[VU_MAX_FDS];
};

/* "Single memory region description" */
struct vu_mem_reg_wire {
	uint64_t padding;
	struct vu_region_wire region;
};

/* "Log description" */
struct vu_log_wire {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

/* "Virtio device config space" */
struct vu_config_wire {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VU_MAX_CONFIG_SIZE];
};
#define VU_CONFIG_HDR_SIZE offsetof(struct vu_config_wire, payload)

/* "Inflight description" (24 bytes with C padding, as QEMU sends it) */
struct vu_inflight_wire {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

union vu_payload {
	uint64_t u64;
	struct vhost_vring_state state;
	struct vhost_vring_addr addr;
	struct vu_mem_table_wire mem;
	struct vu_mem_reg_wire memreg;
	struct vu_log_wire log;
	struct vu_config_wire config;
	struct vu_inflight_wire inflight;
	uint8_t raw[sizeof(struct vu_config_wire)];
};

#define VU_MAX_PAYLOAD sizeof(union vu_payload)

/* A request as received; fds are owned until a handler takes one (sets it
 * to -1), the rest are closed by the dispatcher. */
struct vu_msg {
	struct vu_hdr hdr;
	union vu_payload p;
	int fds[VU_MAX_FDS];
	unsigned n_fds;
};

/* A reply to send. */
struct vu_reply {
	struct vu_hdr hdr;
	union vu_payload p;
	int fds[1];
	unsigned n_fds;
};

/* -------------------------------------------------------------- inflight */

/* vhost-user.rst "Inflight I/O tracking", split layout. */
struct vu_inflight_desc_split {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct vu_inflight_split {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vu_inflight_desc_split desc[];
};

/* Packed layout. */
struct vu_inflight_desc_packed {
	uint8_t inflight;
	uint8_t padding;
	uint16_t next;
	uint16_t last;
	uint16_t num;
	uint64_t counter;
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct vu_inflight_packed {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
	struct vu_inflight_desc_packed desc[];
};

/* Per-ring inflight tracking. Set up by the control thread while the ring
 * is stopped; used only by the queue thread (hooks) while it runs. */
struct vu_inflight_ring {
	bool on;
	bool packed;
	uint16_t desc_num; /* entries in the region (>= ring size) */
	uint16_t num;	   /* ring size */
	uint64_t counter;  /* next submission counter */
	struct vu_inflight_split *split;
	struct vu_inflight_packed *pk;
	/* Local copies, so a frontend scribbling on the shared region never
	 * sends us outside it: the batch pushed since the last publish, and
	 * (packed) the free list, chain tails and buffer id -> head entry. */
	uint16_t *batch;
	unsigned batch_n;
	uint16_t *next;
	uint16_t *last;
	uint16_t *id_head;
	uint16_t free_head; /* first really free entry (old_free_head) */
	uint16_t pending_head, pending_tail; /* pushed, not yet published */
	/* packed: where the next popped chain starts in the descriptor ring
	 * (its copies are taken from there), and the used position */
	void *desc_ring;
	uint16_t avail_pos;
	bool avail_wrap;
	uint16_t used_pos;
	bool used_wrap;
	struct vd_ratelimit rl;
};

/* ---------------------------------------------------------------- state */

struct vu_backend;

/* One virtqueue as the frontend configures it. */
struct vu_vring {
	struct vu_backend *b;
	unsigned index;
	char who[48];

	/* control thread */
	uint16_t num;  /* SET_VRING_NUM, 0: not yet */
	bool addr_set; /* SET_VRING_ADDR seen */
	struct vhost_vring_addr addr;
	/* Where to start: SET_VRING_BASE, or where the last stop left it. */
	uint16_t base_avail, base_used;
	bool base_avail_wrap, base_used_wrap;
	bool base_used_known; /* false: split reads used->idx from the ring */
	int kick_fd;	      /* owned; -1 none */
	bool started;	      /* "Ring states": a kick fd arrived, no stop */
	bool enable;	      /* SET_VRING_ENABLE */
	bool running;	      /* a queue thread serves it */
	/* host ranges of the rings while running (memory-table changes) */
	void *ring_hva[3];
	size_t ring_len[3];
	uint16_t *requeue; /* heads to resubmit, valid during start */

	/* Shared with the queue thread. call_fd/err_fd are only ever replaced
	 * with dup3 onto the same number while the ring runs, so a concurrent
	 * write never reaches a recycled fd. */
	atomic_int call_fd;
	atomic_int err_fd;
	/* Odd while the queue thread reads the dirty log (dirty_log.c). */
	_Atomic uint64_t log_seq;

	/* queue thread while running */
	struct vu_inflight_ring inflight;
	struct vd_ratelimit rl;
};

/* The mapped dirty log (SET_LOG_BASE). */
struct vu_log_map {
	uint8_t *bits;
	uint64_t size; /* bytes of bitmap */
	void *map_base;
	size_t map_len;
};

/* A memory region as the frontend described it, for REM_MEM_REG matching,
 * unchanged-table detection and ring placement. Control thread. */
struct vu_region {
	uint64_t gpa, size, uaddr, mmap_offset;
	dev_t st_dev;
	ino_t st_ino;
	void *hva;
};

struct vu_backend {
	const char *who;
	struct vd_model *model;
	struct vd_dev *dev;
	struct vd_mem *mem;
	unsigned num_queues;
	uint16_t max_queue_size;
	int listen_fd;
	int conn_fd;
	/* How long a message may take to arrive once it began; 0: what is
	 * not there yet never comes (the fuzz target's non-blocking pair). */
	unsigned msg_timeout_ms;

	/* connection state (control thread) */
	uint64_t features;	    /* last SET_FEATURES */
	uint64_t protocol_features; /* last SET_PROTOCOL_FEATURES */
	bool protocol_set;	    /* SET_PROTOCOL_FEATURES received */
	bool owner;
	bool unsealed_warned; /* an unsealable shared file was logged */
	struct vu_vring *vrings;
	struct vu_region *regions; /* VU_MAX_MEM_SLOTS entries */
	unsigned n_regions;

	/* inflight region (GET/SET_INFLIGHT_FD) */
	void *inflight_map; /* the mapping */
	size_t inflight_len;
	void *inflight_area; /* queue 0's region inside it */
	uint16_t inflight_nq;
	uint16_t inflight_cap; /* entries each queue's region has room for */
	size_t inflight_qstride;
	bool inflight_packed;

	/* dirty log: read by queue threads (log_write), swapped by us */
	_Atomic(struct vu_log_map *) log;
	struct vd_ratelimit req_rl;

	/* backend request channel (SET_BACKEND_REQ_FD), used from any thread
	 * for config-change notifications */
	pthread_mutex_t req_lock;
	int req_fd;
	atomic_bool config_notify;

	struct vu_msg msg;
	struct vu_reply reply;
};

/* Handler results besides 0: the request was understood but refused (an
 * operation the device says no to): an error reply if the frontend asked
 * for one, the connection stays. Negative errno: a protocol violation. */
#define VU_REFUSED 1

/* ----------------------------------------------------------- functions */

/* serve.c: a backend and its one connection. The daemon's serve loop is
 * built from these; so is the fuzz target (tests/fuzz/fuzz_vhost_user.c). */
/* A backend for the model, which it takes over: destroyed by
 * vu_backend_free, or at once if this fails (NULL, logged). */
struct vu_backend *vu_backend_new(const char *who, struct vd_model *model);
void vu_backend_free(struct vu_backend *b);
/* Serve a frontend connected on fd (owned from now on). */
void vu_connection_open(struct vu_backend *b, int fd);
/* Receive one message on the connection and act on it (replies sent): 0,
 * or <0 when the connection must be closed (logged; -ECONNRESET: the
 * frontend closed it). */
int vu_serve_message(struct vu_backend *b);
/* Close the connection; the device returns to a fresh connection's state. */
void vu_disconnect(struct vu_backend *b, const char *why);

/* messages.c */
const char *vu_request_name(uint32_t request);
/* Validate and run one received message; sends the replies. 0, or <0 when
 * the connection must be closed (already logged). */
int vu_dispatch(struct vu_backend *b, struct vu_msg *m);

/* connection.c */
int vu_listen_path(const char *path, const char *who, int *out_fd,
		   bool *created);
int vu_check_listen_fd(int fd, const char *who);
/* Read one message; 0, -ECONNRESET on orderly close, other <0 logged. */
int vu_recv_msg(struct vu_backend *b, struct vu_msg *m);
int vu_send_reply(struct vu_backend *b, struct vu_reply *r);
void vu_close_fds(int *fds, unsigned n);
void vu_close_fd(int *fd);
/* fstat the fd: a regular file (memfd, tmpfs, hugetlbfs) holding
 * [offset, offset+size). Seals it against shrinking where it can, and
 * warns (once per connection, naming `what`) where it cannot. */
int vu_fd_check_range(struct vu_backend *b, const char *what, int fd,
		      uint64_t offset, uint64_t size, char *why, size_t whylen,
		      struct stat *st);
/* mmap [offset, offset+size) of fd shared read-write; *base and *len are the
 * whole mapping, the return the pointer to offset. NULL with why. */
void *vu_map_fd(int fd, uint64_t offset, uint64_t size, const struct stat *st,
		void **base, size_t *len, char *why, size_t whylen);

/* control.c: device-level requests and the backend channel */
int vu_get_features(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen);
int vu_set_features(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen);
int vu_get_protocol_features(struct vu_backend *b, struct vu_msg *m,
			     struct vu_reply *r, char *why, size_t whylen);
int vu_set_protocol_features(struct vu_backend *b, struct vu_msg *m,
			     struct vu_reply *r, char *why, size_t whylen);
int vu_set_owner(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		 char *why, size_t whylen);
int vu_reset_owner(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		   char *why, size_t whylen);
int vu_get_queue_num(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen);
int vu_get_config(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen);
int vu_set_config(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen);
int vu_set_status(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen);
int vu_get_status(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen);
int vu_reset_device(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen);
int vu_set_backend_req_fd(struct vu_backend *b, struct vu_msg *m,
			  struct vu_reply *r, char *why, size_t whylen);
void vu_notify_config(void *shim);
/* Back to the state of a fresh connection (after a disconnect). */
void vu_connection_reset(struct vu_backend *b);
bool vu_has_protocol(const struct vu_backend *b, unsigned bit);

/* mem_table.c */
int vu_set_mem_table(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen);
int vu_get_max_mem_slots(struct vu_backend *b, struct vu_msg *m,
			 struct vu_reply *r, char *why, size_t whylen);
int vu_add_mem_reg(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		   char *why, size_t whylen);
int vu_rem_mem_reg(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		   char *why, size_t whylen);
void vu_mem_clear(struct vu_backend *b);

/* vring.c */
int vu_set_vring_num(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen);
int vu_set_vring_addr(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen);
int vu_set_vring_base(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen);
int vu_get_vring_base(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen);
int vu_set_vring_kick(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen);
int vu_set_vring_call(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen);
int vu_set_vring_err(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen);
int vu_set_vring_enable(struct vu_backend *b, struct vu_msg *m,
			struct vu_reply *r, char *why, size_t whylen);
int vu_vrings_new(struct vu_backend *b);
void vu_vrings_free(struct vu_backend *b);
/* Stop a running ring, keeping where it stands as its base. */
void vu_ring_stop(struct vu_backend *b, struct vu_vring *vr);
/* Stop every ring; with `forget`, also drop its configuration and fds. */
void vu_rings_stop_all(struct vu_backend *b, bool forget);
/* Start a ring that should run and does not; 0 if nothing to do. */
int vu_ring_try_start(struct vu_backend *b, struct vu_vring *vr, char *why,
		      size_t whylen);
/* Memory-table changes: stop rings inside [hva, hva+len) (all running
 * rings if len is 0), then restart what should run. */
void vu_rings_suspend(struct vu_backend *b, const void *hva, size_t len);
void vu_rings_resume(struct vu_backend *b);
void vu_notify_queue(void *shim, struct vd_queue *q);
/* Apply dirty logging on/off (LOG_ALL and a log mapped) to every queue. */
void vu_rings_update_logging(struct vu_backend *b);
bool vu_ring_enabled(const struct vu_backend *b, const struct vu_vring *vr);

/* inflight.c */
int vu_get_inflight_fd(struct vu_backend *b, struct vu_msg *m,
		       struct vu_reply *r, char *why, size_t whylen);
int vu_set_inflight_fd(struct vu_backend *b, struct vu_msg *m,
		       struct vu_reply *r, char *why, size_t whylen);
void vu_inflight_unmap(struct vu_backend *b);
/* Before a ring starts: attach its inflight region, recover what was in
 * flight and adjust the start position; may fill vr->requeue. Returns the
 * number of heads to requeue (split), or <0 with why. */
int vu_inflight_prepare(struct vu_backend *b, struct vu_vring *vr,
			struct vd_vq_config *cfg, char *why, size_t whylen);
void vu_inflight_release(struct vu_vring *vr);
void vu_inflight_on_pop(void *ctx, const struct vd_vq_elem *e);
void vu_inflight_on_push(void *ctx, const struct vd_vq_elem *e);
void vu_inflight_on_publish(void *ctx, uint16_t used_idx, bool used_wrap);
size_t vu_inflight_queue_size(bool packed, uint16_t queue_size);

/* dirty_log.c */
int vu_set_log_base(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen);
void vu_log_unmap(struct vu_backend *b);
bool vu_log_active(const struct vu_backend *b);
void vu_log_write(void *ctx, uint64_t gpa, uint64_t len);

#endif
