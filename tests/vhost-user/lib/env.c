/* A ready device for the protocol suites: connected, negotiated, memory
 * and rings set up; the per-test fixture around it; and the I/O round trip
 * most tests end with to show the device still works. */
#include <linux/virtio_blk.h>
#include <stdlib.h>
#include <string.h>

#include "vu_test.h"

void env_open(struct env *e, unsigned nq, bool packed, uint16_t num)
{
	struct vuf_mem *mems[1] = {&e->m};

	e->nq = nq;
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(packed));
	gmem_new(&e->m, 64u << 20, 0x100000000ull);
	fe_set_mem_table(&e->f, mems, 1);
	for (unsigned i = 0; i < nq; i++) {
		ring_init(&e->r[i], &e->m, i, num, packed);
		fe_setup_ring(&e->f, &e->r[i], packed ? 0x80008000u : 0, false,
			      true);
	}
}

void env_close(struct env *e)
{
	vuf_close(&e->f);
	for (unsigned i = 0; i < e->nq; i++)
		ring_free(&e->r[i]);
	gmem_free(&e->m);
	e->nq = 0;
}

int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	daemon_prepare(&e->d, 64);
	*state = e;
	return 0;
}

int env_teardown(void **state)
{
	struct env *e = *state;

	if (e->nq)
		env_close(e);
	if (e->d.pid > 0 && !daemon_alive(&e->d))
		daemon_dump_log(&e->d);
	daemon_cleanup(&e->d);
	free(e);
	return 0;
}

void io_roundtrip(struct env *e, struct ring *r, uint64_t sector, uint32_t seed)
{
	const uint32_t len = 16384;
	uint64_t data = gmem_alloc(&e->m, len, 4096);

	fill_pattern(gmem_hva(&e->m, data), len, seed);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_OUT, sector, data, len),
			 VIRTIO_BLK_S_OK);
	memset(gmem_hva(&e->m, data), 0, len);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, sector, data, len),
			 VIRTIO_BLK_S_OK);
	assert_true(check_pattern(gmem_hva(&e->m, data), len, seed));
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	assert_true(image_has_pattern(&e->d, sector, len, seed));
}

void daemon_serves_io(const struct daemon *d)
{
	struct env e;

	memset(&e, 0, sizeof(e));
	e.d = *d;
	env_open(&e, 1, false, 64);
	io_roundtrip(&e, &e.r[0], 64, 3);
	env_close(&e);
}
