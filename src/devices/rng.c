/* virtio-rng device type (virtio 1.2 §5.4): each buffer the driver posts
 * is filled from getrandom() straight into guest memory. --rate holds
 * requests back through a token bucket (they wait in the ring, a timer
 * brings them on); a request is never failed, at most filled in part,
 * which the spec allows (the used length says how much). */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "rng.h"

#define RNG_QUEUE_SIZE 1024
/* With a rate, wait until this much (or the whole burst) can go, so a
 * slow rate gives few, useful fills rather than many of a byte. */
#define RNG_MIN_FILL 64
#define RNG_BUDGET   256
#define NS	     1000000000ULL

/* ------------------------------------------------------------ the bucket */

void rng_bucket_init(struct rng_bucket *b, uint64_t rate, uint64_t burst,
		     uint64_t now_ns)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->last_ns = now_ns;
	b->frac = 0;
}

static void refill(struct rng_bucket *b, uint64_t now_ns)
{
	uint64_t dt;
	unsigned __int128 add;

	if (now_ns <= b->last_ns)
		return; /* a clock that stands still or steps back adds none */
	dt = now_ns - b->last_ns;
	b->last_ns = now_ns;
	add = (unsigned __int128)dt * b->rate + b->frac;
	b->frac = (uint64_t)(add % NS);
	add /= NS;
	if (add >= b->burst - b->tokens) {
		b->tokens = b->burst;
		b->frac = 0;
	} else {
		b->tokens += (uint64_t)add;
	}
}

uint64_t rng_bucket_take(struct rng_bucket *b, uint64_t now_ns, uint64_t want)
{
	uint64_t n;

	refill(b, now_ns);
	n = want < b->tokens ? want : b->tokens;
	b->tokens -= n;
	return n;
}

uint64_t rng_bucket_wait_ns(struct rng_bucket *b, uint64_t now_ns,
			    uint64_t want)
{
	unsigned __int128 need;

	refill(b, now_ns);
	if (want > b->burst)
		want = b->burst;
	if (b->tokens >= want)
		return 0;
	need = (unsigned __int128)(want - b->tokens) * NS;
	need = need > b->frac ? need - b->frac : 0;
	return (uint64_t)((need + b->rate - 1) / b->rate);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

uint64_t (*rng_clock_ns)(void) = monotonic_ns;

/* ------------------------------------------------------------ the device */

struct rng_opts {
	uint64_t rate; /* bytes per second, 0: unlimited */
};

struct rng_dev {
	struct vd_model model;
	uint64_t rate;
};

struct rng_queue {
	struct rng_dev *d;
	struct vd_queue *q;
	struct vd_vq *vq;
	const char *who;
	struct rng_bucket bucket;
	int timer_fd; /* -1 without a rate */
	bool timer_armed;
	uint64_t bytes, requests, waits;
	struct vd_ratelimit rl;
};

static const struct vd_device_option rng_options[] = {
	{"rate", "BYTES/s",
	 "entropy at most this fast (suffix k or M for 1000s); requests "
	 "wait, they never fail (default: unlimited)"},
	{NULL, NULL, NULL},
};

static void *rng_opts_new(void)
{
	return calloc(1, sizeof(struct rng_opts));
}

static void rng_opts_free(void *opts)
{
	free(opts);
}

static int rng_opts_set(void *opts, const char *name, const char *value,
			char *err, size_t errlen)
{
	struct rng_opts *o = opts;
	unsigned long long v;
	char *end;

	if (strcmp(name, "rate") != 0) {
		snprintf(err, errlen, "--%s: not an rng option", name);
		return -EINVAL;
	}
	if (!value || !*value || *value == '-' || *value == '+')
		goto bad;
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno || end == value)
		goto bad;
	if (*end == 'k' || *end == 'K') {
		v *= 1000;
		end++;
	} else if (*end == 'M') {
		v *= 1000000;
		end++;
	}
	if (*end || v == 0 || v > (1ULL << 40))
		goto bad;
	o->rate = v;
	return 0;
bad:
	snprintf(err, errlen,
		 "--rate %s: expected bytes per second, 1 to 2^40, as 4096, "
		 "64k or 1M",
		 value ? value : "");
	return -EINVAL;
}

static void arm(struct rng_queue *rq, uint64_t ns)
{
	struct itimerspec its = {
		.it_value = {.tv_sec = (time_t)(ns / NS),
			     .tv_nsec = (long)(ns % NS)},
	};

	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	if (timerfd_settime(rq->timer_fd, 0, &its, NULL) == 0)
		rq->timer_armed = true;
	else
		vd_log_ratelimited(&rq->rl, VD_LOG_ERR, rq->who, "timerfd: %s",
				   strerror(errno));
}

/* Fills len bytes of the buffers with entropy; returns what was filled. */
static uint64_t fill(struct rng_queue *rq, const struct vd_vq_elem *e,
		     uint64_t len)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < e->n_write && done < len; i++) {
		char *p = e->write_iov[i].iov_base;
		size_t n = e->write_iov[i].iov_len;

		if (n > len - done)
			n = (size_t)(len - done);
		while (n) {
			/* Blocks only before the host's pool is seeded. */
			ssize_t got = getrandom(p, n, 0);

			if (got < 0) {
				if (errno == EINTR)
					continue;
				vd_log_ratelimited(&rq->rl, VD_LOG_ERR, rq->who,
						   "getrandom: %s",
						   strerror(errno));
				return done;
			}
			p += got;
			n -= (size_t)got;
			done += (uint64_t)got;
		}
	}
	return done;
}

