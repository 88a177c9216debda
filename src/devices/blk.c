/* virtio-blk device type (virtio 1.2 §5.2): options, features, config space
 * and the per-queue callbacks. Hypervisor-agnostic: it sees virtqueues,
 * guest memory and its backing store, never a shim. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk.h"

/* ------------------------------------------------------------- options */

static const struct vd_device_option blk_options[] = {
	{"disk", "PATH|URI",
	 "what to serve (required): an image file or block device, an NBD "
	 "export (nbd://HOST[:PORT]/EXPORT, "
	 "nbd+unix:///EXPORT?socket=PATH) or a Ceph RBD image "
	 "(rbd:POOL/IMAGE[@SNAP][:conf=FILE][:id=USER][:KEY=VALUE...])"},
	{"readonly", NULL, "serve the disk read-only (VIRTIO_BLK_F_RO)"},
	{"direct", NULL, "bypass the host page cache (O_DIRECT)"},
	{"share-rw", NULL,
	 "let other processes write the image at the same time (cluster file "
	 "systems; QEMU's share-rw=on); without it a second writer is "
	 "refused; not for nbd:/rbd: disks, which are not locked"},
	{"num-queues", "N", "request queues, one thread each (default 1)"},
	{"queue-size", "N",
	 "largest virtqueue, a power of two 4..32768 (default 1024)"},
	{"serial", "S",
	 "GET_ID serial, up to 20 bytes (default: derived from the disk path)"},
	{"io-engine", "uring|threads|sync",
	 "I/O engine (default: sync for tmpfs images, else uring, or "
	 "threads where io_uring is unavailable)"},
	{"logical-block-size", "512|4096",
	 "block size the guest sees (default 512, or what --direct needs)"},
	{"no-packed", NULL,
	 "do not offer VIRTIO_F_RING_PACKED: the driver uses split rings"},
	{"io-timeout", "SECONDS",
	 "nbd:// and rbd: disks: a request the store has not answered in "
	 "time is answered IOERR; NBD then reconnects (default 30, 0: no "
	 "limit)"},
	/* The names docs/interop/vhost-user.json gives "block" backends,
	 * so launchers that follow it work unchanged. */
	{"blk-file", "PATH", "same as --disk"},
	{"read-only", NULL, "same as --readonly"},
	{NULL, NULL, NULL},
};

static void *blk_opts_new(void)
{
	struct blk_opts *o = calloc(1, sizeof(*o));

	if (o) {
		o->num_queues = 1;
		o->queue_size = BLK_QUEUE_SIZE_DEFAULT;
		o->engine = BLK_ENGINE_AUTO;
	}
	return o;
}

