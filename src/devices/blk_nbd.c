/* virtio-blk NBD store (nbd://, nbd+unix://) through libnbd's asynchronous
 * API: one connection per queue, driven from that queue's event loop, no
 * thread of its own. A request the server has not answered within
 * --io-timeout is answered IOERR; a lost connection is made again when the
 * server returns; a write is never reported done before the server
 * acknowledged it. */
#include <errno.h>
#include <libnbd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "virtiod/sandbox.h"

#include "blk.h"

/* Between two connection attempts while requests wait for one. */
#define NBD_RECONNECT_MS 250u
/* Opening the store when --io-timeout is 0 (no limit on requests). */
#define NBD_OPEN_TIMEOUT_MS 30000u

struct nbd_store {
	char *uri;
	char who[48];
	uint64_t size; /* served bytes, a multiple of lbs */
	unsigned lbs;
	unsigned timeout_ms;
	bool can_flush;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *nbd_err(void)
{
	const char *e = nbd_get_error();

	return e ? e : "unknown error";
}

/* Connect h to uri within timeout_ms, driving the asynchronous connect
 * with poll (start-up only: the queues never block on a connection). */
static int connect_bounded(struct nbd_handle *h, const char *uri,
			   unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	if (nbd_aio_connect_uri(h, uri) < 0)
		return -1;
	while (nbd_aio_is_connecting(h) > 0) {
		unsigned dir = nbd_aio_get_direction(h);
		struct pollfd pfd = {.fd = nbd_aio_get_fd(h)};
		uint64_t now = now_ns();
		int r;

		if (now >= end) {
			errno = ETIMEDOUT;
			return -2;
		}
		pfd.events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
			     (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
		r = poll(&pfd, 1, (int)((end - now) / 1000000ull) + 1);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) &&
		    (dir & LIBNBD_AIO_DIRECTION_READ)) {
			if (nbd_aio_notify_read(h) < 0)
				return -1;
		} else if (pfd.revents & (POLLOUT | POLLHUP | POLLERR)) {
			if (nbd_aio_notify_write(h) < 0)
				return -1;
		}
	}
	return nbd_aio_is_ready(h) > 0 ? 0 : -1;
}

