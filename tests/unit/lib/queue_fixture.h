/* The queue-thread test fixture (tests/unit/lib/queue_fixture.c): "echo",
 * a tiny device model that pops chains through the real virtqueue and
 * answers them (or holds them until told), a shim that counts what the
 * core calls, and a device of two queues on test memory whose driver is
 * the test driver. For tests/unit/test_queue*.c; test-only. */
#ifndef VIRTIOD_TEST_QUEUE_FIXTURE_H
#define VIRTIOD_TEST_QUEUE_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "test_driver.h"
#include "virtiod/device.h"

#define QSIZE	64
#define NQUEUES 2
#define BUF_LEN 16
#define WAIT_MS 5000

struct qstate {
	struct vd_queue *q;
	int release_fd; /* the test writes it: complete what is held */
	struct vd_vq_elem *held[QSIZE];
	unsigned nheld;
};

struct echo {
	struct vd_model m;
	/* behaviour, set by the test before starting */
	bool hold;	    /* keep popped chains until release_fd fires */
	bool one_per_kick;  /* pop one chain, then vd_queue_rekick */
	atomic_bool refuse; /* pop nothing (a model waiting for a reset) */
	int start_err;
	/* observations */
	atomic_int starts, stops, kicks, pops, batches;
	atomic_bool started_elsewhere; /* queue_start not on the test thread */
	atomic_int seq;		       /* orders events across threads */
	atomic_int completed_seq;
	struct qstate qs[NQUEUES];
};

extern struct echo qf_model;
extern pthread_t qf_test_thread; /* the test's, set by qf_setup */

/* ------------------------------------------------------------ the shim */

struct shim {
	atomic_int notify_queue, notify_config;
	atomic_int on_broken, on_pop, on_push, log_writes;
	atomic_uint_least64_t last_log_gpa;
};

extern struct shim qf_shim;
/* vq hooks a test may hand the core (ctx: &qf_shim) */
void qf_shim_on_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
		       const char *reason);
void qf_shim_on_pop(void *ctx, const struct vd_vq_elem *e);
void qf_shim_on_push(void *ctx, const struct vd_vq_elem *e);
void qf_shim_log_write(void *ctx, uint64_t gpa, uint64_t len);

/* ------------------------------------------------------------ fixture */

struct fixture {
	struct td_mem *mem;
	struct td_vq *tq[NQUEUES];
	struct vd_dev *dev;
	int kick_fd[NQUEUES];
};

extern struct fixture qf;
extern int qf_used_count;

/* cmocka setup/teardown: a fresh model, shim and device. */
int qf_setup(void **state);
int qf_teardown(void **state);
struct vd_queue *qf_q_at(int i);
/* Queue i's setup: its test rings, its kick fd, iovecs from the model. */
void qf_fill_setup(int i, struct vd_queue_setup *s);
void qf_start(int i);
void qf_kick(int fd);
void qf_nap_ms(long ms);
/* One chain: a readable and a writable buffer. */
void qf_add_chain(int i, void *token);
/* Collect used entries on queue i until `n` have come back in total. */
bool qf_used_reached(int i, int n);

/* Poll a condition another thread makes true; fail after WAIT_MS. */
#define QF_WAIT_FOR(cond)                                                      \
	do {                                                                   \
		int waited_ = 0;                                               \
		while (!(cond)) {                                              \
			assert_true(waited_++ < WAIT_MS);                      \
			qf_nap_ms(1);                                          \
		}                                                              \
	} while (0)

#endif