static void blk_opts_free(void *opts)
{
	struct blk_opts *o = opts;

	if (o)
		free(o->disk);
	free(o);
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int blk_opts_set(void *opts, const char *name, const char *value,
			char *err, size_t errlen)
{
	struct blk_opts *o = opts;
	unsigned v;

#define BAD(...)                                                               \
	do {                                                                   \
		snprintf(err, errlen, __VA_ARGS__);                            \
		return -EINVAL;                                                \
	} while (0)

	if (strcmp(name, "blk-file") == 0)
		name = "disk";
	if (strcmp(name, "readonly") == 0 || strcmp(name, "read-only") == 0) {
		o->readonly = true;
		return 0;
	}
	if (strcmp(name, "direct") == 0) {
		o->direct = true;
		return 0;
	}
	if (strcmp(name, "share-rw") == 0) {
		o->share_rw = true;
		return 0;
	}
	if (strcmp(name, "no-packed") == 0) {
		o->no_packed = true;
		return 0;
	}
	if (!value)
		BAD("--%s needs a value", name);
	if (strcmp(name, "disk") == 0) {
		char *d;

		if (!*value)
			BAD("--disk: empty path");
		d = strdup(value);
		if (!d)
			BAD("--disk %s: out of memory", value);
		free(o->disk);
		o->disk = d;
	} else if (strcmp(name, "num-queues") == 0) {
		if (parse_uint(value, BLK_NUM_QUEUES_MAX, &v) < 0 || v == 0)
			BAD("--num-queues %s: expected 1..%u", value,
			    BLK_NUM_QUEUES_MAX);
		o->num_queues = v;
	} else if (strcmp(name, "queue-size") == 0) {
		if (parse_uint(value, VD_VQ_MAX_SIZE, &v) < 0 ||
		    v < BLK_QUEUE_SIZE_MIN || (v & (v - 1)))
			BAD("--queue-size %s: expected a power of two %u..%u",
			    value, BLK_QUEUE_SIZE_MIN, VD_VQ_MAX_SIZE);
		o->queue_size = v;
	} else if (strcmp(name, "serial") == 0) {
		size_t len = strlen(value);

		if (len > VIRTIO_BLK_ID_BYTES)
			BAD("--serial %s: longer than %u bytes", value,
			    VIRTIO_BLK_ID_BYTES);
		for (size_t i = 0; i < len; i++)
			if (value[i] < 0x20 || value[i] > 0x7e)
				BAD("--serial %s: only printable ASCII", value);
		memcpy(o->serial, value, len + 1);
		o->serial_set = true;
	} else if (strcmp(name, "io-engine") == 0) {
		if (strcmp(value, "uring") == 0)
			o->engine = BLK_ENGINE_URING;
		else if (strcmp(value, "threads") == 0)
			o->engine = BLK_ENGINE_THREADS;
		else if (strcmp(value, "sync") == 0)
			o->engine = BLK_ENGINE_SYNC;
		else
			BAD("--io-engine %s: expected uring, threads or sync",
			    value);
	} else if (strcmp(name, "io-timeout") == 0) {
		char *end;
		double sec;

		errno = 0;
		sec = strtod(value, &end);
		if (errno || end == value || *end || !(sec >= 0) || sec > 86400)
			BAD("--io-timeout %s: expected seconds, 0..86400 (0: "
			    "no limit)",
			    value);
		o->io_timeout_ms = (unsigned)(sec * 1000 + 0.5);
		if (sec > 0 && o->io_timeout_ms == 0)
			o->io_timeout_ms = 1;
		o->io_timeout_set = true;
	} else if (strcmp(name, "logical-block-size") == 0) {
		if (parse_uint(value, 4096, &v) < 0 || (v != 512 && v != 4096))
			BAD("--logical-block-size %s: expected 512 or 4096",
			    value);
		o->lbs = v;
	} else {
		BAD("--%s: not a blk option", name);
	}
	return 0;
#undef BAD
}

/* ------------------------------------------------------- config space */

static unsigned ilog2(unsigned v)
{
	unsigned r = 0;

	while (v > 1) {
		v >>= 1;
		r++;
	}
	return r;
}

static void build_config(struct blk_dev *d, const struct blk_opts *o)
{
	struct virtio_blk_config *c = &d->cfg;
	const struct blk_backend *be = &d->be;
	unsigned seg_max = o->queue_size - 2 < BLK_SEG_MAX ? o->queue_size - 2
							   : BLK_SEG_MAX;
	unsigned min_io = be->min_io / be->lbs;

	memset(c, 0, sizeof(*c));
	c->capacity = htole64(be->size >> BLK_SECTOR_SHIFT);
	c->size_max = htole32(BLK_SIZE_MAX);
	c->seg_max = htole32(seg_max);
	c->blk_size = htole32(be->lbs);
	c->physical_block_exp = (uint8_t)ilog2(be->phys / be->lbs);
	c->alignment_offset = (uint8_t)(be->align_off / be->lbs);
	c->min_io_size = htole16(min_io > 0xffff ? 0 : min_io);
	c->opt_io_size = htole32(be->opt_io / be->lbs);
	c->num_queues = htole16(o->num_queues);
	c->max_discard_sectors = htole32(BLK_DWZ_MAX_SECTORS);
	c->max_discard_seg = htole32(BLK_DWZ_MAX_SEG);
	/* In 512-byte sectors: a hint for splitting, not enforced. */
	c->discard_sector_alignment = htole32(be->phys >> BLK_SECTOR_SHIFT);
	c->max_write_zeroes_sectors = htole32(BLK_DWZ_MAX_SECTORS);
	c->max_write_zeroes_seg = htole32(BLK_DWZ_MAX_SEG);
	c->write_zeroes_may_unmap = 1;
}

static void blk_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	struct blk_dev *d = model;
	struct virtio_blk_config c = d->cfg;

	c.wce = atomic_load(&d->writeback) ? 1 : 0;
	c.capacity = htole64(atomic_load(&d->size) >> BLK_SECTOR_SHIFT);
	memcpy(buf, (const char *)&c + off, len);
}

