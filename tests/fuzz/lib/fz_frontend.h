/* The frontend side of fuzz_vhost_user (lib/fz_frontend.c): what the
 * input is read from, the fds and memfds the frontend makes up, and one
 * message sent to the daemon's connection code and served. The wire format
 * is the vhost-user frontend library's (vuf_wire.h), not the daemon's. */
#ifndef VIRTIOD_FUZZ_FZ_FRONTEND_H
#define VIRTIOD_FUZZ_FZ_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fz_input.h"
#include "vuf_wire.h"

struct vu_backend;

#define NQ	  2    /* blk --num-queues */
#define QSIZE	  "64" /* blk --queue-size: small rings, small areas */
#define N_MEM	  4    /* memfd slots the frontend keeps */
#define N_CHAN	  2    /* backend channels (SET_BACKEND_REQ_FD) kept */
#define N_REG	  16   /* regions remembered for ring buffers */
#define N_TMP	  16   /* fds to close once a message is sent */
#define MAX_OPS	  96   /* actions per input */
#define PAGE	  4096u
#define MAX_PAGES 256u	/* a memfd's size, normally */
#define BIG_PAGES 4096u /* sometimes: 16 MiB, sparse */
/* Where the frontend "mapped" memfd slot s: user addresses of regions and
 * rings are this plus an offset in the file, as QEMU's are. */
#define UBASE(s) (0x7f0000000000ull + ((uint64_t)(s) << 32))

/* -------------------------------------------------------------- frontend */

/* What the frontend believes it set up, so rings and buffers can be placed
 * where the daemon will look (the input may have made any of it fail). */
struct shadow_region {
	unsigned slot;
	uint64_t gpa, size, mmap_offset;
};

struct shadow_ring {
	bool addr_set;
	unsigned slot;
	uint64_t desc, avail; /* offsets in the slot's memfd */
	uint16_t num;
	uint16_t avail_idx, next_desc, next_id;
	bool wrap;
};

struct fz {
	struct vu_backend *b;
	int peer; /* our end of the connection, -1: none */
	int mem[N_MEM];
	uint64_t mem_size[N_MEM];
	int inflight_fd; /* from GET_INFLIGHT_FD */
	uint64_t inflight_size;
	int kick[NQ]; /* our copies of the kick eventfds */
	int chan[N_CHAN];
	int tmp[N_TMP];
	unsigned n_tmp;
	struct shadow_region reg[N_REG];
	unsigned n_reg;
	struct shadow_ring ring[NQ];
	bool packed;
};

/* The image the blk device serves and a spare regular file (an fd that is
 * mappable but not sealable); made by LLVMFuzzerInitialize. */
extern char fz_img_path[];
extern char fz_spare_path[];

void fz_close_fd(int *fd);
/* Keep fd until the next message is sent, then close it (-1 passes). */
int fz_tmp_fd(struct fz *z, int fd);
void fz_set_nonblock(int fd);
/* A socketpair to the backend's connection code; fz_disconnect closes
 * it the way the daemon closes a connection. */
void fz_connect(struct fz *z);
void fz_disconnect(struct fz *z);
/* One message: header and `plen` payload bytes (a header claiming more
 * makes a truncated message), fds on the first byte. Served by the
 * daemon's own receive-and-dispatch; a refusal closes the connection as it
 * would. Replies and backend-channel messages are drained. */
void fz_message(struct fz *z, uint32_t req, uint32_t flags, uint32_t size,
		const void *payload, size_t plen, const int *fds,
		unsigned n_fds);
/* Header flags from an input byte: version, NEED_REPLY sometimes. */
uint32_t fz_flags(uint8_t b);

/* ------------------------------------------------------------------- fds */

int fz_memfd(uint64_t size, bool allow_seal, bool seal);
/* An fd of an input-chosen kind, for places that take one. */
int fz_some_fd(struct fz *z, uint8_t kind);
/* A kick/call/err eventfd; kept in *keep (kick fds, so the input can
 * kick) or closed after the message. */
int fz_event_fd(struct fz *z, int *keep);

/* ------------------------------------------------------------ guest memory */

/* Write guest memory: memfd slot `slot`, or the inflight area (N_MEM). */
void fz_poke(struct fz *z, unsigned slot, uint64_t off, const void *p,
	     size_t len);

/* ---------------------------------------------------------------- fd leaks */

int fz_count_fds(void);
void fz_list_fds(void);

#endif
