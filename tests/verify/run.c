/* vd-verify run: writes, records and re-reads a block device with O_DIRECT
 * through native AIO at each queue depth asked for, checking every read
 * against the generation map; then reads back everything it knows, and
 * writes the map as a record at the end of the device. Any error, short
 * transfer or wrong byte ends the run as a failure; nothing is retried. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

static void progress(struct ctx *c, bool force)
{
	double now = vd_now();
	if (!force &&
	    (c->o->progress <= 0 || now - c->last_progress < c->o->progress))
		return;
	c->last_progress = now;
	double t = now - c->t0;
	printf("VD-VERIFY PROGRESS phase=%s t=%.1fs ops=%" PRIu64
	       " reads=%" PRIu64 " writes=%" PRIu64 " flushes=%" PRIu64
	       " discards=%" PRIu64 " zeroes=%" PRIu64 " MiB_w=%.1f MiB_r=%.1f "
	       "MiB/s=%.1f\n",
	       c->phase, t, c->st.ops, c->st.reads, c->st.writes, c->st.flushes,
	       c->st.discards, c->st.zeroes, (double)c->st.bytes_w / 1048576,
	       (double)c->st.bytes_r / 1048576,
	       t > 0 ? (double)(c->st.bytes_w + c->st.bytes_r) / 1048576 / t
		     : 0.0);
}

/* One phase at depth qd: mixed operations until the budget is used (or
 * the final pass until it has read everything), then drain. */
static void run_phase(struct ctx *c, unsigned qd, uint64_t budget, double secs,
		      bool sweep, uint64_t *ops)
{
	struct iocb *batch[VD_MAX_QD];
	struct io_event ev[VD_MAX_QD];
	double start = vd_now();
	bool done = false;

	c->qd = qd;
	c->phase_issued = 0;
	for (;;) {
		unsigned nb = 0;
		while (!c->failed && !done && c->inflight + nb < qd) {
			if (!sweep &&
			    (c->phase_issued >= budget ||
			     (secs > 0 && vd_now() - start >= secs))) {
				done = true;
				break;
			}
			struct slot *s = NULL;
			for (unsigned i = 0; i < c->nslots && !s; i++)
				if (!c->slots[i].busy)
					s = &c->slots[i];
			int r = sweep ? vd_plan_sweep(c, s)
				      : vd_plan_mixed(c, s);
			if (r == PLAN_NONE) {
				done = sweep;
				break;
			}
			c->st.ops++;
			(*ops)++;
			if (r == PLAN_AIO) {
				s->busy = true;
				batch[nb++] = &s->cb;
			}
		}
		if (nb) {
			c->inflight += nb;
			int r = vd_aio_submit(c->aio, nb, batch);
			if (r != (int)nb) {
				vd_failf(c,
					 "io_submit took %d of %u requests%s%s",
					 r < 0 ? 0 : r, nb, r < 0 ? ": " : "",
					 r < 0 ? strerror(-r) : "");
				for (unsigned i = r < 0 ? 0 : (unsigned)r;
				     i < nb; i++)
					c->slots[batch[i]->aio_data].busy =
						false;
				c->inflight -= nb - (r < 0 ? 0 : (unsigned)r);
			}
		}
		if (!c->inflight) {
			if (done || c->failed)
				break;
			continue;
		}
		int n = vd_aio_getevents(c->aio, 1, qd, ev, c->o->timeout);
		if (n <= 0) {
			const struct slot *s = NULL;
			for (unsigned i = 0; i < c->nslots && !s; i++)
				if (c->slots[i].busy)
					s = &c->slots[i];
			vd_failf(c,
				 "%s: %u request(s) in flight, e.g. %s of "
				 "%" PRIu32 " bytes at offset %" PRIu64,
				 n < 0 ? strerror(-n)
				       : "no AIO completion within the timeout",
				 c->inflight, vd_kind_name[s->kind], s->len,
				 s->off);
			c->hung = true;
			return;
		}
		for (int i = 0; i < n; i++)
			vd_complete(c, &ev[i]);
		progress(c, false);
	}
}

/* The map as a record: the extent table and the header block at the end
 * of the device, written with O_DIRECT, flushed, read back and compared. */
