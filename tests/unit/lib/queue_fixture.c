/* The queue-thread test fixture (queue_fixture.h). Test-only. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue_fixture.h"

struct echo qf_model;
pthread_t qf_test_thread;

static void complete(struct vd_queue *q, struct vd_vq_elem *e)
{
	uint32_t written = 0;

	for (unsigned i = 0; i < e->n_write; i++) {
		memset(e->write_iov[i].iov_base, 0xab, e->write_iov[i].iov_len);
		written += (uint32_t)e->write_iov[i].iov_len;
	}
	vd_vq_push(vd_queue_vq(q), e, written);
}

static void complete_held(struct qstate *s)
{
	if (!s->nheld)
		return;
	for (unsigned i = 0; i < s->nheld; i++)
		complete(s->q, s->held[i]);
	s->nheld = 0;
	/* No vd_queue_complete_batch: the core publishes after the round. */
	atomic_fetch_add(&qf_model.batches, 1);
	atomic_store(&qf_model.completed_seq,
		     atomic_fetch_add(&qf_model.seq, 1) + 1);
}

static void on_release(void *opaque, int fd, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) == sizeof(v))
		complete_held(opaque);
}

static int echo_queue_start(void *model, struct vd_queue *q)
{
	struct qstate *s = &qf_model.qs[vd_queue_index(q)];

	(void)model;
	atomic_fetch_add(&qf_model.starts, 1);
	if (!pthread_equal(pthread_self(), qf_test_thread))
		atomic_store(&qf_model.started_elsewhere, true);
	if (qf_model.start_err)
		return qf_model.start_err;
	s->q = q;
	s->nheld = 0;
	vd_queue_set_model_data(q, s);
	return vd_loop_add(vd_queue_loop(q), s->release_fd, EPOLLIN, on_release,
			   s);
}

static void echo_queue_kick(void *model, struct vd_queue *q)
{
	struct qstate *s = vd_queue_model_data(q);
	struct vd_vq_elem *e;
	bool pushed = false;

	(void)model;
	atomic_fetch_add(&qf_model.kicks, 1);
	if (atomic_load(&qf_model.refuse))
		return;
	while (vd_vq_pop(vd_queue_vq(q), &e) == 1) {
		atomic_fetch_add(&qf_model.pops, 1);
		if (qf_model.hold) {
			s->held[s->nheld++] = e;
		} else {
			complete(q, e);
			pushed = true;
		}
		if (qf_model.one_per_kick) {
			vd_queue_rekick(q);
			break;
		}
	}
	if (pushed)
		atomic_fetch_add(&qf_model.batches, 1);
}

static void echo_queue_stop(void *model, struct vd_queue *q)
{
	struct qstate *s = vd_queue_model_data(q);

	(void)model;
	atomic_fetch_add(&qf_model.stops, 1);
	complete_held(s);
	vd_loop_del(vd_queue_loop(q), s->release_fd);
}

static void echo_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	(void)model;
	(void)off;
	memset(buf, 0, len);
}

static const struct vd_device_ops echo_ops = {
	.get_config = echo_get_config,
	.queue_start = echo_queue_start,
	.queue_kick = echo_queue_kick,
	.queue_stop = echo_queue_stop,
};

struct shim qf_shim;

static void shim_notify_queue(void *ctx, struct vd_queue *q)
{
	(void)q;
	atomic_fetch_add(&((struct shim *)ctx)->notify_queue, 1);
}

static void shim_notify_config(void *ctx)
{
	atomic_fetch_add(&((struct shim *)ctx)->notify_config, 1);
}

static const struct vd_dev_shim_ops shim_ops = {
	.notify_queue = shim_notify_queue,
	.notify_config = shim_notify_config,
};

void qf_shim_on_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
		       const char *reason)
{
	(void)vq;
	(void)err;
	(void)reason;
	atomic_fetch_add(&((struct shim *)ctx)->on_broken, 1);
}

