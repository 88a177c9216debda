/* The record of a run: which generation each granule of the test area holds
 * (or zeroes, or "discarded", or "never written"), as an extent table plus
 * a header block at the end of the device, both under one FNV-1a 64 sum.
 * Loading validates every field before anything is used; a damaged or
 * truncated record is a failure, never "nothing to check". */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd_verify.h"

_Static_assert(sizeof(struct vd_record_hdr) == 128, "record header layout");
_Static_assert(sizeof(struct vd_extent) == 8, "extent layout");

uint64_t vd_record_anchor(uint64_t dev_size)
{
	return (dev_size / VD_REC_ANCHOR) * VD_REC_ANCHOR - VD_REC_ANCHOR;
}

uint64_t vd_record_reserve(uint64_t granules)
{
	uint64_t table = granules * sizeof(struct vd_extent);
	return VD_REC_ANCHOR + (table + VD_PAGE - 1) / VD_PAGE * VD_PAGE;
}

int vd_record_extents(const uint32_t *map, uint64_t granules,
		      struct vd_extent **ext, uint64_t *n_ext)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < granules; i++)
		if (i == 0 || map[i] != map[i - 1])
			n++;
	struct vd_extent *e = calloc(n ? n : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	n = 0;
	for (uint64_t i = 0; i < granules; i++)
		if (i == 0 || map[i] != map[i - 1])
			e[n++] = (struct vd_extent){(uint32_t)i, map[i]};
	*ext = e;
	*n_ext = n;
	return 0;
}

static void hdr_swap(struct vd_record_hdr *h, bool to_le)
{
#define S64(f) h->f = to_le ? htole64(h->f) : le64toh(h->f)
#define S32(f) h->f = to_le ? htole32(h->f) : le32toh(h->f)
	S32(version);
	S32(hdr_size);
	S64(seed);
	S64(dev_size);
	S64(area_off);
	S64(area_len);
	S32(gran);
	S32(flags);
	S64(ext_off);
	S64(n_ext);
	S64(ops);
	S64(bytes_w);
	S64(bytes_r);
	S64(flushes);
	S64(discards);
	S64(zeroes);
	S64(sum);
#undef S64
#undef S32
}

static uint64_t record_sum(const struct vd_record_hdr *le_hdr,
			   const struct vd_extent *le_ext, uint64_t n_ext)
{
	struct vd_record_hdr h = *le_hdr;
	h.sum = 0;
	uint64_t s = vd_fnv1a(VD_FNV_INIT, &h, sizeof(h));
	return vd_fnv1a(s, le_ext, n_ext * sizeof(*le_ext));
}

uint64_t vd_record_seal(struct vd_record_hdr *hdr, struct vd_extent *ext,
			uint64_t n_ext)
{
	memcpy(hdr->magic, VD_REC_MAGIC, sizeof(hdr->magic));
	hdr->version = VD_REC_VERSION;
	hdr->hdr_size = sizeof(*hdr);
	hdr->sum = 0;
	hdr_swap(hdr, true);
	for (uint64_t i = 0; i < n_ext; i++) {
		ext[i].start = htole32(ext[i].start);
		ext[i].gen = htole32(ext[i].gen);
	}
	uint64_t sum = record_sum(hdr, ext, n_ext);
	hdr->sum = htole64(sum);
	return sum;
}

