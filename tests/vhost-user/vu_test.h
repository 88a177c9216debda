/* A vhost-user frontend for testing virtiod through its socket: messages,
 * memfd guest memory, rings it builds itself, blk requests, and the daemon
 * process. Links nothing of the daemon: an independent frontend. */
#ifndef VIRTIOD_TESTS_VU_TEST_H
#define VIRTIOD_TESTS_VU_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

/* ---------------------------------------------------------------- wire */

enum {
	REQ_GET_FEATURES = 1,
	REQ_SET_FEATURES = 2,
	REQ_SET_OWNER = 3,
	REQ_RESET_OWNER = 4,
	REQ_SET_MEM_TABLE = 5,
	REQ_SET_LOG_BASE = 6,
	REQ_SET_LOG_FD = 7,
	REQ_SET_VRING_NUM = 8,
	REQ_SET_VRING_ADDR = 9,
	REQ_SET_VRING_BASE = 10,
	REQ_GET_VRING_BASE = 11,
	REQ_SET_VRING_KICK = 12,
	REQ_SET_VRING_CALL = 13,
	REQ_SET_VRING_ERR = 14,
	REQ_GET_PROTOCOL_FEATURES = 15,
	REQ_SET_PROTOCOL_FEATURES = 16,
	REQ_GET_QUEUE_NUM = 17,
	REQ_SET_VRING_ENABLE = 18,
	REQ_SET_BACKEND_REQ_FD = 21,
	REQ_GET_CONFIG = 24,
	REQ_SET_CONFIG = 25,
	REQ_GET_INFLIGHT_FD = 31,
	REQ_SET_INFLIGHT_FD = 32,
	REQ_RESET_DEVICE = 34,
	REQ_GET_MAX_MEM_SLOTS = 36,
	REQ_ADD_MEM_REG = 37,
	REQ_REM_MEM_REG = 38,
	REQ_SET_STATUS = 39,
	REQ_GET_STATUS = 40,
};

#define F_VERSION    0x1u
#define F_REPLY	     (1u << 2)
#define F_NEED_REPLY (1u << 3)

#define PF_MQ		       0
#define PF_LOG_SHMFD	       1
#define PF_REPLY_ACK	       3
#define PF_BACKEND_REQ	       5
#define PF_CONFIG	       9
#define PF_INFLIGHT_SHMFD      12
#define PF_RESET_DEVICE	       13
#define PF_CONFIGURE_MEM_SLOTS 15
#define PF_STATUS	       16
#define PROTOCOL_FEATURES_BIT  30

/* What virtiod must offer (docs/vhost-user.md). */
#define EXPECTED_PROTOCOL_FEATURES                                             \
	((1ull << PF_MQ) | (1ull << PF_LOG_SHMFD) | (1ull << PF_REPLY_ACK) |   \
	 (1ull << PF_BACKEND_REQ) | (1ull << PF_CONFIG) |                      \
	 (1ull << PF_INFLIGHT_SHMFD) | (1ull << PF_RESET_DEVICE) |             \
	 (1ull << PF_CONFIGURE_MEM_SLOTS) | (1ull << PF_STATUS))

struct wire_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

struct wire_region {
	uint64_t gpa, size, uaddr, mmap_offset;
};

struct wire_vring_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};

struct wire_inflight {
	uint64_t mmap_size, mmap_offset;
	uint16_t num_queues, queue_size;
};

/* ------------------------------------------------------------- daemon */

struct daemon {
	pid_t pid;
	char dir[64];
	char sock[108];
	char img[128];
	char log[128];
	size_t img_size;
};

/* Temp directory with an image of img_mib MiB (pattern-free, zeroed). */
void daemon_prepare(struct daemon *d, unsigned img_mib);
/* Starts $VIRTIOD blk --socket-path S --disk IMG --log-level debug and the
 * extra arguments (NULL-terminated); waits for the socket. */
void daemon_start(struct daemon *d, ...);
void daemon_startv(struct daemon *d, const char *const *extra);
/* SIGTERM, expect a clean exit within 5 s; returns the exit status. */
int daemon_stop(struct daemon *d);
void daemon_kill(struct daemon *d); /* SIGKILL, reaped */
bool daemon_alive(struct daemon *d);
int daemon_fd_count(const struct daemon *d);
/* The daemon's fd count once it stopped changing (no frontend). */
int daemon_idle_fd_count(const struct daemon *d);
/* Wait until the daemon has exactly `want` fds open (it may still be
 * closing a connection); returns the last count seen. */
int daemon_wait_fd_count(const struct daemon *d, int want);
/* True if the daemon's log contains every string given (NULL-terminated),
 * all on one line. */
bool daemon_log_has(const struct daemon *d, ...);
/* Lines of the daemon's log that contain s (no waiting). */
int daemon_log_count(const struct daemon *d, const char *s);
void daemon_cleanup(struct daemon *d); /* kill if alive, remove files */
void daemon_dump_log(const struct daemon *d);

/* Run a command, capture stdout and stderr (NUL-terminated, truncated to
 * the buffers). Returns the exit status, or -1 if it did not exit. */
int run_cmd(const char *const *argv, char *out, size_t outlen, char *err,
	    size_t errlen);
const char *virtiod_path(void);

/* -------------------------------------------------------- connection */

struct fe {
	int sock;
	uint64_t features;
	uint64_t protocol;
};

