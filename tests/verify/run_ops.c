/* vd-verify run, one request at a time: what to do next (sizes, offsets,
 * buffers at odd in-page offsets, read-after-write), what the data must be,
 * and what a completion proves. Requests in flight never overlap a write,
 * so every read has exactly one right answer, which the map holds. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

const char *const vd_kind_name[K_NKINDS] = {"read", "write", "flush", "discard",
					    "write-zeroes"};

void vd_failf(struct ctx *c, const char *fmt, ...)
{
	if (c->failed)
		return; /* the first failure is the one that counts */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->fail, sizeof(c->fail), fmt, ap);
	va_end(ap);
	c->failed = true;
	printf("VD-VERIFY ERROR %s\n", c->fail);
}

static bool is_write(enum kind k)
{
	return k == K_WRITE || k == K_DISCARD || k == K_ZERO;
}

static uint64_t gidx(const struct ctx *c, uint64_t off)
{
	return (off - c->area_off) / c->gran;
}

static void map_set(struct ctx *c, uint64_t off, uint64_t len, uint32_t v)
{
	for (uint64_t g = gidx(c, off); g < gidx(c, off + len); g++)
		c->map[g] = v;
}

/* Requests in flight never overlap a write, discard or zeroing: the bytes
 * a read returns are then exactly what the map held when it was issued. */
static bool conflicts(const struct ctx *c, enum kind k, uint64_t off,
		      uint64_t len)
{
	for (unsigned i = 0; i < c->nslots; i++) {
		const struct slot *s = &c->slots[i];
		if (!s->busy || s->kind == K_FLUSH)
			continue;
		if (!is_write(k) && !is_write(s->kind))
			continue;
		if (off < s->off + s->len && s->off < off + len)
			return true;
	}
	return false;
}

/* 512 B .. 1 MiB: a power of two or an odd size just above the previous
 * one, in granules; never more than max. */
static uint32_t rand_len(struct ctx *c, uint64_t max)
{
	unsigned e = (unsigned)vd_rand_below(&c->rng, 12);
	uint64_t len = (uint64_t)VD_SECTOR << e;
	if (e && (vd_rand(&c->rng) & 1)) {
		uint64_t half = len / 2;
		len = half +
		      c->gran * (1 + vd_rand_below(&c->rng, half / c->gran));
	}
	len = len / c->gran * c->gran;
	if (len < c->gran)
		len = c->gran;
	if (len > max)
		len = max / c->gran * c->gran;
	return (uint32_t)len;
}

/* An offset in the area for len bytes: the start, the end, or random with
 * 4 KiB or logical-block alignment (relative to the area's start). */
static uint64_t rand_off(struct ctx *c, uint64_t len, uint64_t unit)
{
	uint64_t span = c->area_len - len;
	switch (vd_rand_below(&c->rng, 16)) {
	case 0:
		return c->area_off;
	case 1:
		return c->area_off + span / c->gran * c->gran;
	}
	if (vd_rand(&c->rng) & 1)
		unit = VD_PAGE > unit ? VD_PAGE : unit;
	return c->area_off + vd_rand_below(&c->rng, span / unit + 1) * unit;
}

/* Segments (1 to 4) with in-page offsets from c->pgoffs, each starting in a
 * page of its own inside the slot's buffer. */