/* Only `writeback` is writable (§5.2.4, VIRTIO_BLK_F_CONFIG_WCE). */
static int blk_set_config(void *model, uint32_t off, const void *buf,
			  uint32_t len)
{
	struct blk_dev *d = model;
	uint8_t v;

	if (off != offsetof(struct virtio_blk_config, wce) || len != 1 ||
	    !blk_feature(d, VIRTIO_BLK_F_CONFIG_WCE))
		return -EPERM;
	v = *(const uint8_t *)buf;
	if (v > 1)
		return -EINVAL;
	/* Writeback to writethrough: the mode goes first, so every write
	 * issued from now on carries RWF_DSYNC and every write in flight
	 * syncs before it completes (blk_io.c after_data); then the writes
	 * completed in writeback mode become durable. */
	if (atomic_exchange(&d->writeback, v != 0) && !v && !d->be.readonly &&
	    fdatasync(d->be.fd) < 0)
		vd_err(d->who, "fdatasync on switching to writethrough: %s",
		       strerror(errno));
	vd_debug(d->who, "cache mode %s", v ? "writeback" : "writethrough");
	return 0;
}

static uint64_t blk_offered(const struct blk_dev *d)
{
	uint64_t f =
		1ULL << VIRTIO_F_VERSION_1 |
		1ULL << VIRTIO_RING_F_INDIRECT_DESC |
		1ULL << VIRTIO_RING_F_EVENT_IDX | 1ULL << VIRTIO_F_RING_PACKED |
		1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
		1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_TOPOLOGY |
		1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_MQ;

	/* A network store's connections belong to the queue threads, so the
	 * control thread has none to flush through when the driver switches
	 * to writethrough: such a device stays writeback and the driver
	 * flushes (docs/storage.md). */
	if (d->be.store == BLK_STORE_FILE)
		f |= 1ULL << VIRTIO_BLK_F_CONFIG_WCE;

	if (d->be.readonly)
		return f | 1ULL << VIRTIO_BLK_F_RO;
	f |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	if (d->be.can_discard)
		f |= 1ULL << VIRTIO_BLK_F_DISCARD;
	return f;
}

static void blk_set_features(void *model, uint64_t features)
{
	struct blk_dev *d = model;

	/* §5.2.5.1: without FLUSH the device is writethrough. The default
	 * with FLUSH is writeback, set on reset, so a repeated SET_FEATURES
	 * keeps what the driver chose through CONFIG_WCE. */
	if (!(features & 1ULL << VIRTIO_BLK_F_FLUSH))
		atomic_store(&d->writeback, false);
	atomic_store(&d->features, features);
}

static void blk_reset(void *model)
{
	struct blk_dev *d = model;

	atomic_store(&d->features, 0);
	atomic_store(&d->writeback, true);
}

static void blk_destroy(void *model)
{
	struct blk_dev *d = model;

	blk_backend_close(&d->be);
	free(d);
}

/* ---------------------------------------------------------------- queues */

static void queue_free(struct blk_queue *bq)
{
	if (bq->eng)
		bq->eng_ops->fini(bq->eng);
	free(bq->bounce_mem);
	free(bq->reqs);
	free(bq->iov_pool);
	free(bq->seg_pool);
	free(bq);
}

/* A network store changed size (queue thread): the guest sees it through a
 * config change (virtio 1.2 §5.2.2: capacity may change). */
static void blk_resized(void *ctx, uint64_t bytes)
{
	struct blk_queue *bq = ctx;
	struct blk_dev *d = bq->dev;
	uint64_t old = atomic_exchange(&d->size, bytes);

	if (old == bytes)
		return;
	vd_info(bq->who, "store resized: %llu -> %llu bytes",
		(unsigned long long)old, (unsigned long long)bytes);
	vd_dev_config_changed(vd_queue_dev(bq->q));
}

