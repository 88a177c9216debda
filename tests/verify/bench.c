/* vd-verify bench: O_DIRECT throughput of a block device through native
 * AIO, one machine-readable line per workload, so that two disk paths of
 * the same guest (virtio-blk, Xen's blkfront) can be compared. Measures
 * only; the data written is not checked. An I/O error or a short transfer
 * still fails the run: a number measured over failing I/O means nothing. */
#include <errno.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd_verify.h"

enum wk { W_RANDREAD, W_RANDWRITE, W_READ, W_WRITE };
static const char *const wk_name[] = {"randread", "randwrite", "read", "write"};

struct workload {
	enum wk kind;
	uint32_t bs;
	unsigned qd;
};

#define MAX_WL 16
#define DEF_WL                                                                 \
	"randread:4k:1,randread:4k:32,randwrite:4k:1,randwrite:4k:32,read:1m:" \
	"8,write:1m:8"

static int parse_workloads(const char *s, struct workload *wl, unsigned *n)
{
	char buf[512], *save, *tok;
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *bs = strchr(tok, ':'),
		     *qd = bs ? strchr(bs + 1, ':') : NULL;
		uint64_t b, q;
		unsigned k;
		if (!qd || *n == MAX_WL)
			return -EINVAL;
		*bs++ = 0;
		*qd++ = 0;
		for (k = 0; k < 4 && strcmp(tok, wk_name[k]); k++)
			;
		if (k == 4 || vd_parse_u64(bs, &b, true) ||
		    vd_parse_u64(qd, &q, false) || !b || b > VD_MAX_IO ||
		    b % VD_SECTOR || !q || q > VD_MAX_QD)
			return -EINVAL;
		wl[(*n)++] =
			(struct workload){(enum wk)k, (uint32_t)b, (unsigned)q};
	}
	return *n ? 0 : -EINVAL;
}

static int run_one(struct vd_target *t, unsigned long aio, unsigned char *buf,
		   const struct workload *w, uint64_t area_off,
		   uint64_t area_len, double seconds)
{
	struct iocb cbs[VD_MAX_QD], *ptr[VD_MAX_QD];
	struct io_event ev[VD_MAX_QD];
	double t_sub[VD_MAX_QD], lat = 0;
	uint64_t rng = 0x1234 + w->kind, ops = 0, seq = 0;
	uint64_t blocks = area_len / w->bs;
	bool wr = w->kind == W_RANDWRITE || w->kind == W_WRITE;
	bool rnd = w->kind == W_RANDREAD || w->kind == W_RANDWRITE;
	unsigned inflight = 0;

	if (!blocks || w->bs % t->lbs) {
		printf("VD-BENCH FAIL workload=%s bs=%u: the area holds no "
		       "block of that size or it is not a multiple of %u\n",
		       wk_name[w->kind], w->bs, t->lbs);
		return 1;
	}
	unsigned freel[VD_MAX_QD], nfree = w->qd; /* free slots */
	for (unsigned i = 0; i < w->qd; i++)
		freel[i] = w->qd - 1 - i;
	double start = vd_now(), end = start + seconds, now = start;
	bool stop = false;
	for (;;) {
		unsigned nb = 0;
		while (!stop && nfree) {
			unsigned i = freel[--nfree];
			uint64_t blk = rnd ? vd_rand_below(&rng, blocks)
					   : seq++ % blocks;
			memset(&cbs[i], 0, sizeof(cbs[i]));
			cbs[i].aio_fildes = (uint32_t)t->fd;
			cbs[i].aio_lio_opcode =
				wr ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
			cbs[i].aio_buf =
				(uint64_t)(uintptr_t)(buf +
						      (size_t)i * VD_MAX_IO);
			cbs[i].aio_nbytes = w->bs;
			cbs[i].aio_offset = (int64_t)(area_off + blk * w->bs);
			cbs[i].aio_data = i;
			t_sub[i] = now;
			ptr[nb++] = &cbs[i];
		}
		if (nb) {
			int r = vd_aio_submit(aio, nb, ptr);
			if (r != (int)nb) {
				printf("VD-BENCH FAIL workload=%s: io_submit "
				       "took %d of %u\n",
				       wk_name[w->kind], r, nb);
				return 1;
			}
			inflight += nb;
		}
		if (!inflight)
			break;
		int n = vd_aio_getevents(aio, 1, w->qd, ev, 60);
		now = vd_now();
		if (n <= 0) {
			printf("VD-BENCH FAIL workload=%s: %s\n",
			       wk_name[w->kind],
			       n < 0 ? strerror(-n) : "no completion in 60 s");
			return 1;
		}
		for (int k = 0; k < n; k++) {
			unsigned i = (unsigned)ev[k].data;
			if (i >= w->qd || ev[k].res != (int64_t)w->bs) {
				printf("VD-BENCH FAIL workload=%s: request "
				       "%u completed with %" PRId64
				       " of %u bytes\n",
				       wk_name[w->kind], i, (int64_t)ev[k].res,
				       w->bs);
				return 1;
			}
			lat += now - t_sub[i];
			ops++;
			freel[nfree++] = i;
			inflight--;
		}
		if (now >= end)
			stop = true;
	}
	double secs = now - start;
	printf("VD-BENCH workload=%s bs=%u qd=%u secs=%.2f ops=%" PRIu64
	       " iops=%.0f mbs=%.1f lat_avg_us=%.0f\n",
	       wk_name[w->kind], w->bs, w->qd, secs, ops,
	       secs > 0 ? (double)ops / secs : 0.0,
	       secs > 0 ? (double)ops * w->bs / 1e6 / secs : 0.0,
	       ops ? lat / (double)ops * 1e6 : 0.0);
	return 0;
}