int blk_nbd_open(struct blk_backend *be, const struct blk_opts *o, char *err,
		 size_t errlen)
{
	struct nbd_store *st = calloc(1, sizeof(*st));
	struct nbd_handle *h = NULL;
	int64_t size, minb, prefb;
	unsigned tmo = o->io_timeout_set ? o->io_timeout_ms
					 : BLK_IO_TIMEOUT_DEFAULT_MS;
	int ret = -EIO, r;

	/* libnbd's calls (sockets, reconnects) are allowed by its profile. */
	vd_sandbox_need("nbd");

	if (!st || !(st->uri = strdup(o->disk))) {
		snprintf(err, errlen, "--disk %s: out of memory", o->disk);
		ret = -ENOMEM;
		goto fail;
	}
	st->timeout_ms = tmo;
	h = nbd_create();
	if (!h) {
		snprintf(err, errlen, "--disk %s: libnbd: %s", o->disk,
			 nbd_err());
		goto fail;
	}
	r = connect_bounded(h, o->disk, tmo ? tmo : NBD_OPEN_TIMEOUT_MS);
	if (r < 0) {
		if (r == -2)
			snprintf(err, errlen,
				 "--disk %s: the NBD server did not complete "
				 "the handshake within %u ms; is it running?",
				 o->disk, tmo ? tmo : NBD_OPEN_TIMEOUT_MS);
		else
			snprintf(err, errlen,
				 "--disk %s: cannot connect: %s; check the "
				 "server and the URI",
				 o->disk, nbd_err());
		goto fail;
	}
	size = nbd_get_size(h);
	minb = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	prefb = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
	if (size < 0) {
		snprintf(err, errlen, "--disk %s: export size: %s", o->disk,
			 nbd_err());
		goto fail;
	}
	if (!o->readonly && nbd_is_read_only(h) > 0) {
		snprintf(err, errlen,
			 "--disk %s: the NBD export is read-only; add "
			 "--readonly",
			 o->disk);
		ret = -EROFS;
		goto fail;
	}
	/* One connection per queue: a flush on one covers the writes of
	 * another only if the server says so (NBD multi-conn). */
	if (o->num_queues > 1 && !o->readonly && nbd_can_multi_conn(h) <= 0) {
		snprintf(err, errlen,
			 "--disk %s: the NBD server does not advertise "
			 "multi-conn, so a flush on one queue's connection "
			 "would not cover another's writes; use --num-queues "
			 "1 (or a server with multi-conn)",
			 o->disk);
		ret = -EINVAL;
		goto fail;
	}
	if (minb > 4096) {
		snprintf(err, errlen,
			 "--disk %s: the export's minimum block size %lld is "
			 "more than virtio-blk's 4096",
			 o->disk, (long long)minb);
		ret = -EINVAL;
		goto fail;
	}
	be->store = BLK_STORE_NBD;
	be->fd = -1;
	be->readonly = o->readonly;
	be->lbs = o->lbs ? o->lbs : (minb > 512 ? 4096 : BLK_SECTOR_SIZE);
	if (minb > (int64_t)be->lbs) {
		snprintf(err, errlen,
			 "--logical-block-size %u: the export %s needs "
			 "%lld-byte "
			 "blocks",
			 be->lbs, o->disk, (long long)minb);
		ret = -EINVAL;
		goto fail;
	}
	be->size = (uint64_t)size - (uint64_t)size % be->lbs;
	if (be->size == 0) {
		snprintf(err, errlen,
			 "--disk %s: smaller than one %u-byte block", o->disk,
			 be->lbs);
		ret = -EINVAL;
		goto fail;
	}
	be->phys = prefb > 0 && prefb <= (1 << 20) && !(prefb & (prefb - 1)) &&
				   prefb >= be->lbs
			   ? (unsigned)prefb
			   : be->lbs;
	be->opt_io = be->phys;
	be->can_discard = nbd_can_trim(h) > 0;
	be->can_zero = nbd_can_zero(h) > 0;
	be->has_fua = nbd_can_fua(h) > 0;
	st->can_flush = nbd_can_flush(h) > 0;
	st->size = be->size;
	st->lbs = be->lbs;
	snprintf(st->who, sizeof(st->who), "nbd %.40s", o->disk);
	be->remote = (struct blk_remote *)st;
	vd_info(st->who,
		"export of %lld bytes%s; flush %s, fua %s, trim %s, zero %s, "
		"multi-conn %s; --io-timeout %u ms",
		(long long)size, nbd_is_read_only(h) > 0 ? ", read-only" : "",
		st->can_flush ? "yes" : "no", be->has_fua ? "yes" : "no",
		be->can_discard ? "yes" : "no", be->can_zero ? "yes" : "no",
		nbd_can_multi_conn(h) > 0 ? "yes" : "no", tmo);
	/* The queues make their own connections. */
	nbd_close(h);
	return 0;
fail:
	nbd_close(h);
	if (st)
		free(st->uri);
	free(st);
	return ret;
}

void blk_nbd_close(struct blk_remote *r)
{
	struct nbd_store *st = (struct nbd_store *)r;

	if (st)
		free(st->uri);
	free(st);
}

/* ------------------------------------------------------------- engine */

enum nbdq_state {
	NQ_DOWN,       /* no connection; requests park */
	NQ_CONNECTING, /* handshake under way on the loop */
	NQ_READY,
};

struct io_list {
	struct blk_io *head, *tail;
};

/* One queue's connection; every field is the queue thread's. */
struct blk_nbdq {
	struct blk_engine_params p;
	const struct nbd_store *st;
	struct nbd_handle *h;
	enum nbdq_state state;
	int fd;		 /* h's socket while on the loop, else -1 */
	uint32_t events; /* what fd is watched for */
	uint64_t conn_start_ns, last_try_ns;
	bool was_lost; /* a connection broke: say so when it is back */
	int tfd;       /* deadline and reconnect tick */
	bool tick_armed;
	struct io_list pend;   /* queued, not yet given to libnbd */
	struct io_list flight; /* on the connection */
	struct io_list parked; /* waiting for a connection */
	struct io_list done;   /* answered, not yet delivered */
	unsigned busy;	       /* ops in any list above */
	bool delivering;
	struct vd_ratelimit rl;
};

