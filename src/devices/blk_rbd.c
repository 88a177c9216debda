/* virtio-blk Ceph RBD store (rbd:POOL/IMAGE[@SNAP][:key=value...], QEMU's
 * spelling) through librbd's asynchronous API. Completions are signalled
 * by librbd on an eventfd (rbd_set_image_notification) that the queue
 * thread watches and drained with rbd_poll_io_events: no thread hop of our
 * own. Requests are bounded by librados' op timeouts (--io-timeout). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtiod/sandbox.h"

#include "blk.h"

#define RBD_MAX_KV 16

struct rbd_store {
	rados_t cluster;
	rados_ioctx_t ioctx;
	char *image, *snap; /* inside spec */
	char *spec;	    /* the parsed copy of --disk */
	uint64_t size;	    /* bytes at open, a multiple of lbs */
	unsigned lbs;
	bool readonly;
};

/* Cut the next field at an unescaped delimiter out of *p, in place, and
 * drop the backslashes of escapes (QEMU: "\:" is a colon in a value). */
static char *next_field(char **p, const char *delims, char *found)
{
	char *start = *p, *w = *p, *r = *p;

	*found = '\0';
	if (!start)
		return NULL;
	for (; *r; r++) {
		if (*r == '\\' && r[1]) {
			*w++ = *++r;
			continue;
		}
		if (strchr(delims, *r)) {
			*found = *r;
			*w = '\0';
			*p = r + 1;
			return start;
		}
		*w++ = *r;
	}
	*w = '\0';
	*p = NULL;
	return start;
}

struct rbd_spec {
	char *pool, *image, *snap, *conf, *id;
	unsigned n_kv;
	char *key[RBD_MAX_KV], *val[RBD_MAX_KV];
};

static int parse_spec(char *s, struct rbd_spec *sp, char *err, size_t errlen,
		      const char *disk)
{
	char *p = s + 4, d;

	memset(sp, 0, sizeof(*sp));
	sp->pool = next_field(&p, "/", &d);
	if (d != '/' || !*sp->pool) {
		snprintf(err, errlen,
			 "--disk %s: expected rbd:POOL/IMAGE[@SNAP][:conf="
			 "FILE][:id=USER]",
			 disk);
		return -EINVAL;
	}
	sp->image = next_field(&p, "@:", &d);
	if (!sp->image || !*sp->image) {
		snprintf(err, errlen, "--disk %s: no image name after the pool",
			 disk);
		return -EINVAL;
	}
	if (d == '@') {
		sp->snap = next_field(&p, ":", &d);
		if (!*sp->snap) {
			snprintf(err, errlen, "--disk %s: empty snapshot name",
				 disk);
			return -EINVAL;
		}
	}
	while (p) {
		char *key = next_field(&p, "=", &d), *val;

		if (d != '=') {
			snprintf(err, errlen,
				 "--disk %s: option '%s' is not KEY=VALUE",
				 disk, key);
			return -EINVAL;
		}
		val = next_field(&p, ":", &d);
		if (strcmp(key, "conf") == 0) {
			sp->conf = val;
		} else if (strcmp(key, "id") == 0) {
			sp->id = val;
		} else if (sp->n_kv < RBD_MAX_KV) {
			sp->key[sp->n_kv] = key;
			sp->val[sp->n_kv++] = val;
		} else {
			snprintf(err, errlen, "--disk %s: more than %d options",
				 disk, RBD_MAX_KV);
			return -EINVAL;
		}
	}
	return 0;
}

static void set_timeouts(rados_t cl, unsigned ms)
{
	char v[16];

	if (!ms)
		return;
	/* librados counts whole seconds. */
	snprintf(v, sizeof(v), "%u", (ms + 999) / 1000);
	rados_conf_set(cl, "rados_osd_op_timeout", v);
	rados_conf_set(cl, "rados_mon_op_timeout", v);
	rados_conf_set(cl, "client_mount_timeout", v);
}

