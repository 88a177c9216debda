/* Virtqueue throughput: blk-like chains (16 B header, 4 KiB data, 1 B status)
 * in batches of 32, pushed out of order. Prints chains per second for the
 * device side alone and with the test driver included. Never a test. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "test_driver.h"
#include "virtiod/log.h"

#define BATCH 32
#define TOTAL 4000000u

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "core_virtqueue: %s failed\n", what);
	exit(1);
}

static void run(enum vd_vq_layout layout, bool indirect, unsigned nregions)
{
	struct td_mem *m = td_mem_new(64 << 20, nregions);
	struct td_vq *q = td_vq_new(m, layout, 256, true, true);
	struct vd_vq_elem *e[BATCH];
	struct vd_vq_config cfg;
	struct vd_vq *vq;
	double device_s = 0, t0;

	td_vq_fill_config(q, &cfg);
	if (vd_vq_new(&cfg, td_mem_vd(m), NULL, "bench", &vq))
		die("vd_vq_new");
	uint64_t hdr = td_mem_alloc(m, 16 * BATCH, 16);
	uint64_t data = td_mem_alloc(m, 4096 * BATCH, 4096);
	uint64_t status = td_mem_alloc(m, BATCH, 1);

	t0 = now();
	for (unsigned done = 0; done < TOTAL; done += BATCH) {
		for (unsigned i = 0; i < BATCH; i++) {
			struct td_buf b[3] = {{hdr + 16 * i, 16, false},
					      {data + 4096ull * i, 4096, true},
					      {status + i, 1, true}};
			if (td_vq_add(q, b, 3, indirect, NULL))
				die("td_vq_add");
		}
		td_vq_kick_needed(q);
		double d0 = now();
		for (unsigned i = 0; i < BATCH; i++)
			if (vd_vq_pop(vq, &e[i]) != 1)
				die("vd_vq_pop");
		for (unsigned i = 0; i < BATCH; i++)
			vd_vq_push(vq, e[BATCH - 1 - i], 4097);
		vd_vq_flush(vq);
		device_s += now() - d0;
		for (unsigned i = 0; i < BATCH; i++) {
			void *token;
			uint32_t len;
			if (td_vq_get_used(q, &token, &len) != 1)
				die("td_vq_get_used");
		}
	}
	double all_s = now() - t0;
	printf("%-6s %-8s regions=%u: device pop+push+flush %.1f M chains/s "
	       "(%.0f ns/chain); with test driver %.1f M chains/s\n",
	       layout == VD_VQ_SPLIT ? "split" : "packed",
	       indirect ? "indirect" : "direct", nregions,
	       TOTAL / device_s / 1e6, device_s / TOTAL * 1e9,
	       TOTAL / all_s / 1e6);
	vd_vq_free(vq);
	td_vq_free(q);
	td_mem_free(m);
}

int main(void)
{
	vd_log_set_level(VD_LOG_ERR);
	for (int packed = 0; packed < 2; packed++)
		for (int indirect = 0; indirect < 2; indirect++)
			run(packed ? VD_VQ_PACKED : VD_VQ_SPLIT, indirect, 1);
	run(VD_VQ_SPLIT, false, 8);
	run(VD_VQ_PACKED, false, 8);
	return 0;
}