static void list_push(struct io_list *l, struct blk_io *io)
{
	io->next = NULL;
	io->prev = l->tail;
	if (l->tail)
		l->tail->next = io;
	else
		l->head = io;
	l->tail = io;
}

static void list_del(struct io_list *l, struct blk_io *io)
{
	if (io->prev)
		io->prev->next = io->next;
	else
		l->head = io->next;
	if (io->next)
		io->next->prev = io->prev;
	else
		l->tail = io->prev;
	io->next = io->prev = NULL;
}

static struct blk_io *list_pop(struct io_list *l)
{
	struct blk_io *io = l->head;

	if (io)
		list_del(l, io);
	return io;
}

/* Lost connection, server going away: worth another try on a new one. */
static bool conn_error(int e)
{
	return e == ENOTCONN || e == ESHUTDOWN || e == ECONNRESET || e == EPIPE;
}

/* libnbd calls this on the queue thread, inside notify_read or when the
 * connection dies; nothing here may call back into libnbd. */
static int cmd_done(void *user_data, int *error)
{
	struct blk_io *io = user_data;
	struct blk_nbdq *q = io->owner;

	if (*error && !io->err)
		io->err = *error;
	if (--io->pending == 0) {
		list_del(&q->flight, io);
		list_push(&q->done, io);
	}
	return 1; /* retire the command */
}

static uint64_t io_bytes(const struct blk_io *io)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < io->n_iov; i++)
		n += io->iov[i].iov_len;
	return n;
}

/* Hand one op to libnbd: one command per buffer (libnbd has no vectored
 * read or write; each buffer is contiguous in the image). */
static void issue(struct blk_nbdq *q, struct blk_io *io)
{
	nbd_completion_callback cb = {.callback = cmd_done, .user_data = io};
	uint64_t off = io->off;
	int64_t c = 0;

	io->err = 0;
	io->pending = 1; /* held until every command is issued */
	list_push(&q->flight, io);
	switch (io->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		for (unsigned i = 0; i < io->n_iov && c >= 0; i++) {
			const struct iovec *v = &io->iov[i];

			if (io->op == BLK_OP_READ)
				c = nbd_aio_pread(q->h, v->iov_base, v->iov_len,
						  off, cb, 0);
			else
				c = nbd_aio_pwrite(q->h, v->iov_base,
						   v->iov_len, off, cb,
						   io->rw_flags & RWF_DSYNC
							   ? LIBNBD_CMD_FLAG_FUA
							   : 0);
			if (c >= 0)
				io->pending++;
			off += v->iov_len;
		}
		break;
	case BLK_OP_FSYNC:
		/* A server without flush writes through. */
		if (q->st->can_flush && (c = nbd_aio_flush(q->h, cb, 0)) >= 0)
			io->pending++;
		break;
	case BLK_OP_TRIM:
		if ((c = nbd_aio_trim(q->h, io->len, io->off, cb, 0)) >= 0)
			io->pending++;
		break;
	case BLK_OP_ZERO:
		c = nbd_aio_zero(q->h, io->len, io->off, cb,
				 io->mode ? 0 : LIBNBD_CMD_FLAG_NO_HOLE);
		if (c >= 0)
			io->pending++;
		break;
	default:
		c = -1;
		errno = EOPNOTSUPP;
		io->err = EOPNOTSUPP;
		break;
	}
	if (c < 0 && !io->err) {
		io->err = nbd_get_errno();
		if (!io->err)
			io->err = EIO;
	}
	if (--io->pending == 0) {
		list_del(&q->flight, io);
		list_push(&q->done, io);
	}
}

static void tick_arm(struct blk_nbdq *q)
{
	unsigned ms = q->st->timeout_ms / 4;
	struct itimerspec its;

	if (q->tick_armed)
		return;
	if (ms < 10)
		ms = 10;
	if (ms > NBD_RECONNECT_MS)
		ms = NBD_RECONNECT_MS;
	its.it_interval.tv_sec = ms / 1000;
	its.it_interval.tv_nsec = (long)(ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(q->tfd, 0, &its, NULL) == 0)
		q->tick_armed = true;
}