static void store_free(struct rbd_store *st)
{
	if (!st)
		return;
	if (st->ioctx)
		rados_ioctx_destroy(st->ioctx);
	if (st->cluster)
		rados_shutdown(st->cluster);
	free(st->spec);
	free(st);
}

/* Opens the image on the calling thread, signals blocked: librbd starts
 * threads of its own, which must not take the daemon's signals. */
static int image_open(const struct rbd_store *st, rbd_image_t *img)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = st->readonly
		    ? rbd_open_read_only(st->ioctx, st->image, img, st->snap)
		    : rbd_open(st->ioctx, st->image, img, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int blk_rbd_open(struct blk_backend *be, const struct blk_opts *o, char *err,
		 size_t errlen)
{
	struct rbd_store *st = calloc(1, sizeof(*st));
	unsigned tmo = o->io_timeout_set ? o->io_timeout_ms
					 : BLK_IO_TIMEOUT_DEFAULT_MS;
	struct rbd_spec sp;
	rbd_image_t img = NULL;
	rbd_image_info_t info;

	/* librbd's threads and calls: its profile (docs/security.md). */
	vd_sandbox_need("rbd");
	uint64_t features = 0;
	sigset_t all, old;
	int r;

	if (!st || !(st->spec = strdup(o->disk))) {
		snprintf(err, errlen, "--disk %s: out of memory", o->disk);
		store_free(st);
		return -ENOMEM;
	}
	r = parse_spec(st->spec, &sp, err, errlen, o->disk);
	if (r < 0)
		goto fail_msg;
	st->image = sp.image;
	st->snap = sp.snap;
	/* A snapshot cannot change. */
	st->readonly = o->readonly || sp.snap;
	if (o->num_queues > 1 && !st->readonly) {
		snprintf(err, errlen,
			 "--disk %s: a writable RBD image is served by one "
			 "queue (each queue's image handle would fight for "
			 "the exclusive lock and keep a cache of its own); "
			 "use --num-queues 1",
			 o->disk);
		r = -EINVAL;
		goto fail_msg;
	}
	r = rados_create(&st->cluster, sp.id);
	if (r < 0) {
		snprintf(err, errlen, "--disk %s: librados: %s", o->disk,
			 strerror(-r));
		goto fail_msg;
	}
	r = rados_conf_read_file(st->cluster, sp.conf);
	if (r < 0 && sp.conf) {
		snprintf(err, errlen, "--disk %s: conf=%s: %s", o->disk,
			 sp.conf, strerror(-r));
		goto fail_msg;
	}
	for (unsigned i = 0; i < sp.n_kv; i++) {
		r = rados_conf_set(st->cluster, sp.key[i], sp.val[i]);
		if (r < 0) {
			snprintf(err, errlen,
				 "--disk %s: Ceph option %s=%s: %s", o->disk,
				 sp.key[i], sp.val[i], strerror(-r));
			goto fail_msg;
		}
	}
	set_timeouts(st->cluster, tmo);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = rados_connect(st->cluster);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		snprintf(err, errlen,
			 "--disk %s: cannot reach the Ceph cluster (%s); check "
			 "its monitors and conf=",
			 o->disk, strerror(-r));
		goto fail_msg;
	}
	r = rados_ioctx_create(st->cluster, sp.pool, &st->ioctx);
	if (r < 0) {
		snprintf(err, errlen, "--disk %s: pool %s: %s", o->disk,
			 sp.pool, strerror(-r));
		goto fail_msg;
	}
	r = image_open(st, &img);
	if (r < 0) {
		snprintf(err, errlen, "--disk %s: image %s%s%s: %s", o->disk,
			 sp.image, sp.snap ? "@" : "", sp.snap ? sp.snap : "",
			 strerror(-r));
		goto fail_msg;
	}
	r = rbd_stat(img, &info, sizeof(info));
	if (r == 0)
		r = rbd_get_features(img, &features);
	rbd_close(img);
	if (r < 0) {
		snprintf(err, errlen, "--disk %s: image size: %s", o->disk,
			 strerror(-r));
		goto fail_msg;
	}
	be->store = BLK_STORE_RBD;
	be->fd = -1;
	be->readonly = st->readonly;
	be->lbs = o->lbs ? o->lbs : BLK_SECTOR_SIZE;
	be->size = info.size - info.size % be->lbs;
	if (be->size == 0) {
		snprintf(err, errlen,
			 "--disk %s: smaller than one %u-byte block", o->disk,
			 be->lbs);
		r = -EINVAL;
		goto fail_msg;
	}
	/* An object is the unit RADOS writes and discards. */
	be->phys = be->lbs;
	be->opt_io = info.obj_size <= (1u << 30) ? (unsigned)info.obj_size : 0;
	be->can_discard = true;
	be->can_zero = true;
	be->has_fua = false; /* writethrough: write, then flush */
	st->size = be->size;
	st->lbs = be->lbs;
	be->remote = (struct blk_remote *)st;
	vd_info("blk rbd",
		"%s: %llu bytes in %llu-byte objects, features 0x%llx%s; "
		"--io-timeout %u ms",
		o->disk, (unsigned long long)info.size,
		(unsigned long long)info.obj_size, (unsigned long long)features,
		st->readonly ? ", read-only" : "", tmo);
	return 0;
fail_msg:
	store_free(st);
	return r < 0 ? r : -EINVAL;
}

