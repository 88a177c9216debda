/* Opening the device under test: O_DIRECT, and proof that direct I/O is
 * really in effect. Never falls back to buffered I/O: a file system or
 * device that drops O_DIRECT (tmpfs accepts the flag and ignores it) is a
 * failure with a message, not something to work around. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vd_verify.h"

/* /sys/dev/block/M:m/queue/ATTR, or the parent's for a partition. */
static int sysfs_queue(dev_t rdev, const char *attr, char *out, size_t n)
{
	const char *fmt[] = {"/sys/dev/block/%u:%u/queue/%s",
			     "/sys/dev/block/%u:%u/../queue/%s"};
	for (unsigned i = 0; i < 2; i++) {
		char path[128];
		snprintf(path, sizeof(path), fmt[i], major(rdev), minor(rdev),
			 attr);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		bool ok = fgets(out, (int)n, f) != NULL;
		fclose(f);
		if (ok) {
			out[strcspn(out, "\n")] = 0;
			return 0;
		}
	}
	return -ENOENT;
}

static uint64_t sysfs_u64(dev_t rdev, const char *attr)
{
	char b[64];
	if (sysfs_queue(rdev, attr, b, sizeof(b)))
		return 0;
	return strtoull(b, NULL, 10);
}

static void bdev_name(dev_t rdev, char *out, size_t n)
{
	char path[64], link[256];
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(rdev),
		 minor(rdev));
	ssize_t r = readlink(path, link, sizeof(link) - 1);
	if (r <= 0) {
		snprintf(out, n, "%u:%u", major(rdev), minor(rdev));
		return;
	}
	link[r] = 0;
	const char *s = strrchr(link, '/');
	snprintf(out, n, "%.31s", s ? s + 1 : link);
}

/* The O_DIRECT unit of a regular file: statx's dio_offset_align where the
 * kernel reports it (6.1+); 0 there means the file takes no direct I/O. */
static int file_dio_align(int fd, uint32_t *align)
{
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		*align = sx.stx_dio_offset_align;
		return 0;
	}
#else
	(void)fd;
#endif
	*align = VD_SECTOR;
	return -EOPNOTSUPP;
}

/* A read that direct I/O must refuse with EINVAL (offset or length not a
 * multiple of the logical block size); buffered I/O would serve it. */
static int refuses(int fd, void *buf, size_t len, off_t off, char *what,
		   size_t n)
{
	errno = 0;
	ssize_t r = pread(fd, buf, len, off);
	if (r < 0 && errno == EINVAL)
		return 0;
	if (r < 0)
		snprintf(what, n, "failed with %s instead of EINVAL",
			 strerror(errno));
	else
		snprintf(what, n,
			 "returned %zd bytes instead of failing with "
			 "EINVAL",
			 r);
	return -1;
}

