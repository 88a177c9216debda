/* iovec helpers (include/virtiod/iov.h): copies, slices, advancing and
 * truncating across iovec boundaries, with zero-length iovecs, and never a
 * byte past the iovecs or the length asked for. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "virtiod/iov.h"

/* 3 + 0 + 5 + 8 bytes over one backing buffer with guard bytes around. */
struct frag {
	uint8_t mem[32];
	struct iovec iov[4];
};

static void frag_init(struct frag *f)
{
	for (unsigned i = 0; i < sizeof(f->mem); i++)
		f->mem[i] = (uint8_t)(0xa0 + i);
	f->iov[0] = (struct iovec){f->mem + 1, 3};
	f->iov[1] = (struct iovec){f->mem + 4, 0};
	f->iov[2] = (struct iovec){f->mem + 6, 5};
	f->iov[3] = (struct iovec){f->mem + 12, 8};
}

static void length_sums_every_iovec(void **s)
{
	struct frag f;

	(void)s;
	frag_init(&f);
	assert_int_equal(vd_iov_length(f.iov, 4), 16);
	assert_int_equal(vd_iov_length(f.iov, 0), 0);
}

static void to_buf_copies_across_iovecs_from_an_offset(void **s)
{
	struct frag f;
	uint8_t out[20];

	(void)s;
	frag_init(&f);
	memset(out, 0xee, sizeof(out));
	/* bytes 2..9: one of iov[0], all of iov[2], two of iov[3] */
	assert_int_equal(vd_iov_to_buf(f.iov, 4, 2, out, 8), 8);
	assert_int_equal(out[0], f.mem[3]);
	assert_memory_equal(out + 1, f.mem + 6, 5);
	assert_memory_equal(out + 6, f.mem + 12, 2);
	assert_int_equal(out[8], 0xee);
}

static void to_buf_stops_where_the_iovecs_end(void **s)
{
	struct frag f;
	uint8_t out[20];

	(void)s;
	frag_init(&f);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(vd_iov_to_buf(f.iov, 4, 10, out, 20), 6);
	assert_memory_equal(out, f.mem + 14, 6);
	assert_int_equal(out[6], 0xee);
	assert_int_equal(vd_iov_to_buf(f.iov, 4, 16, out, 4), 0);
	assert_int_equal(vd_iov_to_buf(f.iov, 4, 99, out, 4), 0);
}

static void from_buf_writes_only_inside_the_iovecs(void **s)
{
	struct frag f, ref;
	uint8_t in[20];

	(void)s;
	frag_init(&f);
	frag_init(&ref);
	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	/* From byte 1 on, more than there is room for. */
	assert_int_equal(vd_iov_from_buf(f.iov, 4, 1, in, 20), 15);
	assert_memory_equal(f.mem + 2, in, 2);
	assert_memory_equal(f.mem + 6, in + 2, 5);
	assert_memory_equal(f.mem + 12, in + 7, 8);
	/* The gaps and guards are untouched. */
	assert_int_equal(f.mem[1], ref.mem[1]);
	assert_memory_equal(f.mem + 4, ref.mem + 4, 2);
	assert_int_equal(f.mem[11], ref.mem[11]);
	assert_memory_equal(f.mem + 20, ref.mem + 20, 12);
}

static void slice_points_into_the_same_buffers(void **s)
{
	struct frag f;
	struct iovec d[4];

	(void)s;
	frag_init(&f);
	assert_int_equal(vd_iov_slice(f.iov, 4, 2, 9, d, 4), 3);
	assert_ptr_equal(d[0].iov_base, f.mem + 3);
	assert_int_equal(d[0].iov_len, 1);
	assert_ptr_equal(d[1].iov_base, f.mem + 6);
	assert_int_equal(d[1].iov_len, 5);
	assert_ptr_equal(d[2].iov_base, f.mem + 12);
	assert_int_equal(d[2].iov_len, 3);
	/* Past the end: what there is. */
	assert_int_equal(vd_iov_slice(f.iov, 4, 14, 10, d, 4), 1);
	assert_int_equal(d[0].iov_len, 2);
	assert_int_equal(vd_iov_slice(f.iov, 4, 0, 0, d, 4), 0);
}

static void slice_refuses_more_pieces_than_room(void **s)
{
	struct frag f;
	struct iovec d[2];

	(void)s;
	frag_init(&f);
	assert_int_equal(vd_iov_slice(f.iov, 4, 0, 16, d, 2), -ENOBUFS);
	assert_int_equal(vd_iov_slice(f.iov, 4, 0, 8, d, 2), 2);
}

static void advance_drops_whole_iovecs_and_shortens_the_next(void **s)
{
	struct frag f;
	struct iovec *v;
	unsigned n = 4;

	(void)s;
	frag_init(&f);
	v = f.iov;
	/* A 4-byte header: iov[0], the empty iov[1], one byte of iov[2]. */
	assert_int_equal(vd_iov_advance(&v, &n, 4), 4);
	assert_ptr_equal(v, &f.iov[2]);
	assert_int_equal(n, 2);
	assert_ptr_equal(v->iov_base, f.mem + 7);
	assert_int_equal(v->iov_len, 4);
	/* Exactly to an iovec's end moves past it. */
	assert_int_equal(vd_iov_advance(&v, &n, 4), 4);
	assert_ptr_equal(v, &f.iov[3]);
	assert_int_equal(n, 1);
	/* More than is left: all of it. */
	assert_int_equal(vd_iov_advance(&v, &n, 100), 8);
	assert_int_equal(n, 0);
	assert_int_equal(vd_iov_advance(&v, &n, 1), 0);
}

static void truncate_keeps_the_first_bytes(void **s)
{
	struct frag f;
	unsigned n = 4;

	(void)s;
	frag_init(&f);
	assert_int_equal(vd_iov_truncate(f.iov, &n, 6), 6);
	assert_int_equal(n, 3);
	assert_int_equal(f.iov[2].iov_len, 3);
	assert_int_equal(vd_iov_length(f.iov, n), 6);
	/* Longer than there is: unchanged. */
	frag_init(&f);
	n = 4;
	assert_int_equal(vd_iov_truncate(f.iov, &n, 99), 16);
	assert_int_equal(n, 4);
	/* To nothing. */
	n = 4;
	assert_int_equal(vd_iov_truncate(f.iov, &n, 0), 0);
	assert_int_equal(n, 0);
	/* At an iovec boundary: the empty iovec after it goes too. */
	frag_init(&f);
	n = 4;
	assert_int_equal(vd_iov_truncate(f.iov, &n, 3), 3);
	assert_int_equal(n, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(length_sums_every_iovec),
		cmocka_unit_test(to_buf_copies_across_iovecs_from_an_offset),
		cmocka_unit_test(to_buf_stops_where_the_iovecs_end),
		cmocka_unit_test(from_buf_writes_only_inside_the_iovecs),
		cmocka_unit_test(slice_points_into_the_same_buffers),
		cmocka_unit_test(slice_refuses_more_pieces_than_room),
		cmocka_unit_test(
			advance_drops_whole_iovecs_and_shortens_the_next),
		cmocka_unit_test(truncate_keeps_the_first_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