void blk_rbd_close(struct blk_remote *r)
{
	store_free((struct rbd_store *)r);
}

/* ------------------------------------------------------------- engine */

/* One queue's image handle; every field is the queue thread's, but for
 * `wfd`, which librbd's watch callback writes. */
struct blk_rbdq {
	struct blk_engine_params p;
	const struct rbd_store *st;
	rbd_image_t img;
	int efd; /* librbd signals completions here */
	rbd_completion_t *comps;
	unsigned inflight;
	/* Queue 0 only: header updates (a resize) from rbd_update_watch. */
	int wfd;
	uint64_t watch;
	bool watching;
};

static uint64_t io_bytes(const struct blk_io *io)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < io->n_iov; i++)
		n += io->iov[i].iov_len;
	return n;
}

/* Everything librbd has completed, one batch_done per round. */
static bool drain(struct blk_rbdq *q)
{
	bool any = false;

	for (unsigned round = 0; round < 8; round++) {
		int n = rbd_poll_io_events(q->img, q->comps, (int)q->p.depth);

		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct blk_io *io = rbd_aio_get_arg(q->comps[i]);
			ssize_t r = rbd_aio_get_return_value(q->comps[i]);
			int res;

			rbd_aio_release(q->comps[i]);
			q->inflight--;
			if (r < 0)
				res = (int)r;
			else if (io->op == BLK_OP_READ ||
				 io->op == BLK_OP_WRITE)
				res = (int)io_bytes(io);
			else
				res = 0;
			q->p.done(q->p.ctx, io, res);
		}
		q->p.batch_done(q->p.ctx);
		any = true;
	}
	return any;
}

static void on_efd(void *opaque, int fd, uint32_t events)
{
	struct blk_rbdq *q = opaque;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: already counted; drain anyway */
	}
	drain(q);
}

/* librbd's thread: only wake the queue thread. */
static void on_update(void *arg)
{
	struct blk_rbdq *q = arg;
	uint64_t one = 1;

	if (write(q->wfd, &one, sizeof(one)) < 0) {
		/* counter saturated: a wakeup is pending */
	}
}

static void check_size(struct blk_rbdq *q)
{
	uint64_t size;

	if (rbd_get_size(q->img, &size) == 0)
		q->p.resized(q->p.ctx, size - size % q->st->lbs);
}

static void on_wfd(void *opaque, int fd, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	check_size(opaque);
}

static void rbdq_free(struct blk_rbdq *q)
{
	if (q->watching)
		rbd_update_unwatch(q->img, q->watch);
	if (q->wfd >= 0) {
		vd_loop_del(q->p.loop, q->wfd);
		close(q->wfd);
	}
	if (q->efd >= 0)
		vd_loop_del(q->p.loop, q->efd);
	if (q->img)
		rbd_close(q->img);
	if (q->efd >= 0)
		close(q->efd);
	free(q->comps);
	free(q);
}

