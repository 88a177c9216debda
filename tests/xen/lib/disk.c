/* A disk image for the Xen stand-in tests and what its bytes must be:
 * every write, zeroing and discard the guest makes is recorded, and the
 * image file is compared with it byte for byte. Test-only. */
#include "xtest.h"

/* The known content, computed once per process (the largest asked for). */
static const uint8_t *pattern_of(size_t size)
{
	static uint8_t *tmpl;
	static size_t tmpl_size;

	if (size > tmpl_size) {
		uint8_t *t = realloc(tmpl, size);

		if (!t)
			return NULL;
		for (size_t s = tmpl_size / 512; s < size / 512; s++)
			for (size_t i = 0; i < 512; i++)
				t[s * 512 + i] = xt_pattern((uint32_t)s, i);
		tmpl = t;
		tmpl_size = size;
	}
	return tmpl;
}

int xt_disk_new(struct xt_disk *d, size_t size)
{
	const uint8_t *tmpl = pattern_of(size);

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (size % 512)
		return -EINVAL;
	d->size = size;
	d->want = malloc(size);
	d->got = malloc(size);
	d->discarded = calloc(size / 512, 1);
	d->dirty = calloc(size / 512, 1);
	if (!d->want || !d->got || !d->discarded || !d->dirty || !tmpl)
		return -ENOMEM;
	memcpy(d->want, tmpl, size);
	snprintf(d->path, sizeof(d->path), "/dev/shm/vd-xen-disk-XXXXXX");
	d->fd = mkstemp(d->path);
	if (d->fd < 0)
		return -errno;
	if (pwrite(d->fd, d->want, size, 0) != (ssize_t)size)
		return -EIO;
	return 0;
}

int xt_begin(struct xt_disk *d, size_t size)
{
	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	return xt_disk_new(d, size);
}

int xt_end(struct xt_disk *d)
{
	xt_disk_free(d);
	return 0;
}

void xt_disk_free(struct xt_disk *d)
{
	if (d->fd >= 0) {
		close(d->fd);
		unlink(d->path);
	}
	free(d->want);
	free(d->got);
	free(d->discarded);
	free(d->dirty);
	memset(d, 0, sizeof(*d));
	d->fd = -1;
}

int xt_disk_reset(struct xt_disk *d)
{
	const uint8_t *tmpl = pattern_of(d->size);
	size_t nsec = d->size / 512;

	for (size_t s = 0; s < nsec;) {
		size_t e = s;

		if (!d->dirty[s]) {
			s++;
			continue;
		}
		while (e < nsec && d->dirty[e])
			e++;
		memcpy(d->want + s * 512, tmpl + s * 512, (e - s) * 512);
		if (pwrite(d->fd, tmpl + s * 512, (e - s) * 512,
			   (off_t)s * 512) != (ssize_t)((e - s) * 512))
			return -EIO;
		s = e;
	}
	memset(d->dirty, 0, nsec);
	memset(d->discarded, 0, nsec);
	return 0;
}

void xt_disk_wrote(struct xt_disk *d, uint64_t sector, const void *buf,
		   size_t len)
{
	memcpy(d->want + sector * 512, buf, len);
	memset(d->discarded + sector, 0, len / 512);
	memset(d->dirty + sector, 1, (len + 511) / 512);
}

void xt_disk_zeroed(struct xt_disk *d, uint64_t sector, uint32_t nsec)
{
	memset(d->want + sector * 512, 0, (size_t)nsec * 512);
	memset(d->discarded + sector, 0, nsec);
	memset(d->dirty + sector, 1, nsec);
}

void xt_disk_discarded(struct xt_disk *d, uint64_t sector, uint32_t nsec)
{
	/* virtio 1.2 §5.2.6.2: discarded data is not defined afterwards;
	 * the old bytes or zeros (a punched hole) are what a file gives. */
	memset(d->discarded + sector, 1, nsec);
	memset(d->dirty + sector, 1, nsec);
}

static bool zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Compares sector by sector; the index of the first bad byte or -1. */
static long diff(const struct xt_disk *d, uint64_t sector, const uint8_t *got,
		 size_t len)
{
	for (size_t off = 0; off < len; off += 512) {
		const uint8_t *w = d->want + sector * 512 + off;
		size_t n = len - off < 512 ? len - off : 512;

		if (!memcmp(w, got + off, n))
			continue;
		if (d->discarded[sector + off / 512] && zero(got + off, n))
			continue;
		for (size_t i = 0; i < n; i++)
			if (w[i] != got[off + i])
				return (long)(off + i);
	}
	return -1;
}

bool xt_disk_read_ok(const struct xt_disk *d, uint64_t sector,
		     const uint8_t *got, size_t len)
{
	return diff(d, sector, got, len) < 0;
}

int xt_disk_check(struct xt_disk *d, char *why, size_t whylen)
{
	long bad;

	if (pread(d->fd, d->got, d->size, 0) != (ssize_t)d->size) {
		snprintf(why, whylen, "cannot read the image back");
		return -1;
	}
	bad = diff(d, 0, d->got, d->size);
	if (bad >= 0)
		snprintf(why, whylen,
			 "image byte 0x%lx (sector %ld) is 0x%02x, want 0x%02x",
			 bad, bad / 512, d->got[bad], d->want[bad]);
	return bad >= 0 ? -1 : 0;
}