static int engine_start(struct blk_queue *bq, struct vd_queue *q)
{
	struct blk_dev *d = bq->dev;
	struct blk_engine_params p = {
		.fd = d->be.fd,
		.depth = bq->depth,
		.loop = vd_queue_loop(q),
		.who = bq->who,
		.done = blk_io_done,
		.batch_done = blk_io_batch_done,
		.ctx = bq,
		.remote = d->be.remote,
		.index = vd_queue_index(q),
		.resized = blk_resized,
	};
	int ret;

#ifndef VIRTIOD_NO_NETSTORE
	if (d->be.store != BLK_STORE_FILE) {
		bq->eng_ops = d->be.store == BLK_STORE_NBD ? &blk_nbd_ops
							   : &blk_rbd_ops;
		ret = bq->eng_ops->init(&p, &bq->eng);
		if (ret < 0)
			vd_err(bq->who, "%s engine: %s", bq->eng_ops->name,
			       strerror(-ret));
		return ret;
	}
#endif

	if (d->engine == BLK_ENGINE_SYNC) {
		bq->eng_ops = &blk_sync_ops;
		return bq->eng_ops->init(&p, &bq->eng);
	}
	if (d->engine != BLK_ENGINE_THREADS) {
		bq->eng_ops = &blk_uring_ops;
		ret = bq->eng_ops->init(&p, &bq->eng);
		if (ret == 0 || d->engine == BLK_ENGINE_URING) {
			if (ret < 0)
				vd_err(bq->who, "--io-engine uring: %s",
				       strerror(-ret));
			return ret;
		}
		if (!atomic_exchange(&d->fallback_logged, true))
			vd_warn(bq->who,
				"io_uring unavailable (%s); using the threads "
				"engine",
				strerror(-ret));
	}
	bq->eng_ops = &blk_threads_ops;
	ret = bq->eng_ops->init(&p, &bq->eng);
	if (ret < 0)
		vd_err(bq->who, "threads engine: %s", strerror(-ret));
	return ret;
}

static int blk_queue_start(void *model, struct vd_queue *q)
{
	struct blk_dev *d = model;
	struct blk_queue *bq = calloc(1, sizeof(*bq));
	int ret;

	if (!bq)
		return -ENOMEM;
	bq->dev = d;
	bq->q = q;
	bq->vq = vd_queue_vq(q);
	bq->who = vd_queue_who(q);
	/* Slots are below the queue size, which vd_queue_start bounds by
	 * max_queue_size. */
	bq->depth = d->model.max_queue_size;
	bq->max_iov = vd_queue_max_iov(q);
	bq->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	bq->reqs = calloc(bq->depth, sizeof(*bq->reqs));
	bq->iov_pool =
		calloc((size_t)bq->depth * bq->max_iov, sizeof(*bq->iov_pool));
	bq->seg_pool = calloc((size_t)bq->depth * BLK_DWZ_MAX_SEG,
			      sizeof(*bq->seg_pool));
	if (!bq->reqs || !bq->iov_pool || !bq->seg_pool) {
		queue_free(bq);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < bq->depth; i++) {
		bq->reqs[i].iov = bq->iov_pool + (size_t)i * bq->max_iov;
		bq->reqs[i].segs = bq->seg_pool + (size_t)i * BLK_DWZ_MAX_SEG;
	}
	if (d->be.direct) {
		bq->bounce_mem = aligned_alloc(4096, (size_t)BLK_BOUNCE_BUFS *
							     BLK_BOUNCE_SIZE);
		if (!bq->bounce_mem) {
			queue_free(bq);
			return -ENOMEM;
		}
		for (unsigned i = 0; i < BLK_BOUNCE_BUFS; i++)
			bq->bounce_free[i] =
				(char *)bq->bounce_mem + i * BLK_BOUNCE_SIZE;
		bq->n_bounce_free = BLK_BOUNCE_BUFS;
	}
	ret = engine_start(bq, q);
	if (ret < 0) {
		queue_free(bq);
		return ret;
	}
	vd_queue_set_model_data(q, bq);
	vd_info(bq->who, "started, %s engine, depth %u", bq->eng_ops->name,
		bq->depth);
	return 0;
}

