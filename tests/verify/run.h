/* Private to vd-verify's run mode: the state of a run, shared by the
 * request logic (run_ops.c) and the phases, record and summary (run.c).
 * Owned by the one thread that runs; nothing here is shared. */
#ifndef VD_RUN_H
#define VD_RUN_H

#include <linux/aio_abi.h>
#include <sys/uio.h>

#include "vd_verify.h"

enum kind { K_READ, K_WRITE, K_FLUSH, K_DISCARD, K_ZERO, K_NKINDS };
extern const char *const vd_kind_name[K_NKINDS];

enum { PLAN_NONE, PLAN_AIO, PLAN_SYNC };

#define SLOT_BUF  (VD_MAX_IO + 64 * 1024)
#define PEND_MAX  64
#define AREA_DEF  (64ull << 20)
#define MAX_PHASE 8

struct slot {
	bool busy;
	bool dropped; /* injected: the write went out as a read */
	bool sweep;
	enum kind kind;
	uint64_t off; /* device byte offset */
	uint32_t len;
	uint32_t gen;
	unsigned niov;
	unsigned pgoff; /* in-page offset of the first segment */
	struct iovec iov[VD_MAX_IOV];
	unsigned char *buf;
	struct iocb cb;
};

struct range {
	uint64_t off;
	uint32_t len;
};

struct stats {
	uint64_t ops, reads, writes, flushes, discards, zeroes;
	uint64_t bytes_r, bytes_w, sweep_bytes, checked_bytes;
	uint64_t vec_ops, bufoff_ops, raw_reads;
	uint32_t min_len, max_len;
};

struct ctx {
	const struct vd_run_opts *o;
	struct vd_target t;
	uint64_t seed, rng;
	uint64_t area_off, area_len, granules, rec_start;
	uint32_t gran;
	uint32_t *map; /* generation per granule of the area */
	uint32_t next_gen;
	unsigned long aio;
	struct slot *slots;
	unsigned nslots, qd, inflight;
	unsigned mix[K_NKINDS], mix_total;
	bool discard_zeroes;
	uint64_t dgran;		     /* discard alignment */
	struct range pend[PEND_MAX]; /* reads to do soon (read-after-write) */
	unsigned npend;
	unsigned pgoffs[4], npgoffs;
	struct stats st;
	uint64_t phase_ops[MAX_PHASE], phase_issued;
	const char *phase;
	uint64_t sweep_cur;
	uint64_t inj_seen;
	bool failed, hung;
	char fail[768];
	double t0, last_progress;
};

void vd_failf(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Fill slot s with the next request of a mixed phase (or run a flush,
 * discard or write-zeroes synchronously): PLAN_AIO, PLAN_SYNC, or
 * PLAN_NONE when everything it tried overlaps a request in flight. */
int vd_plan_mixed(struct ctx *c, struct slot *s);
/* The final pass: the next up to 1 MiB of checkable data, or PLAN_NONE. */
int vd_plan_sweep(struct ctx *c, struct slot *s);
/* Account for one AIO completion: check it, update the map, verify. */
void vd_complete(struct ctx *c, const struct io_event *ev);

#endif