void qf_shim_on_pop(void *ctx, const struct vd_vq_elem *e)
{
	(void)e;
	atomic_fetch_add(&((struct shim *)ctx)->on_pop, 1);
}

void qf_shim_on_push(void *ctx, const struct vd_vq_elem *e)
{
	(void)e;
	atomic_fetch_add(&((struct shim *)ctx)->on_push, 1);
}

void qf_shim_log_write(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)len;
	atomic_store(&((struct shim *)ctx)->last_log_gpa, gpa);
	atomic_fetch_add(&((struct shim *)ctx)->log_writes, 1);
}

/* ------------------------------------------------------------ fixture */

struct fixture qf;

int qf_setup(void **state)
{
	memset(&qf, 0, sizeof(qf));
	memset(&qf_model, 0, sizeof(qf_model));
	memset(&qf_shim, 0, sizeof(qf_shim));
	qf_test_thread = pthread_self();
	qf_model.m = (struct vd_model){
		.ops = &echo_ops,
		.type_name = "echo",
		.device_id = 4,
		.features = 1ull << VIRTIO_F_VERSION_1,
		.num_queues = NQUEUES,
		.max_queue_size = QSIZE,
		.config_size = 8,
		.max_descs = 4,
	};
	qf.mem = td_mem_new(1 << 20, 2);
	for (int i = 0; i < NQUEUES; i++) {
		qf.tq[i] = td_vq_new(qf.mem, VD_VQ_SPLIT, QSIZE, false, false);
		qf.kick_fd[i] = eventfd(0, EFD_NONBLOCK);
		qf_model.qs[i].release_fd = eventfd(0, EFD_NONBLOCK);
		assert_true(qf.kick_fd[i] >= 0 &&
			    qf_model.qs[i].release_fd >= 0);
	}
	qf.dev = vd_dev_new(&qf_model.m, td_mem_vd(qf.mem), &shim_ops, &qf_shim,
			    "echo0");
	assert_non_null(qf.dev);
	*state = &qf;
	return 0;
}

int qf_teardown(void **state)
{
	(void)state;
	vd_dev_free(qf.dev); /* stops every queue */
	for (int i = 0; i < NQUEUES; i++) {
		td_vq_free(qf.tq[i]);
		close(qf.kick_fd[i]);
		close(qf_model.qs[i].release_fd);
	}
	td_mem_free(qf.mem);
	return 0;
}

struct vd_queue *qf_q_at(int i)
{
	return vd_dev_queue(qf.dev, (unsigned)i);
}

void qf_fill_setup(int i, struct vd_queue_setup *s)
{
	memset(s, 0, sizeof(*s));
	td_vq_fill_config(qf.tq[i], &s->vq);
	s->vq.max_iov = 0; /* from the model */
	s->kick_fd = qf.kick_fd[i];
}

void qf_start(int i)
{
	struct vd_queue_setup s;

	qf_fill_setup(i, &s);
	assert_int_equal(vd_queue_start(qf_q_at(i), &s), 0);
}

void qf_kick(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

void qf_nap_ms(long ms)
{
	struct timespec t = {.tv_sec = ms / 1000,
			     .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&t, NULL);
}

/* One chain: a readable and a writable buffer. */
void qf_add_chain(int i, void *token)
{
	struct td_buf b[2] = {
		{.gpa = td_mem_alloc(qf.mem, BUF_LEN, 16), .len = BUF_LEN},
		{.gpa = td_mem_alloc(qf.mem, BUF_LEN, 16),
		 .len = BUF_LEN,
		 .write = true},
	};

	assert_int_equal(td_vq_add(qf.tq[i], b, 2, false, token), 0);
}

int qf_used_count;

/* Collect used entries on queue i until `n` have come back in total. */
bool qf_used_reached(int i, int n)
{
	void *token;
	uint32_t len;

	while (td_vq_get_used(qf.tq[i], &token, &len) == 1) {
		assert_int_equal(len, BUF_LEN);
		qf_used_count++;
	}
	return qf_used_count >= n;
}
