/* Guest memory laid out as Linux under Xen lays it out for virtio (the DMA
 * API is always on there): frames from a fragmented page allocator in
 * descending order, merged multi-page segments at in-page offsets, 1 MiB
 * segments across map-cache buckets, headers near the end of a page.
 * Test-only. */
#include "xtest.h"

#define PAGE 4096ULL

void xt_frames_init(struct xt_frames *f, uint64_t gpa, uint64_t len)
{
	f->lo = gpa;
	f->next = gpa + (len & ~(PAGE - 1));
}

uint64_t xt_frames_take(struct xt_frames *f, unsigned pages, unsigned gap)
{
	uint64_t need = (uint64_t)(pages + gap) * PAGE;

	if (f->next - f->lo < need)
		return 0;
	f->next -= need;
	return f->next;
}

uint64_t xt_frames_take_across_bucket(struct xt_frames *f)
{
	uint64_t b = (f->next - PAGE) & ~(XT_MIB - 1);

	if (b < f->lo + PAGE || b + PAGE > f->next)
		return 0;
	f->next = b - PAGE;
	return b;
}

const char *xt_shape_name(enum xt_shape s)
{
	static const char *const names[] = {
		[XT_SHAPE_4K_DESCENDING] = "126x4k_descending_frames",
		[XT_SHAPE_12K_DESCENDING] = "126x12k_descending_runs",
		[XT_SHAPE_1M_ACROSS_BUCKETS] = "1m_segments_across_buckets",
	};

	return s < XT_SHAPES ? names[s] : "?";
}

static bool crosses(uint64_t gpa, uint32_t len)
{
	return gpa / XT_MIB != (gpa + len - 1) / XT_MIB;
}

uint32_t xt_shape_fill(enum xt_shape s, struct xt_frames *f,
		       struct sx_blk_io *io, unsigned *crossings)
{
	uint32_t bytes = 0;
	uint64_t g;

	io->nseg = 0;
	*crossings = 0;
	switch (s) {
	case XT_SHAPE_4K_DESCENDING:
		for (unsigned i = 0; i < 126; i++) {
			g = xt_frames_take(f, 1, 1);
			if (!g)
				return 0;
			io->seg[io->nseg++] = (struct sx_seg){g, 4096};
		}
		break;
	case XT_SHAPE_12K_DESCENDING:
		/* The first run straddles a bucket boundary b (its frames
		 * b-2..b+1, a free frame above), and run 51 straddles the
		 * next boundary down. */
		g = (f->next - 3 * PAGE) & ~(XT_MIB - 1);
		if (f->next < 3 * PAGE || g < f->lo + 2 * PAGE)
			return 0;
		f->next = g + 3 * PAGE;
		for (unsigned i = 0; i < 126; i++) {
			g = xt_frames_take(f, 4, 1);
			if (!g)
				return 0;
			io->seg[io->nseg++] = (struct sx_seg){g + 0x200, 12288};
		}
		break;
	case XT_SHAPE_1M_ACROSS_BUCKETS:
		/* 2 MiB + 512 contiguous, the first byte at 0x80200 into a
		 * bucket: a 512-byte aligned O_DIRECT buffer in a huge page. */
		g = xt_frames_take(f, 4 * 256, 0);
		if (!g)
			return 0;
		g = (g + XT_MIB - 1) & ~(XT_MIB - 1);
		io->seg[io->nseg++] = (struct sx_seg){g + 0x80200, 1 << 20};
		io->seg[io->nseg++] =
			(struct sx_seg){g + 0x80200 + XT_MIB, 1 << 20};
		break;
	default:
		return 0;
	}
	for (unsigned i = 0; i < io->nseg; i++) {
		bytes += io->seg[i].len;
		*crossings += crosses(io->seg[i].gpa, io->seg[i].len);
	}
	return bytes;
}

unsigned xt_segs_split_in_two(struct xt_frames *f, struct sx_blk_io *io,
			      unsigned n, bool grant)
{
	io->nseg = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t g;

		if (grant) {
			/* 1 MiB at 0x200 into a frame: 257 frames. */
			g = xt_frames_take(f, 257, 1);
			if (!g)
				return 0;
			io->seg[io->nseg++] =
				(struct sx_seg){g + 0x200, 1 << 20};
		} else {
			/* A frame either side of a bucket boundary. */
			g = xt_frames_take_across_bucket(f);
			if (!g)
				return 0;
			io->seg[io->nseg++] = (struct sx_seg){g - 4096, 8192};
		}
	}
	return io->nseg;
}

uint64_t xt_hdr_place(struct xt_frames *f, unsigned variant)
{
	uint64_t g;

	switch (variant % 3) {
	case 0:
		g = xt_frames_take(f, 2, 0);
		return g ? g + 0xff0 : 0;
	case 1:
		g = xt_frames_take(f, 2, 0);
		return g ? g + 0xff8 : 0;
	default:
		g = xt_frames_take_across_bucket(f);
		return g ? g - 16 : 0;
	}
}

void xt_segs_to_buf(const uint8_t *ram, const struct sx_blk_io *io,
		    uint8_t *buf)
{
	for (unsigned i = 0; i < io->nseg; i++) {
		memcpy(buf, ram + io->seg[i].gpa, io->seg[i].len);
		buf += io->seg[i].len;
	}
}

void xt_buf_to_segs(uint8_t *ram, const struct sx_blk_io *io,
		    const uint8_t *buf)
{
	for (unsigned i = 0; i < io->nseg; i++) {
		memcpy(ram + io->seg[i].gpa, buf, io->seg[i].len);
		buf += io->seg[i].len;
	}
}
