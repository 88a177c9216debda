/* Shared definitions of the load generator: the job description, the
 * per-queue state a worker thread owns, and the device set-up calls. */
#ifndef LOADGEN_LOADGEN_H
#define LOADGEN_LOADGEN_H

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "histogram.h"
#include "vuf_conn.h"
#include "vuf_mem.h"
#include "vuf_vq.h"

#define LG_MAX_QUEUES 64
#define LG_MAX_BS     (4u << 20)
#define LG_MAX_QSIZE  1024u
#define LG_CHAIN_LEN  3u /* header, data, status */

struct lg_job {
	const char *socket_path;
	const char *label;
	unsigned queues;
	unsigned iodepth;    /* per queue */
	unsigned queue_size; /* 0: smallest power of two that fits */
	uint32_t bs;
	unsigned read_pct; /* 0..100 */
	bool random;
	bool once; /* cover the region once instead of timing */
	double seconds;
	unsigned verify_every; /* check 1 in N reads; 0 never */
	uint64_t seed;
	uint64_t region; /* bytes used from offset 0; 0 = capacity */
	bool no_event_idx;
	bool writethrough; /* do not ack VIRTIO_BLK_F_FLUSH */
	pid_t backend_pid; /* 0: no backend CPU figure */
	int connect_timeout_ms;
};

/* What the driver keeps per request slot (host memory, never shared). */
struct lg_req {
	uint64_t off;
	uint64_t t_submit;
	bool is_read;
	bool in_flight; /* a used entry for this slot is expected */
};

/* One queue: owned by its worker thread from start to join. */
struct lg_queue {
	unsigned index;
	const struct lg_job *job;
	struct vuf_vq vq; /* split, the chains are ours (build_chains) */
	int kick_fd, call_fd;
	bool started; /* the backend has the ring: stop it at close */
	/* Guest memory of this queue: per slot a 64-byte header+status
	 * record and a bs-sized data buffer, plus their guest addresses. */
	uint8_t *hdrs, *data;
	uint64_t hdrs_gpa, data_gpa;
	struct lg_req *reqs;
	uint64_t nblocks;	    /* blocks of bs in the region */
	uint64_t seq_next, seq_end; /* sequential cursor / --once range */
	uint64_t rng;
	uint64_t deadline_ns, start_ns, end_ns;
	/* results */
	struct lg_hist hist;
	uint64_t ops, reads, writes, drained;
	uint64_t io_errors, verified, verify_errors, bad_len, read_seen;
	int fatal; /* -errno: stalled backend, bad used entry */
};

struct lg_dev {
	struct vuf_conn conn;
	uint64_t capacity; /* bytes */
	uint64_t features; /* negotiated virtio features */
	struct vuf_mem mem; /* guest memory, from LG_GPA_BASE */
	unsigned nq;
	struct lg_queue q[LG_MAX_QUEUES];
};

/* Connect, negotiate, read the capacity, share memory, start the rings. */
int lg_dev_open(struct lg_dev *d, const struct lg_job *job);
/* Stop the rings (GET_VRING_BASE) and release everything. */
void lg_dev_close(struct lg_dev *d);

/* Worker thread body: runs the job on one queue. */
void *lg_queue_run(void *arg);

uint64_t lg_now_ns(void);

#endif