/* Pop what the driver made available; at most `depth` chains per call so
 * one busy queue cannot keep its thread forever. */
static bool pop_all(struct blk_queue *bq, unsigned *budget)
{
	struct vd_vq_elem *e;

	while (*budget) {
		struct blk_req *r;
		const char *why = NULL;

		if (bq->broken)
			return false;
		if (vd_vq_pop(bq->vq, &e) <= 0)
			return true;
		(*budget)--;
		bq->active++;
		if (e->slot >= bq->depth) {
			/* The core promised slot < queue size. */
			vd_dev_needs_reset(
				vd_queue_dev(bq->q), "q%u: slot %u past %u",
				vd_queue_index(bq->q), e->slot, bq->depth);
			vd_vq_push(bq->vq, e, 0);
			bq->active--;
			bq->broken = true;
			return false;
		}
		r = &bq->reqs[e->slot];
		if (blk_req_parse(bq, r, e, &why) < 0) {
			/* Nothing to answer with: return the chain unwritten
			 * and stop serving until the driver resets. */
			vd_dev_needs_reset(vd_queue_dev(bq->q), "q%u: %s",
					   vd_queue_index(bq->q), why);
			vd_vq_push(bq->vq, e, 0);
			bq->active--;
			bq->broken = true;
			return false;
		}
		blk_req_run(bq, r);
	}
	return false;
}

static void blk_queue_kick(void *model, struct vd_queue *q)
{
	struct blk_queue *bq = vd_queue_model_data(q);
	unsigned budget;
	bool drained;

	(void)model;
	if (!bq || bq->stopping)
		return;
	budget = bq->depth;
	/* The core has turned driver notifications off and turns them on
	 * again, with a last look at the ring, once we return; it also
	 * publishes what we pushed, with one notification decision. */
	drained = pop_all(bq, &budget);
	blk_run_waiters(bq);
	if (!blk_submit(bq))
		drained = false; /* the kernel was short; retry soon */
	if (!drained && !bq->broken)
		vd_queue_rekick(q); /* budget spent, or the kernel was short */
}

/* Busy polling: completions the engine has ready, without sleeping. */
static bool blk_queue_poll(void *model, struct vd_queue *q)
{
	struct blk_queue *bq = vd_queue_model_data(q);

	(void)model;
	return bq && bq->eng_ops->poll && bq->eng_ops->poll(bq->eng);
}

static void blk_queue_stop(void *model, struct vd_queue *q)
{
	struct blk_queue *bq = vd_queue_model_data(q);

	(void)model;
	if (!bq)
		return;
	bq->stopping = true;
	/* Bounded by the requests in flight: each wait delivers at least
	 * one completion. */
	while (bq->active) {
		int ret;

		blk_run_waiters(bq);
		ret = bq->eng_ops->wait(bq->eng);
		if (ret == -ENOENT) {
			/* The engine holds none of them: nothing can still
			 * write into guest memory. */
			vd_err(bq->who, "%u requests lost by the engine",
			       bq->active);
			break;
		}
		if (ret < 0)
			blk_engine_failed(bq, "wait", ret);
	}
	vd_queue_set_model_data(q, NULL);
	queue_free(bq);
}

static const struct vd_device_ops blk_ops = {
	.get_config = blk_get_config,
	.set_config = blk_set_config,
	.set_features = blk_set_features,
	.queue_start = blk_queue_start,
	.queue_kick = blk_queue_kick,
	.queue_poll = blk_queue_poll,
	.queue_stop = blk_queue_stop,
	.resize = blk_resize,
	.reset = blk_reset,
	.destroy = blk_destroy,
};

/* ---------------------------------------------------------------- create */