static int read_all(int fd, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ENODATA;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int vd_record_load(int fd, uint64_t img_size, uint64_t anchor,
		   struct vd_record_hdr *hdr, struct vd_extent **ext, char *err,
		   size_t n)
{
	struct vd_record_hdr h;
	*ext = NULL;
	if (img_size < 2 * VD_REC_ANCHOR || anchor + VD_REC_ANCHOR > img_size) {
		snprintf(err, n,
			 "image of %llu bytes has no room for a record "
			 "at %llu",
			 (unsigned long long)img_size,
			 (unsigned long long)anchor);
		return -EINVAL;
	}
	int r = read_all(fd, &h, sizeof(h), anchor);
	if (r) {
		snprintf(err, n, "reading the record header at %llu: %s",
			 (unsigned long long)anchor, strerror(-r));
		return r;
	}
	if (memcmp(h.magic, VD_REC_MAGIC, sizeof(h.magic))) {
		snprintf(err, n,
			 "no record at offset %llu (magic is not %s): the "
			 "guest did not write one, or it was overwritten or "
			 "the image truncated",
			 (unsigned long long)anchor, VD_REC_MAGIC);
		return -EINVAL;
	}
	struct vd_record_hdr le = h;
	hdr_swap(&h, false);
	if (h.version != VD_REC_VERSION || h.hdr_size != sizeof(h)) {
		snprintf(err, n, "record version %u size %u: expected %u, %zu",
			 h.version, h.hdr_size, VD_REC_VERSION, sizeof(h));
		return -EINVAL;
	}
	/* Bound the table before reading it: it lies between the area's end
	 * and the header. */
	if (h.ext_off > anchor || h.n_ext == 0 ||
	    h.n_ext > (anchor - h.ext_off) / sizeof(struct vd_extent)) {
		snprintf(err, n,
			 "record damaged: extent table at %llu with %llu "
			 "entries does not fit before the header at %llu",
			 (unsigned long long)h.ext_off,
			 (unsigned long long)h.n_ext,
			 (unsigned long long)anchor);
		return -EINVAL;
	}
	struct vd_extent *e = malloc(h.n_ext * sizeof(*e));
	if (!e) {
		snprintf(err, n, "out of memory for %llu extents",
			 (unsigned long long)h.n_ext);
		return -ENOMEM;
	}
	r = read_all(fd, e, h.n_ext * sizeof(*e), h.ext_off);
	if (r) {
		snprintf(err, n, "reading the extent table at %llu: %s",
			 (unsigned long long)h.ext_off, strerror(-r));
		free(e);
		return r;
	}
	uint64_t sum = record_sum(&le, e, h.n_ext);
	if (sum != h.sum) {
		snprintf(err, n,
			 "record damaged: checksum of header + %llu extents is "
			 "%016llx, the header says %016llx",
			 (unsigned long long)h.n_ext, (unsigned long long)sum,
			 (unsigned long long)h.sum);
		free(e);
		return -EINVAL;
	}
	for (uint64_t i = 0; i < h.n_ext; i++) {
		e[i].start = le32toh(e[i].start);
		e[i].gen = le32toh(e[i].gen);
	}
	/* The sum only proves the record is what the guest wrote; a guest
	 * bug could still have written nonsense. */
	const char *bad = NULL;
	uint64_t granules = h.gran ? h.area_len / h.gran : 0;
	if (h.gran < VD_SECTOR || h.gran > VD_PAGE || (h.gran & (h.gran - 1)))
		bad = "granule size";
	else if (h.area_off % h.gran || h.area_len % h.gran || !h.area_len ||
		 h.area_off + h.area_len > h.ext_off || granules > UINT32_MAX)
		bad = "area";
	else if (h.dev_size > img_size || anchor + VD_REC_ANCHOR > h.dev_size)
		bad = "device size";
	else if (h.n_ext > granules || e[0].start != 0)
		bad = "extent count";
	for (uint64_t i = 0; !bad && i < h.n_ext; i++) {
		if (i && e[i].start <= e[i - 1].start)
			bad = "extent order";
		else if (e[i].start >= granules)
			bad = "extent start";
		else if (e[i].gen > VD_GEN_MAX && e[i].gen != VD_GEN_ZERO &&
			 e[i].gen != VD_GEN_DISCARD)
			bad = "extent generation";
	}
	if (bad) {
		snprintf(err, n,
			 "record inconsistent (%s) although its "
			 "checksum is right",
			 bad);
		free(e);
		return -EINVAL;
	}
	*hdr = h;
	*ext = e;
	return 0;
}