void fe_connect(struct fe *f, const char *path);
void fe_close(struct fe *f);
/* Raw send; returns 0 or -errno. */
int fe_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload,
	    uint32_t size, const int *fds, unsigned n_fds);
/* Receive one reply; returns payload size, -ECONNRESET on EOF, -ETIMEDOUT.
 * fd (if not NULL) gets an attached fd or -1. */
int fe_recv(struct fe *f, struct wire_hdr *h, void *payload, size_t max,
	    int *fd, int timeout_ms);
/* True if the daemon closed the connection (EOF within timeout). */
bool fe_closed_by_peer(struct fe *f, int timeout_ms);
uint64_t fe_get_u64(struct fe *f, uint32_t req);
/* Send with NEED_REPLY and return the ack value (0 = success). */
uint64_t fe_acked(struct fe *f, uint32_t req, const void *payload,
		  uint32_t size, const int *fds, unsigned n_fds);
void fe_set_u64(struct fe *f, uint32_t req, uint64_t v);
/* GET_FEATURES, GET/SET_PROTOCOL_FEATURES (all expected), SET_OWNER. */
void fe_handshake(struct fe *f);
void fe_set_features(struct fe *f, uint64_t virtio_features);

/* -------------------------------------------------------------- memory */

struct gmem {
	int fd;
	uint8_t *hva;
	size_t size;
	uint64_t gpa;
	size_t next; /* bump allocator offset */
};

void gmem_new(struct gmem *m, size_t size, uint64_t gpa);
void gmem_free(struct gmem *m);
/* Page-aligned allocations keep what the device writes on known pages. */
uint64_t gmem_alloc(struct gmem *m, size_t size, size_t align);
void *gmem_hva(struct gmem *m, uint64_t gpa);
void fe_set_mem_table(struct fe *f, struct gmem *const *mems, unsigned n);
struct wire_region gmem_region(const struct gmem *m);

/* --------------------------------------------------------------- rings */

#define RING_MAX 1024

struct ring {
	struct gmem *m;
	bool packed;
	uint16_t num;
	unsigned index;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	void *desc, *avail, *used;
	int kick, call;
	/* split */
	uint16_t avail_idx, last_used;
	uint16_t free_head, n_free;
	/* packed */
	uint16_t avail_pos, used_pos;
	bool avail_wrap, used_wrap;
	uint16_t next_id;
	uint16_t id_ndesc[RING_MAX];
	uint16_t id_head[RING_MAX]; /* split: head of each token's chain */
	uint16_t chain_len[RING_MAX];
	bool id_busy[RING_MAX];
};

struct buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

void ring_init(struct ring *r, struct gmem *m, unsigned index, uint16_t num,
	       bool packed);
void ring_free(struct ring *r);
/* SET_VRING_NUM/BASE/ADDR/KICK/CALL (+ENABLE 1). base: split avail idx,
 * packed as the vhost wire format. */
void fe_setup_ring(struct fe *f, struct ring *r, uint32_t base, bool log,
		   bool enable);
/* Make a chain available; returns its token (split head / packed id). */
int ring_add(struct ring *r, const struct buf *bufs, unsigned n);
void ring_kick(struct ring *r);
/* Next used element, or false if none within timeout_ms. */
bool ring_get_used(struct ring *r, uint16_t *token, uint32_t *len,
		   int timeout_ms);
/* The split ring's used index in guest memory. */
uint16_t ring_used_idx(const struct ring *r);

/* -------------------------------------------------------------- blk */

#define SECTOR 512u

struct blk_req {
	uint64_t hdr_gpa, data_gpa, status_gpa;
	uint32_t type;
	uint32_t len;
	int token;
};

/* Allocates header and status, submits (no kick). type: VIRTIO_BLK_T_*. */
void blk_submit(struct ring *r, struct blk_req *q, uint32_t type,
		uint64_t sector, uint64_t data_gpa, uint32_t len);
/* The same with the header and status byte where the caller wants them. */
void blk_submit_at(struct ring *r, struct blk_req *q, uint32_t type,
		   uint64_t sector, uint64_t data_gpa, uint32_t len,
		   uint64_t hdr_gpa, uint64_t status_gpa);
/* A used element is waiting (consumes nothing). */
bool ring_peek_used(const struct ring *r);
/* Waits for q to complete (other completions are an error); returns the
 * status byte, checks the used length. */
uint8_t blk_wait(struct ring *r, struct blk_req *q);
/* Submit, kick, wait: returns the status. */
uint8_t blk_do(struct ring *r, uint32_t type, uint64_t sector,
	       uint64_t data_gpa, uint32_t len);
void fill_pattern(void *p, size_t len, uint32_t seed);
bool check_pattern(const void *p, size_t len, uint32_t seed);
/* Compares the image file at sector with a pattern. */
bool image_has_pattern(const struct daemon *d, uint64_t sector, size_t len,
		       uint32_t seed);

/* ------------------------------------------------------- a ready device */

/* A connected, negotiated device with one memory region and rings. */
struct env {
	struct daemon d;
	struct fe f;
	struct gmem m;
	struct ring r[2];
	unsigned nq;
};

/* Connect to an already started daemon and set up nq rings. */
void env_open(struct env *e, unsigned nq, bool packed, uint16_t num);
void env_close(struct env *e);
uint64_t blk_features(bool packed);

/* ------------------------------------------------------------ groups */

int run_protocol_tests(void);
int run_inflight_tests(void);
int run_validation_tests(void);
int run_validation_mem_tests(void);
int run_cli_tests(void);

#endif