static int blk_create(void *opts, struct vd_model **out, char *err,
		      size_t errlen)
{
	struct blk_opts *o = opts;
	struct blk_dev *d;
	const char *base;
	unsigned seg_max;
	int ret;

	if (!o->disk) {
		snprintf(err, errlen, "--disk is required");
		return -EINVAL;
	}
	if (o->engine != BLK_ENGINE_AUTO &&
	    (blk_nbd_is_uri(o->disk) || blk_rbd_is_spec(o->disk))) {
		snprintf(err, errlen,
			 "--io-engine: %s is served through its own library; "
			 "drop --io-engine",
			 o->disk);
		return -EINVAL;
	}
	/* --share-rw relaxes an OFD lock; a network store has none to relax
	 * (NBD has no lock, RBD's exclusive lock is librbd's and moves to
	 * whoever writes), so accepting it would promise a protection that
	 * is not there (docs/storage.md). */
	if (o->share_rw &&
	    (blk_nbd_is_uri(o->disk) || blk_rbd_is_spec(o->disk))) {
		snprintf(err, errlen,
			 "--share-rw: %s is a network store, which virtiod "
			 "does not lock; drop --share-rw (the store itself "
			 "decides who may write)",
			 o->disk);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "--disk %s: out of memory", o->disk);
		return -ENOMEM;
	}
	ret = blk_backend_open(&d->be, o, err, errlen);
	if (ret < 0) {
		free(d);
		return ret;
	}
	/* The last path element (an export or an image name). */
	base = strrchr(o->disk, '/');
	base = base ? base + 1 : o->disk;
	snprintf(d->who, sizeof(d->who), "blk %s", base);
	if (o->serial_set)
		memcpy(d->serial, o->serial, strlen(o->serial));
	else {
		char s[VIRTIO_BLK_ID_BYTES + 1];

		blk_backend_default_serial(o->disk, s);
		memcpy(d->serial, s, strlen(s));
	}
	d->engine = o->engine;
	/* A store in memory that refuses RWF_NOWAIT (tmpfs) never blocks
	 * on a device, but io_uring would hand each request to a worker
	 * thread: running it on the queue thread costs no wake-up at all
	 * (docs/blk.md, "Engines"). */
	if (d->engine == BLK_ENGINE_AUTO && d->be.mem_only &&
	    !(d->be.nowait_read && (d->be.readonly || d->be.nowait_write)))
		d->engine = BLK_ENGINE_SYNC;
	atomic_store(&d->writeback, true);
	atomic_store(&d->size, d->be.size);
	build_config(d, o);

	seg_max = le32toh(d->cfg.seg_max);
	d->model.ops = &blk_ops;
	d->model.type_name = "blk";
	d->model.device_id = VIRTIO_ID_BLOCK;
	d->model.features = blk_offered(d);
	if (o->no_packed)
		d->model.features &= ~(1ULL << VIRTIO_F_RING_PACKED);
	d->model.num_queues = (uint16_t)o->num_queues;
	d->model.max_queue_size = (uint16_t)o->queue_size;
	d->model.config_size = sizeof(struct virtio_blk_config);
	/* Data segments, the header and the status; the core adds room for
	 * each being split by guest memory. */
	d->model.max_descs = seg_max + 2;
	d->model.max_desc_len = BLK_SIZE_MAX;
	vd_info(d->who,
		"%s: %" PRIu64 " bytes, %u-byte blocks%s%s%s, serial %.20s",
		o->disk, d->be.size, d->be.lbs,
		d->be.readonly ? ", read-only" : "",
		d->be.direct ? ", O_DIRECT" : "",
		d->engine == BLK_ENGINE_SYNC && o->engine == BLK_ENGINE_AUTO
			? ", in memory without RWF_NOWAIT: sync engine"
			: "",
		d->serial);
	*out = &d->model;
	return 0;
}

/* What Xen 4.17's libxl writes for a specification=virtio disk. */
static const struct vd_device_backend_key blk_backend_keys[] = {
	{"params", NULL, "disk", "disk image"},
	{"mode", "r", "readonly", NULL},
	{NULL, NULL, NULL, NULL},
};

const struct vd_device_type vd_blk_type = {
	.name = "blk",
	.summary = "virtio-blk: a disk image or block device",
	.device_id = VIRTIO_ID_BLOCK,
	.options = blk_options,
	.backend_keys = blk_backend_keys,
	.opts_new = blk_opts_new,
	.opts_set = blk_opts_set,
	.create = blk_create,
	.opts_free = blk_opts_free,
	/* QEMU docs/interop/vhost-user.json, VHostUserBackendType. */
	.vhost_user_type = "block",
};