static void prep_rw(struct ctx *c, struct slot *s, enum kind k, uint64_t off,
		    uint32_t len)
{
	unsigned niov = 1, pg0 = 0;
	bool any_pg = false;
	uint32_t left = len;
	unsigned char *cur = s->buf;

	s->kind = k;
	s->off = off;
	s->len = len;
	s->dropped = s->sweep = false;
	if (len >= 2 * c->gran && vd_rand_below(&c->rng, 4) == 0) {
		uint64_t most = len / c->gran - 1;
		niov = 2 +
		       (unsigned)vd_rand_below(&c->rng, most < 3 ? most : 3);
	}
	for (unsigned i = 0; i < niov; i++) {
		uint32_t seg = left;
		if (i + 1 < niov)
			seg = c->gran *
			      (1 + (uint32_t)vd_rand_below(
					   &c->rng,
					   left / c->gran - (niov - 1 - i)));
		unsigned pg = c->pgoffs[vd_rand_below(&c->rng, c->npgoffs)];
		if (i == 0)
			pg0 = pg;
		s->iov[i].iov_base = cur + pg;
		s->iov[i].iov_len = seg;
		cur += (pg + seg + VD_PAGE - 1) / VD_PAGE * VD_PAGE;
		left -= seg;
		any_pg |= pg != 0;
	}
	s->niov = niov;
	s->pgoff = pg0;
	c->st.vec_ops += niov > 1;
	c->st.bufoff_ops += any_pg;

	if (k == K_WRITE) {
		s->gen = ++c->next_gen;
		uint64_t pos = off;
		for (unsigned i = 0; i < niov; i++) {
			vd_pattern_fill(s->iov[i].iov_base, pos,
					s->iov[i].iov_len, c->seed, s->gen);
			pos += s->iov[i].iov_len;
		}
	}
	bool as_write = k == K_WRITE;
	if (as_write && c->o->inject == VD_INJ_DROP_WRITE &&
	    c->st.writes + 1 == c->o->inject_n) {
		as_write = false; /* the device never sees this write */
		s->dropped = true;
	}
	memset(&s->cb, 0, sizeof(s->cb));
	s->cb.aio_data = (uint64_t)(s - c->slots);
	s->cb.aio_fildes = (uint32_t)c->t.fd;
	s->cb.aio_offset = (int64_t)off;
	if (niov == 1) {
		s->cb.aio_lio_opcode =
			as_write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
		s->cb.aio_buf = (uint64_t)(uintptr_t)s->iov[0].iov_base;
		s->cb.aio_nbytes = len;
	} else {
		s->cb.aio_lio_opcode =
			as_write ? IOCB_CMD_PWRITEV : IOCB_CMD_PREADV;
		s->cb.aio_buf = (uint64_t)(uintptr_t)s->iov;
		s->cb.aio_nbytes = niov;
	}
	if (k == K_WRITE) {
		c->st.writes++;
		c->st.bytes_w += len;
	} else {
		c->st.reads++;
		c->st.bytes_r += len;
	}
	c->phase_issued += len;
	if (!c->st.min_len || len < c->st.min_len)
		c->st.min_len = len;
	if (len > c->st.max_len)
		c->st.max_len = len;
}

static void push_read(struct ctx *c, uint64_t off, uint32_t len, bool first)
{
	if (c->npend == PEND_MAX) { /* full: forget the oldest */
		memmove(&c->pend[0], &c->pend[1],
			(PEND_MAX - 1) * sizeof(c->pend[0]));
		c->npend--;
	}
	if (first) {
		memmove(&c->pend[1], &c->pend[0],
			c->npend * sizeof(c->pend[0]));
		c->pend[0] = (struct range){off, len};
	} else {
		c->pend[c->npend] = (struct range){off, len};
	}
	c->npend++;
}

/* After a write: half the time read the same range back, a quarter of the
 * time a range of another size that overlaps it. */
static void queue_raw(struct ctx *c, const struct slot *s)
{
	uint64_t r = vd_rand_below(&c->rng, 4);
	if (r < 2) {
		push_read(c, s->off, s->len, false);
	} else if (r == 2) {
		uint32_t len = rand_len(c, c->area_len < VD_MAX_IO ? c->area_len
								   : VD_MAX_IO);
		uint64_t x = s->off +
			     vd_rand_below(&c->rng, s->len / c->gran) * c->gran;
		uint64_t back = vd_rand_below(&c->rng, len / c->gran) * c->gran;
		uint64_t off = x - c->area_off >= back ? x - back : c->area_off;
		if (off + len > c->area_off + c->area_len)
			off = c->area_off + c->area_len - len;
		push_read(c, off, len, false);
	}
}

static enum kind pick_kind(struct ctx *c)
{
	uint64_t r = vd_rand_below(&c->rng, c->mix_total);
	for (unsigned k = 0; k < K_NKINDS; k++) {
		if (r < c->mix[k])
			return (enum kind)k;
		r -= c->mix[k];
	}
	return K_READ;
}

/* Discard and write-zeroes run synchronously (ioctl / fallocate), also
 * while AIO requests to other ranges are in flight. */