static void tick_disarm(struct blk_nbdq *q)
{
	struct itimerspec its = {0};

	if (q->tick_armed && timerfd_settime(q->tfd, 0, &its, NULL) == 0)
		q->tick_armed = false;
}

static void update_events(struct blk_nbdq *q)
{
	unsigned dir;
	uint32_t ev;

	if (q->fd < 0)
		return;
	dir = nbd_aio_get_direction(q->h);
	ev = (dir & LIBNBD_AIO_DIRECTION_READ ? EPOLLIN : 0) |
	     (dir & LIBNBD_AIO_DIRECTION_WRITE ? EPOLLOUT : 0);
	if (ev != q->events && vd_loop_mod(q->p.loop, q->fd, ev) == 0)
		q->events = ev;
}

/* Drop the connection: what was on it goes to `done` with ENOTCONN, and
 * deliver() parks it or fails it by its deadline. */
static void drop_conn(struct blk_nbdq *q, const char *why)
{
	struct blk_io *io;

	if (q->fd >= 0)
		vd_loop_del(q->p.loop, q->fd);
	q->fd = -1;
	q->events = 0;
	/* nbd_close frees commands without calling their callbacks. */
	nbd_close(q->h);
	q->h = NULL;
	if (q->state == NQ_READY) {
		q->was_lost = true;
		vd_log_ratelimited(&q->rl, VD_LOG_WARN, q->p.who,
				   "NBD connection lost (%s); reconnecting",
				   why);
	}
	q->state = NQ_DOWN;
	while ((io = list_pop(&q->flight))) {
		io->pending = 0;
		if (!io->err)
			io->err = ENOTCONN;
		list_push(&q->done, io);
	}
}

static void connected(struct blk_nbdq *q)
{
	int64_t size = nbd_get_size(q->h);
	struct blk_io *io;

	q->state = NQ_READY;
	if (q->was_lost)
		vd_info(q->p.who, "NBD connection back");
	q->was_lost = false;
	/* NBD has no resize notification: a new size is seen here. */
	if (size >= 0 && q->p.resized)
		q->p.resized(q->p.ctx,
			     (uint64_t)size - (uint64_t)size % q->st->lbs);
	while ((io = list_pop(&q->parked)))
		issue(q, io);
}

static void on_fd(void *opaque, int fd, uint32_t events);
static void deliver(struct blk_nbdq *q);

static void start_connect(struct blk_nbdq *q)
{
	q->last_try_ns = now_ns();
	q->h = nbd_create();
	if (!q->h || nbd_aio_connect_uri(q->h, q->st->uri) < 0) {
		vd_log_ratelimited(&q->rl, VD_LOG_WARN, q->p.who,
				   "NBD connect: %s; retrying", nbd_err());
		nbd_close(q->h);
		q->h = NULL;
		return;
	}
	q->fd = nbd_aio_get_fd(q->h);
	q->events = EPOLLOUT;
	if (q->fd < 0 ||
	    vd_loop_add(q->p.loop, q->fd, q->events, on_fd, q) < 0) {
		q->fd = -1;
		nbd_close(q->h);
		q->h = NULL;
		return;
	}
	q->state = NQ_CONNECTING;
	q->conn_start_ns = q->last_try_ns;
	if (nbd_aio_is_ready(q->h) > 0)
		connected(q);
	update_events(q);
}

/* After libnbd ran: a finished handshake, a dead connection. */
static void check_state(struct blk_nbdq *q)
{
	if (!q->h)
		return;
	if (q->state == NQ_CONNECTING) {
		if (nbd_aio_is_ready(q->h) > 0)
			connected(q);
		else if (nbd_aio_is_connecting(q->h) <= 0)
			drop_conn(q, nbd_err());
	} else if (q->state == NQ_READY && nbd_aio_is_ready(q->h) <= 0 &&
		   (nbd_aio_is_dead(q->h) > 0 || nbd_aio_is_closed(q->h) > 0)) {
		drop_conn(q, nbd_err());
	}
	update_events(q);
}