static int write_record(struct ctx *c, uint64_t *sum, uint64_t *at,
			uint64_t *n_ext)
{
	struct vd_extent *ext;
	uint64_t n;
	if (vd_record_extents(c->map, c->granules, &ext, &n)) {
		vd_failf(c, "out of memory building the record");
		return -1;
	}
	uint64_t table = (n * sizeof(*ext) + VD_PAGE - 1) / VD_PAGE * VD_PAGE;
	uint64_t anchor = vd_record_anchor(c->t.size);
	uint64_t ext_off = anchor - table, len = table + VD_REC_ANCHOR;
	unsigned char *buf = vd_alloc_aligned(len),
		      *back = vd_alloc_aligned(len);
	int ret = -1;
	if (!buf || !back || ext_off < c->rec_start) {
		vd_failf(c, "record of %" PRIu64 " extents: %s", n,
			 ext_off < c->rec_start ? "does not fit its reserve"
						: "out of memory");
		goto out;
	}
	memset(buf, 0, len);
	struct vd_record_hdr h = {
		.seed = c->seed,
		.dev_size = c->t.size,
		.area_off = c->area_off,
		.area_len = c->area_len,
		.gran = c->gran,
		.flags = c->failed ? VD_REC_F_FAILED : 0,
		.ext_off = ext_off,
		.n_ext = n,
		.ops = c->st.ops,
		.bytes_w = c->st.bytes_w,
		.bytes_r = c->st.bytes_r,
		.flushes = c->st.flushes,
		.discards = c->st.discards,
		.zeroes = c->st.zeroes,
	};
	*sum = vd_record_seal(&h, ext, n);
	memcpy(buf, ext, n * sizeof(*ext));
	memcpy(buf + table, &h, sizeof(h));
	ssize_t r = pwrite(c->t.fd, buf, len, (off_t)ext_off);
	if (r != (ssize_t)len) {
		vd_failf(c,
			 "writing the record (%" PRIu64 " bytes at %" PRIu64
			 "): %s",
			 len, ext_off, r < 0 ? strerror(errno) : "short write");
		goto out;
	}
	if (fdatasync(c->t.fd)) {
		vd_failf(c, "fdatasync after the record: %s", strerror(errno));
		goto out;
	}
	r = pread(c->t.fd, back, len, (off_t)ext_off);
	if (r != (ssize_t)len || memcmp(buf, back, len)) {
		vd_failf(c,
			 "the record read back (%" PRIu64 " bytes at %" PRIu64
			 ") %s",
			 len, ext_off,
			 r != (ssize_t)len ? "was short or failed" : "differs");
		goto out;
	}
	*at = ext_off;
	*n_ext = n;
	ret = 0;
out:
	free(buf);
	free(back);
	free(ext);
	return ret;
}

/* Test area [area_off, area_off+area_len) and, after it, room for the
 * largest record it can need, ending at the last 4 KiB of the device. */
static int setup_area(struct ctx *c, char *err, size_t n)
{
	const struct vd_run_opts *o = c->o;
	uint64_t end = c->t.size / VD_PAGE * VD_PAGE;
	c->gran = c->t.lbs;
	c->area_off = o->area_off;
	if (c->area_off % VD_PAGE || c->area_off >= end) {
		snprintf(err, n,
			 "--area-offset %" PRIu64
			 ": a multiple of 4096 inside the device",
			 c->area_off);
		return -1;
	}
	uint64_t avail = end - c->area_off;
	uint64_t len = o->area_len;
	if (!len) {
		/* the largest area whose record still fits, at most 64 MiB */
		len = avail > 2 * VD_REC_ANCHOR
			      ? (avail - 2 * VD_REC_ANCHOR) / (c->gran + 8) *
					c->gran
			      : 0;
		len = len / VD_PAGE * VD_PAGE;
		if (len > AREA_DEF)
			len = AREA_DEF;
		while (len && len + vd_record_reserve(len / c->gran) > avail)
			len -= VD_PAGE;
	}
	if (!len || len % VD_PAGE ||
	    len + vd_record_reserve(len / c->gran) > avail ||
	    len / c->gran > UINT32_MAX) {
		snprintf(err, n,
			 "area of %" PRIu64 " bytes at %" PRIu64
			 " and its record reserve (%" PRIu64
			 " bytes) do not fit in %" PRIu64
			 " bytes (multiples of 4096)",
			 len, c->area_off, vd_record_reserve(len / c->gran),
			 end);
		return -1;
	}
	c->area_len = len;
	c->granules = len / c->gran;
	c->rec_start = end - vd_record_reserve(c->granules);
	return 0;
}

