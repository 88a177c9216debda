/* A guest-memory fixture (tests/unit/lib/mem_fixture.c): a region table
 * of three adjacent regions (and a fourth past a gap) over unrelated host
 * buffers, so a translation that assumed contiguous host memory would
 * show; releases are counted. For tests/unit/test_guest_mem*.c. */
#ifndef VIRTIOD_TEST_MEM_FIXTURE_H
#define VIRTIOD_TEST_MEM_FIXTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtiod/guest_mem.h"

struct mem_fixture {
	struct vd_mem *mem;
	uint8_t *buf[4];
	struct vd_mem_region r[4];
};

/* Regions released so far (reset by mf_init). */
extern atomic_int mf_releases;
void mf_count_release(struct vd_mem_region *r);
/* Regions 0x1000-0x4fff (three) and, with_gap_region, 0x6000-0x6fff. */
void mf_init(struct mem_fixture *f, bool with_gap_region);
void mf_fini(struct mem_fixture *f);

#endif