static void run_handle(struct blk_nbdq *q, uint32_t events)
{
	unsigned dir = nbd_aio_get_direction(q->h);

	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
	    (dir & LIBNBD_AIO_DIRECTION_READ)) {
		/* Several replies may be waiting: libnbd reads one reply per
		 * notification. Bounded by the commands in flight. */
		for (unsigned i = 0; i <= q->p.depth && q->h; i++) {
			struct blk_io *before = q->done.tail;

			if (nbd_aio_notify_read(q->h) < 0 ||
			    nbd_aio_is_ready(q->h) <= 0 || !q->flight.head ||
			    q->done.tail == before)
				break;
		}
	} else if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) &&
		   (dir & LIBNBD_AIO_DIRECTION_WRITE)) {
		nbd_aio_notify_write(q->h);
	}
	check_state(q);
}

static void on_fd(void *opaque, int fd, uint32_t events)
{
	struct blk_nbdq *q = opaque;

	(void)fd;
	if (q->h)
		run_handle(q, events);
	deliver(q);
}

static bool expired(const struct blk_io *io, uint64_t now)
{
	return io->deadline_ns && now >= io->deadline_ns;
}

/* Hand answered ops to the model, one batch_done per round; ops that lost
 * their connection wait for the next unless their time is up. */
static void deliver(struct blk_nbdq *q)
{
	unsigned n = 0;
	uint64_t now;
	struct blk_io *io;

	if (q->delivering)
		return; /* the outer call picks up what is added */
	q->delivering = true;
	now = now_ns();
	for (unsigned guard = 0; guard < 4 * q->p.depth + 4 && q->done.head;
	     guard++) {
		while ((io = list_pop(&q->done))) {
			int res;

			if (io->err && conn_error(io->err) &&
			    !expired(io, now)) {
				list_push(&q->parked, io);
				continue;
			}
			if (io->err)
				res = conn_error(io->err) ? -ETIMEDOUT
							  : -io->err;
			else if (io->op == BLK_OP_READ ||
				 io->op == BLK_OP_WRITE)
				res = (int)io_bytes(io);
			else
				res = 0;
			q->busy--;
			n++;
			q->p.done(q->p.ctx, io, res);
		}
		if (n) {
			q->p.batch_done(q->p.ctx);
			n = 0;
		}
	}
	q->delivering = false;
	if (q->parked.head && q->state == NQ_DOWN &&
	    now - q->last_try_ns >= NBD_RECONNECT_MS * 1000000ull)
		start_connect(q);
	if (q->busy)
		tick_arm(q);
}

/* The tick: deadlines, a stuck handshake, the next connection attempt. */
static void on_tick(void *opaque, int fd, uint32_t events)
{
	struct blk_nbdq *q = opaque;
	uint64_t exp, now = now_ns();
	struct blk_io *io, *next;
	bool hung = false;

	(void)events;
	if (read(fd, &exp, sizeof(exp)) < 0) {
		/* EAGAIN: nothing expired yet */
	}
	for (io = q->parked.head; io; io = next) {
		next = io->next;
		if (expired(io, now)) {
			list_del(&q->parked, io);
			io->err = ETIMEDOUT;
			list_push(&q->done, io);
		}
	}
	for (io = q->flight.head; io && !hung; io = io->next)
		hung = expired(io, now);
	if (hung) {
		/* The only way to take a command back from the server: drop
		 * its connection. Nothing can then write into the request's
		 * buffers once it is answered. */
		vd_log_ratelimited(&q->rl, VD_LOG_ERR, q->p.who,
				   "NBD server did not answer within %u ms",
				   q->st->timeout_ms);
		drop_conn(q, "request timed out");
	} else if (q->state == NQ_CONNECTING &&
		   now - q->conn_start_ns >=
			   (uint64_t)(q->st->timeout_ms ? q->st->timeout_ms
							: NBD_OPEN_TIMEOUT_MS) *
				   1000000ull) {
		drop_conn(q, "handshake timed out");
	}
	deliver(q);
	if (!q->busy)
		tick_disarm(q);
}