static int setup(struct ctx *c, char *err, size_t n)
{
	const struct vd_run_opts *o = c->o;
	if (vd_target_open(&c->t, o->dev, err, n))
		return -1;
	if (setup_area(c, err, n))
		return -1;
	/* the record's reserve (at least 8 KiB) is ours: prove direct I/O
	 * there */
	if (vd_target_prove_direct(&c->t, c->rec_start, err, n))
		return -1;
	c->map = calloc(c->granules, sizeof(*c->map));
	unsigned maxqd = 1;
	for (unsigned i = 0; i < o->nqd; i++)
		maxqd = o->qd[i] > maxqd ? o->qd[i] : maxqd;
	c->nslots = maxqd;
	c->slots = calloc(maxqd, sizeof(*c->slots));
	if (!c->map || !c->slots) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < maxqd; i++)
		if (!(c->slots[i].buf = vd_alloc_aligned(SLOT_BUF))) {
			snprintf(err, n, "out of memory for %u buffers", maxqd);
			return -1;
		}
	int r = vd_aio_setup(maxqd, &c->aio);
	if (r) {
		snprintf(err, n, "io_setup(%u): %s", maxqd, strerror(-r));
		return -1;
	}
	/* in-page buffer offsets: O_DIRECT needs logical-block alignment */
	static const unsigned offs[] = {0, 512, 1536, 3584};
	for (unsigned i = 0; i < 4; i++)
		if (offs[i] % c->gran == 0)
			c->pgoffs[c->npgoffs++] = offs[i];

	static const unsigned def_mix[K_NKINDS] = {45, 40, 5, 5, 5};
	memcpy(c->mix, o->mix_set ? o->mix : def_mix, sizeof(c->mix));
	c->dgran = c->gran;
	if (c->t.discard_gran > c->dgran && c->t.discard_gran <= VD_MAX_IO &&
	    !(c->t.discard_gran & (c->t.discard_gran - 1)))
		c->dgran = c->t.discard_gran;
	bool can_discard = c->t.discard_max > 0 && c->area_len >= 2 * c->dgran;
	if (c->mix[K_DISCARD] && !can_discard) {
		if (o->mix_set) {
			snprintf(err, n,
				 "--mix asks for discards but %s cannot "
				 "(discard_max_bytes=%" PRIu64 ")",
				 o->dev, c->t.discard_max);
			return -1;
		}
		c->mix[K_DISCARD] = 0;
	}
	c->discard_zeroes =
		o->discard_zeroes || vd_target_discard_zeroes(&c->t);
	c->mix_total = 0;
	for (unsigned k = 0; k < K_NKINDS; k++)
		c->mix_total += c->mix[k];
	return 0;
}

