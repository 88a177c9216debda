/* Shared setup for the virtqueue tests: a test driver and the core device on
 * one test memory, hook recorders, raw malicious chains and the request
 * stress loop (tests/unit/lib/vq_harness.c). Test-only. */
#ifndef VIRTIOD_TEST_VQ_HARNESS_H
#define VIRTIOD_TEST_VQ_HARNESS_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_driver.h"
#include "virtiod/virtqueue.h"

#define VQH_MEM_SIZE	(4u << 20)
#define VQH_MEM_REGIONS 5 /* boundaries not on buffer-slot boundaries */
#define VQH_MAX_LOG	256

struct vqh {
	struct td_mem *m;
	struct td_vq *q;
	struct vd_vq *vq;
	struct vd_vq_config cfg;
	struct vd_vq_hooks hooks;
	/* on_broken */
	unsigned broken_calls;
	enum vd_vq_error broken_err;
	char reason[200];
	/* other hooks */
	unsigned pops, pushes, publishes;
	uint16_t last_pub_idx;
	bool last_pub_wrap;
	struct {
		uint64_t gpa, len;
	} log[VQH_MAX_LOG];
	unsigned n_log;
};
void vqh_on_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
		   const char *reason);
void vqh_on_pop(void *ctx, const struct vd_vq_elem *e);
void vqh_on_push(void *ctx, const struct vd_vq_elem *e);
void vqh_on_publish(void *ctx, uint16_t idx, bool wrap);
void vqh_log_write(void *ctx, uint64_t gpa, uint64_t len);

/* Driver + config; the test may edit h->cfg before vqh_start. */
void vqh_init_mem(struct vqh *h, enum vd_vq_layout layout, uint16_t num,
		  bool event_idx, bool indirect, size_t mem_size,
		  unsigned nregions);
void vqh_init(struct vqh *h, enum vd_vq_layout layout, uint16_t num,
	      bool event_idx, bool indirect);
void vqh_start(struct vqh *h);
void vqh_new(struct vqh *h, enum vd_vq_layout layout, uint16_t num,
	     bool event_idx, bool indirect);
void vqh_fini(struct vqh *h);

/* Every iovec of e lies inside test guest memory. */
void vqh_check_elem_in_memory(struct vqh *h, const struct vd_vq_elem *e);

/* The queue must be broken by the next pop, with err, reported once, and
 * memory outside the guest untouched. */
void vqh_expect_broken(struct vqh *h, enum vd_vq_error err);

/* A descriptor for raw (malicious) chains. split: written at desc[idx]
 * with `next`; packed: at the next ring positions with `id`. */
struct vqh_raw {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* NEXT / WRITE / INDIRECT */
	uint16_t next;
	uint16_t id;
};

/* Writes descriptors and makes the chain starting at d[0] available. For
 * split, d[i] goes to descriptor index `first + i`. */
void vqh_raw_chain(struct vqh *h, uint16_t first, const struct vqh_raw *d,
		   unsigned n);

/* Writes an indirect table in the layout's descriptor format. */
uint64_t vqh_table(struct vqh *h, const struct vqh_raw *d, unsigned n);

/* ------------------------------------------------------------ stress */

struct vqh_req {
	uint32_t no;
	unsigned n;
	struct td_buf bufs[8];
	uint32_t read_len, write_len, expect_written;
	bool busy;
};
uint32_t vqh_rand(uint64_t *s);

/* Bytes per request slot: buffers of a request stay inside its slot. */
#define VQH_SLOT_BYTES 4096u

/* Builds request `no` in slot memory at slot_gpa: the number in the first
 * 4 bytes, then readable pattern bytes, then writable buffers. */
void vqh_req_build(struct td_mem *m, struct vqh_req *r, uint32_t no,
		   uint64_t slot_gpa, uint64_t *rng, unsigned max_bufs);

/* Device side of the stress: check the readable stream, write the reply.
 * Returns bytes written. */
uint32_t vqh_serve(const struct vd_vq_elem *e);

/* Driver side: the reply is what vqh_serve wrote. */
bool vqh_req_check(struct td_mem *m, const struct vqh_req *r, uint32_t len);

/* Single-threaded stress: `total` requests through the queue, device
 * completing in order or in a random order, flushing at random points.
 * Checks data both ways and that every completion comes back once. */
void vqh_stress(struct vqh *h, uint32_t total, bool out_of_order,
		bool use_indirect, uint64_t seed);

/* ------------------------------------------------------------ threads */

struct vqh_thread {
	struct vqh *h;
	uint32_t total;
	uint64_t seed;
	atomic_bool stop;
	const char *fail; /* device thread's first failure */
};
double vqh_now(void);

/* The device on its own thread: pops, serves and pushes in a random order,
 * flushes; no cmocka asserts here (not thread-safe), failures recorded. */
void *vqh_device_thread(void *arg);

/* Driver on the calling thread, device on another: `total` requests with
 * data checked both ways. Fails after 5 s without progress, not hang. */
void vqh_stress_threaded(struct vqh *h, uint32_t total, bool use_indirect,
			 uint64_t seed);

#endif