static int sync_range_op(struct ctx *c, enum kind k)
{
	uint64_t unit = k == K_DISCARD ? c->dgran : c->gran;
	uint64_t first = (c->area_off + unit - 1) / unit * unit;
	uint64_t end = c->area_off + c->area_len;
	if (first + unit > end)
		return PLAN_NONE;
	uint64_t len = (rand_len(c, end - first) + unit - 1) / unit * unit;
	if (len > end - first)
		len = (end - first) / unit * unit;
	uint64_t off =
		first +
		vd_rand_below(&c->rng, (end - first - len) / unit + 1) * unit;
	if (conflicts(c, k, off, len))
		return PLAN_NONE;
	int r = k == K_DISCARD ? vd_target_discard(&c->t, off, len)
			       : vd_target_zero(&c->t, off, len);
	if (r) {
		map_set(c, off, len, VD_GEN_UNKNOWN);
		vd_failf(c, "%s of %" PRIu64 " bytes at offset %" PRIu64 ": %s",
			 vd_kind_name[k], len, off, strerror(-r));
		return PLAN_SYNC;
	}
	if (k == K_DISCARD) {
		map_set(c, off, len,
			c->discard_zeroes ? VD_GEN_ZERO : VD_GEN_DISCARD);
		c->st.discards++;
	} else {
		map_set(c, off, len, VD_GEN_ZERO);
		c->st.zeroes++;
	}
	if (vd_rand(&c->rng) & 1)
		push_read(c, off, len > VD_MAX_IO ? VD_MAX_IO : (uint32_t)len,
			  false);
	return PLAN_SYNC;
}

int vd_plan_mixed(struct ctx *c, struct slot *s)
{
	for (unsigned i = 0; i < c->npend; i++) {
		struct range p = c->pend[i];
		if (conflicts(c, K_READ, p.off, p.len))
			continue;
		memmove(&c->pend[i], &c->pend[i + 1],
			(c->npend - i - 1) * sizeof(c->pend[0]));
		c->npend--;
		c->st.raw_reads++;
		prep_rw(c, s, K_READ, p.off, p.len);
		return PLAN_AIO;
	}
	enum kind k = pick_kind(c);
	for (unsigned tries = 0; tries < 8; tries++) {
		if (k == K_FLUSH) {
			c->st.flushes++;
			if (c->qd == 1) { /* fdatasync(2) on the device */
				if (fdatasync(c->t.fd))
					vd_failf(c, "fdatasync: %s",
						 strerror(errno));
				return PLAN_SYNC;
			}
			/* at depth: an AIO flush among the reads and writes */
			s->kind = K_FLUSH;
			s->off = s->len = 0;
			s->dropped = s->sweep = false;
			memset(&s->cb, 0, sizeof(s->cb));
			s->cb.aio_data = (uint64_t)(s - c->slots);
			s->cb.aio_fildes = (uint32_t)c->t.fd;
			s->cb.aio_lio_opcode = IOCB_CMD_FDSYNC;
			return PLAN_AIO;
		}
		if (k == K_DISCARD || k == K_ZERO) {
			int r = sync_range_op(c, k);
			if (r != PLAN_NONE)
				return r;
			continue;
		}
		uint32_t len = rand_len(c, c->area_len < VD_MAX_IO ? c->area_len
								   : VD_MAX_IO);
		uint64_t off = rand_off(c, len, c->gran);
		if (conflicts(c, k, off, len))
			continue;
		prep_rw(c, s, k, off, len);
		return PLAN_AIO;
	}
	return PLAN_NONE;
}

/* The final pass: every granule the map can check, in reads of up to
 * 1 MiB at the deepest queue depth. */
int vd_plan_sweep(struct ctx *c, struct slot *s)
{
	uint64_t g = c->sweep_cur, max = VD_MAX_IO / c->gran;
	while (g < c->granules && !vd_gen_checked(c->map[g]))
		g++;
	if (g >= c->granules)
		return PLAN_NONE;
	uint64_t start = g;
	while (g < c->granules && vd_gen_checked(c->map[g]) && g - start < max)
		g++;
	c->sweep_cur = g;
	prep_rw(c, s, K_READ, c->area_off + start * c->gran,
		(uint32_t)((g - start) * c->gran));
	s->sweep = true;
	c->st.sweep_bytes += s->len;
	return PLAN_AIO;
}