int vd_target_open(struct vd_target *t, const char *path, char *err, size_t n)
{
	struct stat st;
	memset(t, 0, sizeof(*t));
	t->path = path;
	t->fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (t->fd < 0) {
		int e = errno;
		snprintf(err, n, "open(%s, O_RDWR|O_DIRECT): %s%s", path,
			 strerror(e),
			 e == EINVAL ? " (the file system refuses direct I/O; "
				       "no fallback to buffered I/O)"
				     : "");
		return -e;
	}
	int fl = fcntl(t->fd, F_GETFL);
	if (fl < 0 || !(fl & O_DIRECT)) {
		snprintf(err, n,
			 "%s: opened with O_DIRECT but F_GETFL says 0x%x: the "
			 "flag was dropped",
			 path, fl);
		goto fail;
	}
	if (fstat(t->fd, &st)) {
		snprintf(err, n, "fstat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		int lbs = 0;
		unsigned pbs = 0;
		t->is_bdev = true;
		if (ioctl(t->fd, BLKGETSIZE64, &t->size) ||
		    ioctl(t->fd, BLKSSZGET, &lbs)) {
			snprintf(err, n, "%s: BLKGETSIZE64/BLKSSZGET: %s", path,
				 strerror(errno));
			goto fail;
		}
		if (ioctl(t->fd, BLKPBSZGET, &pbs))
			pbs = (unsigned)lbs;
		t->lbs = (uint32_t)lbs;
		t->pbs = pbs;
		t->discard_max = sysfs_u64(st.st_rdev, "discard_max_bytes");
		t->discard_gran = sysfs_u64(st.st_rdev, "discard_granularity");
		t->wzero_max = sysfs_u64(st.st_rdev, "write_zeroes_max_bytes");
		t->max_sectors_kb =
			(unsigned)sysfs_u64(st.st_rdev, "max_sectors_kb");
		if (sysfs_queue(st.st_rdev, "write_cache", t->cache,
				sizeof(t->cache)))
			snprintf(t->cache, sizeof(t->cache), "unknown");
		bdev_name(st.st_rdev, t->name, sizeof(t->name));
	} else if (S_ISREG(st.st_mode)) {
		t->size = (uint64_t)st.st_size;
		/* statx's 0 ("no direct I/O") is only a hint: the probe in
		 * vd_target_prove_direct decides (qemu-user reports 0). */
		if (file_dio_align(t->fd, &t->lbs) || t->lbs == 0)
			t->lbs = VD_SECTOR;
		t->pbs = t->lbs;
		t->discard_max = ~0ull; /* punching a hole */
		t->discard_gran = t->lbs;
		t->wzero_max = ~0ull;
		snprintf(t->cache, sizeof(t->cache), "file");
		snprintf(t->name, sizeof(t->name), "file");
	} else {
		snprintf(err, n, "%s: neither a block device nor a file", path);
		goto fail;
	}
	if (t->lbs < VD_SECTOR || t->lbs > VD_PAGE || (t->lbs & (t->lbs - 1))) {
		snprintf(err, n, "%s: logical block size %u not supported",
			 path, t->lbs);
		goto fail;
	}
	if (t->size < 4ull << 20) {
		snprintf(err, n, "%s: %llu bytes; at least 4 MiB needed", path,
			 (unsigned long long)t->size);
		goto fail;
	}

	return 0;
fail:
	close(t->fd);
	t->fd = -1;
	return -EINVAL;
}

/* Prove direct I/O in the 8 KiB at off (which this program owns): an
 * aligned write and read of zeroes work, and reads whose offset or length
 * is not a multiple of the logical block size are refused with EINVAL,
 * which the page cache would serve. Both probes lie inside those 8 KiB:
 * file systems check alignment only where data is mapped (a read of a hole
 * is zero-filled, misaligned or not), and a block device first cuts a read
 * at its end (a misaligned read of the last block becomes aligned). */
int vd_target_prove_direct(struct vd_target *t, uint64_t off, char *err,
			   size_t n)
{
	char what[96];
	unsigned char *buf = vd_alloc_aligned(2 * VD_PAGE);
	int ret = -EINVAL;
	if (!buf) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	memset(buf, 0, 2 * VD_PAGE);
	ssize_t r = pwrite(t->fd, buf, VD_PROBE_LEN, (off_t)off);
	if (r == VD_PROBE_LEN && fdatasync(t->fd) == 0)
		r = pread(t->fd, buf, VD_PROBE_LEN, (off_t)off);
	if (r != VD_PROBE_LEN) {
		snprintf(err, n,
			 "%s: aligned O_DIRECT write+read of %u bytes at %llu: "
			 "%s",
			 t->path, VD_PROBE_LEN, (unsigned long long)off,
			 r < 0 ? strerror(errno) : "short transfer");
		goto out;
	}
	if (refuses(t->fd, buf, t->lbs, (off_t)off + 1, what, sizeof(what))) {
		snprintf(
			err, n,
			"%s: O_DIRECT is not in effect: a read at misaligned "
			"offset %llu (%u bytes) %s (page-cache I/O; tmpfs, for "
			"one, accepts O_DIRECT and ignores it)",
			t->path, (unsigned long long)off + 1, t->lbs, what);
		goto out;
	}
	if (refuses(t->fd, buf, t->lbs + 1, (off_t)off, what, sizeof(what))) {
		snprintf(err, n,
			 "%s: O_DIRECT is not in effect: a read of misaligned "
			 "length %u at offset %llu %s",
			 t->path, t->lbs + 1, (unsigned long long)off, what);
		goto out;
	}
	snprintf(t->direct_proof, sizeof(t->direct_proof),
		 "F_GETFL has O_DIRECT; reads at offset +1 and of length %u "
		 "refused (EINVAL)",
		 t->lbs + 1);
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Block devices: BLKDISCARD (content afterwards undefined unless the
 * device says otherwise). Files: a punched hole, which reads as zeroes. */
int vd_target_discard(struct vd_target *t, uint64_t off, uint64_t len)
{
	if (t->is_bdev) {
		uint64_t range[2] = {off, len};
		return ioctl(t->fd, BLKDISCARD, range) ? -errno : 0;
	}
	return fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)off, (off_t)len)
		       ? -errno
		       : 0;
}

/* Block devices: BLKZEROOUT (VIRTIO_BLK_T_WRITE_ZEROES where the device
 * has it, else the kernel writes zeroes). Files: FALLOC_FL_ZERO_RANGE. */
int vd_target_zero(struct vd_target *t, uint64_t off, uint64_t len)
{
	if (t->is_bdev) {
		uint64_t range[2] = {off, len};
		return ioctl(t->fd, BLKZEROOUT, range) ? -errno : 0;
	}
	return fallocate(t->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			 (off_t)off, (off_t)len)
		       ? -errno
		       : 0;
}

bool vd_target_discard_zeroes(const struct vd_target *t)
{
	return !t->is_bdev;
}

void vd_target_close(struct vd_target *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