static void nbdq_free(struct blk_nbdq *q)
{
	if (q->fd >= 0)
		vd_loop_del(q->p.loop, q->fd);
	nbd_close(q->h);
	if (q->tfd >= 0) {
		vd_loop_del(q->p.loop, q->tfd);
		close(q->tfd);
	}
	free(q);
}

static int nbdq_init(const struct blk_engine_params *p, struct blk_engine **out)
{
	struct blk_nbdq *q = calloc(1, sizeof(*q));
	int ret;

	if (!q)
		return -ENOMEM;
	q->p = *p;
	q->st = (const struct nbd_store *)p->remote;
	q->fd = -1;
	q->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	q->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (q->tfd < 0) {
		ret = -errno;
		free(q);
		return ret;
	}
	ret = vd_loop_add(p->loop, q->tfd, EPOLLIN, on_tick, q);
	if (ret < 0) {
		close(q->tfd);
		free(q);
		return ret;
	}
	/* Connect now, asynchronously; requests park until it is up. */
	start_connect(q);
	*out = (struct blk_engine *)q;
	return 0;
}

static int nbdq_queue(struct blk_engine *e, struct blk_io *io)
{
	struct blk_nbdq *q = (struct blk_nbdq *)e;

	if (q->busy >= q->p.depth)
		return -EBUSY;
	io->owner = q;
	/* A continuation keeps the deadline of its request's first op. */
	io->deadline_ns = 0;
	if (q->st->timeout_ms)
		io->deadline_ns =
			now_ns() + (uint64_t)q->st->timeout_ms * 1000000ull;
	list_push(&q->pend, io);
	q->busy++;
	return 0;
}

static int nbdq_submit(struct blk_engine *e)
{
	struct blk_nbdq *q = (struct blk_nbdq *)e;
	struct blk_io *io;

	if (!q->pend.head)
		return 0;
	while ((io = list_pop(&q->pend))) {
		if (q->state == NQ_READY)
			issue(q, io);
		else
			list_push(&q->parked, io);
	}
	if (q->h)
		check_state(q);
	if (q->state == NQ_DOWN && !q->delivering &&
	    now_ns() - q->last_try_ns >= NBD_RECONNECT_MS * 1000000ull)
		start_connect(q);
	/* Ops refused at issue (a dead handle) complete through deliver. */
	deliver(q);
	return 0;
}

/* Block until something completes (queue_stop). Ops that wait for a
 * connection are answered now: the queue is going away. */
static int nbdq_wait(struct blk_engine *e)
{
	struct blk_nbdq *q = (struct blk_nbdq *)e;
	unsigned before = q->busy;
	struct blk_io *io;

	if (!q->busy)
		return -ENOENT;
	nbdq_submit(e);
	while ((io = list_pop(&q->parked))) {
		io->err = ETIMEDOUT;
		io->deadline_ns = 1;
		list_push(&q->done, io);
	}
	deliver(q);
	while (q->busy && q->busy == before) {
		struct pollfd pfd[2] = {{.fd = q->tfd, .events = POLLIN}};
		int n = 1;

		tick_arm(q);
		if (q->fd >= 0)
			pfd[n++] = (struct pollfd){.fd = q->fd,
						   .events = (short)q->events};
		if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR)
			return -errno;
		if (n > 1 && pfd[1].revents && q->h)
			run_handle(q,
				   (pfd[1].revents & POLLIN ? EPOLLIN : 0) |
					   (pfd[1].revents & POLLOUT ? EPOLLOUT
								     : 0) |
					   (pfd[1].revents & (POLLHUP | POLLERR)
						    ? EPOLLHUP
						    : 0));
		if (pfd[0].revents)
			on_tick(q, q->tfd, EPOLLIN);
		while ((io = list_pop(&q->parked))) {
			io->err = ETIMEDOUT;
			io->deadline_ns = 1;
			list_push(&q->done, io);
		}
		deliver(q);
	}
	return 0;
}

static void nbdq_fini(struct blk_engine *e)
{
	nbdq_free((struct blk_nbdq *)e);
}

const struct blk_engine_ops blk_nbd_ops = {
	.name = "nbd",
	.init = nbdq_init,
	.queue = nbdq_queue,
	.submit = nbdq_submit,
	.wait = nbdq_wait,
	.fini = nbdq_fini,
};