static void verify_read(struct ctx *c, struct slot *s)
{
	uint64_t pos = s->off, bad = 0, first_bad = 0, checked = 0;
	unsigned char *first_ptr = NULL;
	bool any = false;
	for (unsigned i = 0; i < s->niov; i++) {
		unsigned char *p = s->iov[i].iov_base;
		for (size_t b = 0; b < s->iov[i].iov_len; b += VD_SECTOR) {
			uint64_t off = pos + b;
			uint32_t g = c->map[gidx(c, off)];
			unsigned diff;
			if (!vd_gen_checked(g))
				continue;
			/* injected: as a device returning one wrong byte */
			if (!any && c->o->inject == VD_INJ_CORRUPT &&
			    ++c->inj_seen == c->o->inject_n)
				p[b + 100] ^= 0x40;
			any = true;
			checked += VD_SECTOR;
			if (vd_sector_check(p + b, off, c->seed, g, &diff) == 0)
				continue;
			if (!bad++) {
				first_bad = off;
				first_ptr = p + b;
			}
		}
		pos += s->iov[i].iov_len;
	}
	c->st.checked_bytes += checked;
	if (!bad)
		return;
	char want[48], got[256];
	uint32_t g = c->map[gidx(c, first_bad)];
	vd_sector_describe(first_ptr, first_bad, c->seed, g, got, sizeof(got));
	vd_failf(c,
		 "read of %" PRIu32 " bytes at offset %" PRIu64
		 " (%s phase, qd %u, %u segment(s), buffer page offset %u): "
		 "%" PRIu64 " of %" PRIu64
		 " checked sectors wrong; first at offset %" PRIu64
		 ": expected %s, found %s",
		 s->len, s->off, s->sweep ? "final" : "mixed", c->qd, s->niov,
		 s->pgoff, bad, checked / VD_SECTOR, first_bad,
		 vd_gen_str(g, want, sizeof(want)), got);
}

void vd_complete(struct ctx *c, const struct io_event *ev)
{
	uint64_t i = ev->data;
	struct slot *s = i < c->nslots ? &c->slots[i] : NULL;
	if (!s || !s->busy || ev->obj != (uint64_t)(uintptr_t)&s->cb) {
		vd_failf(c,
			 "AIO completion for a request not in flight (data "
			 "%" PRIu64 ", obj 0x%" PRIx64 ")",
			 (uint64_t)ev->data, (uint64_t)ev->obj);
		return;
	}
	s->busy = false;
	c->inflight--;
	int64_t res = ev->res;
	if (s->kind == K_FLUSH) {
		if (res != 0)
			vd_failf(c,
				 "AIO flush (FDSYNC) completed with %" PRId64
				 " (%s)",
				 res, res < 0 ? strerror((int)-res) : "not 0");
		return;
	}
	if (c->o->inject == VD_INJ_SHORT && ++c->inj_seen == c->o->inject_n &&
	    res > 0)
		res -= c->gran; /* as a device that moved less would */
	if (res != (int64_t)s->len) {
		if (s->kind == K_WRITE)
			map_set(c, s->off, s->len, VD_GEN_UNKNOWN);
		if (res < 0)
			vd_failf(c,
				 "%s of %" PRIu32 " bytes at offset %" PRIu64
				 " (%s phase, qd %u) failed: %s",
				 vd_kind_name[s->kind], s->len, s->off,
				 s->sweep ? "final" : "mixed", c->qd,
				 strerror((int)-res));
		else
			vd_failf(c,
				 "short %s at offset %" PRIu64 ": %" PRId64
				 " of %" PRIu32 " bytes (AIO completion res != "
				 "length; %s phase, qd %u)",
				 vd_kind_name[s->kind], s->off, res, s->len,
				 s->sweep ? "final" : "mixed", c->qd);
		return;
	}
	if (s->kind == K_WRITE) {
		map_set(c, s->off, s->len, s->gen);
		if (s->dropped) /* make sure the loss is looked at */
			push_read(c, s->off, s->len, true);
		else
			queue_raw(c, s);
		return;
	}
	verify_read(c, s);
}