static void serve(struct rng_queue *rq)
{
	for (unsigned budget = RNG_BUDGET; budget; budget--) {
		struct vd_vq_elem *e;
		uint64_t n = 0;

		if (rq->timer_fd >= 0) {
			uint64_t now = rng_clock_ns();
			uint64_t wait = rng_bucket_wait_ns(&rq->bucket, now,
							   RNG_MIN_FILL);

			if (wait) {
				/* Requests wait in the ring until the bucket
				 * holds enough. */
				if (!rq->timer_armed &&
				    vd_vq_avail_pending(rq->vq)) {
					rq->waits++;
					arm(rq, wait);
				}
				return;
			}
		}
		if (vd_vq_pop(rq->vq, &e) <= 0)
			return;
		if (e->n_read) {
			/* §5.4.6.1: buffers are device-writable only. */
			vd_log_ratelimited(&rq->rl, VD_LOG_WARN, rq->who,
					   "request %u with device-readable "
					   "buffers; completed empty",
					   e->id);
		} else {
			n = e->write_len;
			if (rq->timer_fd >= 0)
				n = rng_bucket_take(&rq->bucket, rng_clock_ns(),
						    n);
			n = fill(rq, e, n);
		}
		rq->bytes += n;
		rq->requests++;
		vd_vq_push(rq->vq, e, (uint32_t)n);
	}
	vd_queue_rekick(rq->q);
}

static void on_timer(void *opaque, int fd, uint32_t events)
{
	struct rng_queue *rq = opaque;
	uint64_t ticks;

	(void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	rq->timer_armed = false;
	serve(rq);
}

static int rng_queue_start(void *model, struct vd_queue *q)
{
	struct rng_dev *d = model;
	struct rng_queue *rq = calloc(1, sizeof(*rq));
	int r;

	if (!rq)
		return -ENOMEM;
	rq->d = d;
	rq->q = q;
	rq->vq = vd_queue_vq(q);
	rq->who = vd_queue_who(q);
	rq->timer_fd = -1;
	rq->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	if (d->rate) {
		/* A second's worth may go at once, at least one fill. */
		rng_bucket_init(&rq->bucket, d->rate,
				d->rate < RNG_MIN_FILL ? RNG_MIN_FILL : d->rate,
				rng_clock_ns());
		rq->timer_fd = timerfd_create(CLOCK_MONOTONIC,
					      TFD_NONBLOCK | TFD_CLOEXEC);
		if (rq->timer_fd < 0) {
			r = -errno;
			free(rq);
			return r;
		}
		r = vd_loop_add(vd_queue_loop(q), rq->timer_fd, EPOLLIN,
				on_timer, rq);
		if (r < 0) {
			close(rq->timer_fd);
			free(rq);
			return r;
		}
	}
	vd_queue_set_model_data(q, rq);
	return 0;
}

static void rng_queue_kick(void *model, struct vd_queue *q)
{
	(void)model;
	serve(vd_queue_model_data(q));
}

static void rng_queue_stop(void *model, struct vd_queue *q)
{
	struct rng_queue *rq = vd_queue_model_data(q);

	(void)model;
	if (rq->timer_fd >= 0) {
		vd_loop_del(vd_queue_loop(q), rq->timer_fd);
		close(rq->timer_fd);
	}
	vd_info(rq->who,
		"%llu requests, %llu bytes; waited for the rate %llu "
		"times",
		(unsigned long long)rq->requests, (unsigned long long)rq->bytes,
		(unsigned long long)rq->waits);
	free(rq);
	vd_queue_set_model_data(q, NULL);
}

static void rng_destroy(void *model)
{
	free(model);
}

static const struct vd_device_ops rng_ops = {
	.queue_start = rng_queue_start,
	.queue_kick = rng_queue_kick,
	.queue_stop = rng_queue_stop,
	.destroy = rng_destroy,
};

static int rng_create(void *opts, struct vd_model **out, char *err,
		      size_t errlen)
{
	const struct rng_opts *o = opts;
	struct rng_dev *d = calloc(1, sizeof(*d));

	if (!d) {
		snprintf(err, errlen, "rng: out of memory");
		return -ENOMEM;
	}
	d->rate = o ? o->rate : 0;
	d->model = (struct vd_model){
		.ops = &rng_ops,
		.type_name = "rng",
		.device_id = VIRTIO_ID_RNG,
		.features = 1ULL << VIRTIO_F_VERSION_1 |
			    1ULL << VIRTIO_RING_F_INDIRECT_DESC |
			    1ULL << VIRTIO_RING_F_EVENT_IDX |
			    1ULL << VIRTIO_F_RING_PACKED,
		.num_queues = 1,
		.max_queue_size = RNG_QUEUE_SIZE,
		.config_size = 0,
		.max_descs = 16,
		.max_desc_len = 65536,
	};
	*out = &d->model;
	return 0;
}

/* A toolstack's virtio node describes an rng completely. */
static const struct vd_device_backend_key rng_backend_keys[] = {
	{NULL, NULL, NULL, NULL},
};

const struct vd_device_type vd_rng_type = {
	.name = "rng",
	.summary = "virtio-rng: entropy from the host's getrandom()",
	.device_id = VIRTIO_ID_RNG,
	.options = rng_options,
	.backend_keys = rng_backend_keys,
	.opts_new = rng_opts_new,
	.opts_set = rng_opts_set,
	.create = rng_create,
	.opts_free = rng_opts_free,
	.vhost_user_type = "",
};
