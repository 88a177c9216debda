/* Testing virtiod through its socket: the daemon process, and the
 * vhost-user frontend library (tests/lib/vhost-user-frontend) wrapped so
 * that every failure fails the test, plus blk requests. Links nothing of
 * the daemon: an independent frontend. */
#ifndef VIRTIOD_TESTS_VU_TEST_H
#define VIRTIOD_TESTS_VU_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "vuf_conn.h"
#include "vuf_mem.h"
#include "vuf_vq.h"

/* What virtiod must offer (docs/vhost-user.md). */
#define EXPECTED_PROTOCOL_FEATURES                                             \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) |                                  \
	 (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) |                           \
	 (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |                           \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) |                         \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |                              \
	 (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |                      \
	 (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                        \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                 \
	 (1ull << VHOST_USER_PROTOCOL_F_STATUS))

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
/* Runs $VIRTIOD blk --socket-path sock --disk img and the extra arguments
 * up to NULL as a command (one expected to fail to start). */
int run_blk_cmd(char *out, size_t outlen, char *err, size_t errlen,
		const char *sock, const char *img, ...);
void nap_ms(unsigned ms);

/* -------------------------------------------------------- connection */

/* The calls below assert success (a failure fails the test); raw sends
 * and receives are the library's vuf_send and vuf_recv. */
void fe_connect(struct vuf_conn *f, const char *path);
/* True if the daemon closed the connection (EOF within timeout). */
bool fe_closed_by_peer(struct vuf_conn *f, int timeout_ms);
uint64_t fe_get_u64(struct vuf_conn *f, uint32_t req);
/* Send with NEED_REPLY and return the ack value (0 = success). */
uint64_t fe_acked(struct vuf_conn *f, uint32_t req, const void *payload,
		  uint32_t size, const int *fds, unsigned n_fds);
void fe_set_u64(struct vuf_conn *f, uint32_t req, uint64_t v);
/* GET_FEATURES, GET/SET_PROTOCOL_FEATURES (all expected), SET_OWNER. */
void fe_handshake(struct vuf_conn *f);
void fe_set_features(struct vuf_conn *f, uint64_t virtio_features);

/* -------------------------------------------------------------- memory */

/* size bytes of memfd (no sealing) at gpa. */
void gmem_new(struct vuf_mem *m, size_t size, uint64_t gpa);
void gmem_free(struct vuf_mem *m);
/* Page-aligned allocations keep what the device writes on known pages. */
uint64_t gmem_alloc(struct vuf_mem *m, size_t size, size_t align);
void *gmem_hva(struct vuf_mem *m, uint64_t gpa);
void fe_set_mem_table(struct vuf_conn *f, struct vuf_mem *const *mems,
		      unsigned n);
struct vhost_user_memory_region gmem_region(const struct vuf_mem *m);

/* --------------------------------------------------------------- rings */

#define RING_MAX 1024

/* A ring in test memory, each part on its own pages, with its eventfds. */
struct ring {
	struct vuf_mem *m;
	unsigned index;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	int kick, call;
	struct vuf_vq vq; /* with chain bookkeeping */
};

struct buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

void ring_init(struct ring *r, struct vuf_mem *m, unsigned index, uint16_t num,
	       bool packed);
void ring_free(struct ring *r);
/* SET_VRING_NUM/BASE/ADDR/KICK/CALL (+ENABLE 1), as QEMU orders them.
 * base: split avail idx, packed as the vhost wire format. */
void fe_setup_ring(struct vuf_conn *f, struct ring *r, uint32_t base, bool log,
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
	struct vuf_conn f;
	struct vuf_mem m;
	struct ring r[2];
	unsigned nq;
};

/* Connect to an already started daemon and set up nq rings. */
void env_open(struct env *e, unsigned nq, bool packed, uint16_t num);
void env_close(struct env *e);
uint64_t blk_features(bool packed);
/* A fixture: an env with a 64 MiB image prepared (no daemon started). */
int env_setup(void **state);
int env_teardown(void **state);
/* Write 16 KiB at sector, read it back, flush; checks the data in guest
 * memory and in the image. */
void io_roundtrip(struct env *e, struct ring *r, uint64_t sector,
		  uint32_t seed);
/* A new frontend is served: connect, negotiate, one io_roundtrip. */
void daemon_serves_io(const struct daemon *d);

/* ------------------------------------------------------------ groups */

int run_protocol_tests(void);
int run_memory_tests(void);
int run_ring_tests(void);
int run_inflight_tests(void);
int run_validation_tests(void);
int run_validation_mem_tests(void);
int run_cli_tests(void);
int run_fd_tests(void);
int run_socket_tests(void);
int run_image_tests(void);
int run_hugetlb_tests(void);
int run_sandbox_tests(void);

#endif