int vd_run(const struct vd_run_opts *o)
{
	static struct ctx ctx;
	struct ctx *c = &ctx;
	char err[512], qds[64] = "";
	uint64_t sum = 0, at = 0, n_ext = 0;

	c->o = o;
	c->t.fd = -1;
	c->seed = o->seed;
	if (!o->seed_set) {
		uint64_t s = (uint64_t)getpid() ^ (uint64_t)(vd_now() * 1e9);
		c->seed = vd_rand(&s);
	}
	c->rng = c->seed ^ 0x5bd1e995ull;
	c->t0 = c->last_progress = vd_now();
	if (setup(c, err, sizeof(err))) {
		printf("VD-VERIFY ERROR %s\n", err);
		printf("VD-VERIFY RESULT FAIL record_sum=none error=\"%s\"\n",
		       err);
		return 1;
	}
	for (unsigned i = 0; i < o->nqd; i++)
		snprintf(qds + strlen(qds), sizeof(qds) - strlen(qds), "%s%u",
			 i ? "," : "", o->qd[i]);
	printf("VD-VERIFY START dev=%s name=%s size=%" PRIu64
	       " lbs=%u pbs=%u write_cache=\"%s\" discard_max=%" PRIu64
	       " discard_gran=%" PRIu64 " wzeroes_max=%" PRIu64
	       " max_sectors_kb=%u area=%" PRIu64 "+%" PRIu64
	       " record_reserve=%" PRIu64 "+%" PRIu64 " seed=0x%016" PRIx64
	       " qd=%s mix=r%u,w%u,f%u,d%u,z%u discard=%s bytes=%" PRIu64
	       " secs=%g\n",
	       o->dev, c->t.name, c->t.size, c->t.lbs, c->t.pbs, c->t.cache,
	       c->t.discard_max, c->t.discard_gran, c->t.wzero_max,
	       c->t.max_sectors_kb, c->area_off, c->area_len, c->rec_start,
	       c->t.size / VD_PAGE * VD_PAGE - c->rec_start, c->seed, qds,
	       c->mix[0], c->mix[1], c->mix[2], c->mix[3], c->mix[4],
	       c->mix[K_DISCARD] ? (c->discard_zeroes ? "zeroes" : "undefined")
				 : "off",
	       o->bytes, o->seconds);
	printf("VD-VERIFY DIRECT %s\n", c->t.direct_proof);

	unsigned maxqd = c->nslots;
	for (unsigned i = 0; i < o->nqd && !c->failed; i++) {
		char name[16];
		snprintf(name, sizeof(name), "qd%u", o->qd[i]);
		c->phase = name;
		run_phase(c, o->qd[i], o->bytes / o->nqd, o->seconds / o->nqd,
			  false, &c->phase_ops[i]);
		progress(c, true);
	}
	c->phase = "final";
	uint64_t sweep_ops = 0;
	if (!c->failed) {
		run_phase(c, maxqd, 0, 0, true, &sweep_ops);
		progress(c, true);
	}
	if (c->hung) { /* requests still in flight: no record, no teardown */
		printf("VD-VERIFY RESULT FAIL record_sum=none error=\"%s\"\n",
		       c->fail);
		fflush(stdout);
		_exit(1);
	}
	/* After a failure the record still tells the host what the map
	 * held, so it can see whether the image has the right bytes (a read
	 * path bug) or not (a write path bug). */
	int rec = write_record(c, &sum, &at, &n_ext);
	double secs = vd_now() - c->t0;
	printf("VD-VERIFY RESULT %s ops=%" PRIu64 " reads=%" PRIu64
	       " writes=%" PRIu64 " bytes_w=%" PRIu64 " bytes_r=%" PRIu64
	       " flushes=%" PRIu64 " discards=%" PRIu64 " zeroes=%" PRIu64,
	       c->failed ? "FAIL" : "PASS", c->st.ops, c->st.reads,
	       c->st.writes, c->st.bytes_w, c->st.bytes_r, c->st.flushes,
	       c->st.discards, c->st.zeroes);
	for (unsigned i = 0; i < o->nqd; i++)
		printf(" qd%u=%" PRIu64, o->qd[i], c->phase_ops[i]);
	printf(" raw_reads=%" PRIu64 " final_bytes=%" PRIu64
	       " checked_bytes=%" PRIu64 " vec_ops=%" PRIu64
	       " bufoff_ops=%" PRIu64 " min_len=%" PRIu32 " max_len=%" PRIu32
	       " secs=%.1f seed=0x%016" PRIx64 " area=%" PRIu64 "+%" PRIu64,
	       c->st.raw_reads, c->st.sweep_bytes, c->st.checked_bytes,
	       c->st.vec_ops, c->st.bufoff_ops, c->st.min_len, c->st.max_len,
	       secs, c->seed, c->area_off, c->area_len);
	if (rec == 0)
		printf(" extents=%" PRIu64 " record_at=%" PRIu64
		       " record_sum=%016" PRIx64,
		       n_ext, at, sum);
	else
		printf(" record_sum=none");
	if (c->failed)
		printf(" error=\"%s\"", c->fail);
	printf("\n");
	vd_aio_destroy(c->aio);
	vd_target_close(&c->t);
	return c->failed ? 1 : 0;
}