int vd_bench(const struct vd_bench_opts *o)
{
	struct workload wl[MAX_WL];
	unsigned nwl, maxqd = 1;
	struct vd_target t;
	char err[512];
	unsigned long aio;
	int ret = 0;

	if (parse_workloads(o->workloads ? o->workloads : DEF_WL, wl, &nwl)) {
		fprintf(stderr,
			"vd-verify: --workloads %s: KIND:BS:QD,... "
			"(KIND randread|randwrite|read|write, BS a "
			"multiple of 512 up to 1M, QD 1..64)\n",
			o->workloads);
		return 2;
	}
	for (unsigned i = 0; i < nwl; i++)
		maxqd = wl[i].qd > maxqd ? wl[i].qd : maxqd;
	if (vd_target_open(&t, o->dev, err, sizeof(err))) {
		printf("VD-BENCH FAIL %s\n", err);
		return 1;
	}
	uint64_t len = o->area_len ? o->area_len : t.size - o->area_off;
	if (o->area_off % VD_PAGE || o->area_off >= t.size ||
	    len > t.size - o->area_off) {
		printf("VD-BENCH FAIL area %" PRIu64 "+%" PRIu64
		       " is not inside %s (%" PRIu64 " bytes)\n",
		       o->area_off, len, o->dev, t.size);
		vd_target_close(&t);
		return 1;
	}
	/* the last 8 KiB of the area proves direct I/O */
	uint64_t probe = (o->area_off + len) / VD_PAGE * VD_PAGE - VD_PROBE_LEN;
	if (len < 2 * VD_PROBE_LEN ||
	    vd_target_prove_direct(&t, probe, err, sizeof(err))) {
		printf("VD-BENCH FAIL %s\n",
		       len < 2 * VD_PROBE_LEN ? "area too small" : err);
		vd_target_close(&t);
		return 1;
	}
	unsigned char *buf = vd_alloc_aligned((size_t)maxqd * VD_MAX_IO);
	int r = buf ? vd_aio_setup(maxqd, &aio) : -ENOMEM;
	if (r) {
		printf("VD-BENCH FAIL io_setup: %s\n", strerror(-r));
		free(buf);
		vd_target_close(&t);
		return 1;
	}
	vd_pattern_fill(buf, 0, (size_t)maxqd * VD_MAX_IO, 1, 1);
	printf("VD-BENCH START dev=%s name=%s size=%" PRIu64
	       " lbs=%u write_cache=\"%s\" area=%" PRIu64 "+%" PRIu64
	       " seconds=%g\n",
	       o->dev, t.name, t.size, t.lbs, t.cache, o->area_off, len,
	       o->seconds);
	for (unsigned i = 0; i < nwl && !ret; i++)
		ret = run_one(&t, aio, buf, &wl[i], o->area_off, len,
			      o->seconds);
	vd_aio_destroy(aio);
	free(buf);
	vd_target_close(&t);
	return ret;
}