static int rbdq_init(const struct blk_engine_params *p, struct blk_engine **out)
{
	struct blk_rbdq *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	q->p = *p;
	q->st = (const struct rbd_store *)p->remote;
	q->efd = q->wfd = -1;
	q->comps = calloc(p->depth, sizeof(*q->comps));
	if (!q->comps) {
		free(q);
		return -ENOMEM;
	}
	r = image_open(q->st, &q->img);
	if (r < 0) {
		q->img = NULL;
		vd_err(p->who, "rbd: opening the image: %s", strerror(-r));
		goto fail;
	}
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = rbd_set_image_notification(q->img, q->efd, EVENT_TYPE_EVENTFD);
	if (r == 0)
		r = vd_loop_add(p->loop, q->efd, EPOLLIN, on_efd, q);
	if (r < 0)
		goto fail;
	if (p->index == 0 && p->resized) {
		q->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->wfd < 0) {
			r = -errno;
			goto fail;
		}
		r = vd_loop_add(p->loop, q->wfd, EPOLLIN, on_wfd, q);
		if (r == 0)
			r = rbd_update_watch(q->img, &q->watch, on_update, q);
		if (r < 0)
			goto fail;
		q->watching = true;
		/* A resize while no queue ran. */
		check_size(q);
	}
	*out = (struct blk_engine *)q;
	return 0;
fail:
	rbdq_free(q);
	return r;
}

static int rbdq_queue(struct blk_engine *e, struct blk_io *io)
{
	struct blk_rbdq *q = (struct blk_rbdq *)e;
	rbd_completion_t c;
	int r;

	if (q->inflight >= q->p.depth)
		return -EBUSY;
	/* librbd allocates each completion; it has no reusable ones. */
	r = rbd_aio_create_completion(io, NULL, &c);
	if (r < 0)
		return r;
	switch (io->op) {
	case BLK_OP_READ:
		r = rbd_aio_readv(q->img, io->iov, (int)io->n_iov, io->off, c);
		break;
	case BLK_OP_WRITE:
		r = rbd_aio_writev(q->img, io->iov, (int)io->n_iov, io->off, c);
		break;
	case BLK_OP_FSYNC:
		r = rbd_aio_flush(q->img, c);
		break;
	case BLK_OP_TRIM:
		r = rbd_aio_discard(q->img, io->off, io->len, c);
		break;
	case BLK_OP_ZERO:
		r = rbd_aio_write_zeroes(
			q->img, io->off, io->len, c,
			io->mode ? 0 : RBD_WRITE_ZEROES_FLAG_THICK_PROVISION,
			0);
		break;
	default:
		r = -EOPNOTSUPP;
		break;
	}
	if (r < 0) {
		rbd_aio_release(c);
		return r;
	}
	q->inflight++;
	return 0;
}

/* librbd sends at queue time. */
static int rbdq_submit(struct blk_engine *e)
{
	(void)e;
	return 0;
}

static int rbdq_wait(struct blk_engine *e)
{
	struct blk_rbdq *q = (struct blk_rbdq *)e;

	if (!q->inflight)
		return -ENOENT;
	while (!drain(q)) {
		struct pollfd pfd = {.fd = q->efd, .events = POLLIN};
		uint64_t v;

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
		if (read(q->efd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
	}
	return 0;
}

static bool rbdq_poll(struct blk_engine *e)
{
	struct blk_rbdq *q = (struct blk_rbdq *)e;

	return q->inflight && drain(q);
}

static void rbdq_fini(struct blk_engine *e)
{
	rbdq_free((struct blk_rbdq *)e);
}

const struct blk_engine_ops blk_rbd_ops = {
	.name = "rbd",
	.init = rbdq_init,
	.queue = rbdq_queue,
	.submit = rbdq_submit,
	.wait = rbdq_wait,
	.poll = rbdq_poll,
	.fini = rbdq_fini,
};
