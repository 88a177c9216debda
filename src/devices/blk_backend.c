/* virtio-blk backing store: opens a file or block device, learns its size,
 * topology and O_DIRECT alignment, and runs single operations on it. It
 * never touches bytes outside [0, size) on behalf of a request. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blk.h"
#include "image_lock.h"

static bool is_pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

/* /sys/dev/block/M:m/queue/<name> as a number; 0 if unreadable. */
static uint64_t sysfs_queue_u64(dev_t rdev, const char *name)
{
	char path[96];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s",
		 major(rdev), minor(rdev), name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static int bdev_probe(struct blk_backend *be, const struct stat *st,
		      const char *disk, unsigned *host_lbs, char *err,
		      size_t errlen)
{
	uint64_t size = 0;
	int lbs = 0, ro = 0;
	unsigned int pbs = 0, iomin = 0, ioopt = 0;
	int aoff = 0;

	if (ioctl(be->fd, BLKGETSIZE64, &size) < 0 ||
	    ioctl(be->fd, BLKSSZGET, &lbs) < 0) {
		snprintf(err, errlen, "--disk %s: cannot read the size: %s",
			 disk, strerror(errno));
		return -errno;
	}
	if (!be->readonly && ioctl(be->fd, BLKROGET, &ro) == 0 && ro) {
		snprintf(err, errlen,
			 "--disk %s: the block device is read-only; add "
			 "--readonly",
			 disk);
		return -EROFS;
	}
	if (ioctl(be->fd, BLKPBSZGET, &pbs) < 0)
		pbs = 0;
	if (ioctl(be->fd, BLKIOMIN, &iomin) < 0)
		iomin = 0;
	if (ioctl(be->fd, BLKIOOPT, &ioopt) < 0)
		ioopt = 0;
	if (ioctl(be->fd, BLKALIGNOFF, &aoff) < 0 || aoff < 0)
		aoff = 0;
	be->size = size;
	*host_lbs = lbs > 0 ? (unsigned)lbs : BLK_SECTOR_SIZE;
	be->phys = pbs;
	be->min_io = iomin;
	be->opt_io = ioopt;
	be->align_off = (unsigned)aoff;
	be->can_discard = sysfs_queue_u64(st->st_rdev, "discard_max_bytes") > 0;
	if (be->direct) {
		/* Block layer rule: buffer address aligned to the DMA
		 * alignment, each segment a multiple of the block size. */
		uint64_t dma = sysfs_queue_u64(st->st_rdev, "dma_alignment");
		be->dio_mem_align = dma ? (unsigned)dma + 1 : *host_lbs;
		be->dio_len_align = *host_lbs;
	}
	return 0;
}

static void file_probe(struct blk_backend *be, const struct stat *st,
		       unsigned *host_lbs)
{
	struct statx stx;

	be->size = (uint64_t)st->st_size;
	be->phys = st->st_blksize > 0 ? (unsigned)st->st_blksize : 0;
	be->min_io = be->phys;
	be->can_discard = true; /* punch hole; learned at run time if not */
	*host_lbs = BLK_SECTOR_SIZE;
	if (!be->direct)
		return;
	/* Linux 6.1+ reports O_DIRECT alignment; else assume the page. */
	be->dio_mem_align = 4096;
	be->dio_len_align = 4096;
	if (statx(be->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		be->dio_mem_align = stx.stx_dio_mem_align;
		be->dio_len_align = stx.stx_dio_offset_align;
	}
	*host_lbs = be->dio_len_align;
}

/* How io_uring will treat the file: it issues a request inline only if the
 * file takes RWF_NOWAIT for it, and hands it to an io-wq worker thread
 * otherwise (tmpfs: every read and write; ext4: buffered writes). The
 * read probe reads the first block. The write probe writes from an
 * unmapped address: a file that takes NOWAIT fails it with EFAULT (or
 * EAGAIN/EINVAL) before a byte is written; one that does not refuses it
 * with EOPNOTSUPP first. Nothing in the image changes either way. */
static void probe_nowait(struct blk_backend *be)
{
	static uint8_t buf[4096] __attribute__((aligned(4096)));
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct statfs sfs;
	ssize_t r;

	be->mem_only =
		!be->is_bdev && fstatfs(be->fd, &sfs) == 0 &&
		(sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC ||
		 sfs.f_type == HUGETLBFS_MAGIC);
	r = preadv2(be->fd, &iov, 1, 0, RWF_NOWAIT);
	be->nowait_read = r >= 0 || errno != EOPNOTSUPP;
	if (be->readonly)
		return;
	iov.iov_base = NULL;
	iov.iov_len = be->dio_len_align > 1 ? be->dio_len_align : 1;
	r = pwritev2(be->fd, &iov, 1, 0, RWF_NOWAIT);
	be->nowait_write = r >= 0 || errno != EOPNOTSUPP;
}

bool blk_nbd_is_uri(const char *disk)
{
	static const char *const schemes[] = {
		"nbd://",	"nbds://",	"nbd+unix://",
		"nbds+unix://", "nbd+vsock://", "nbds+vsock://",
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(disk, schemes[i], strlen(schemes[i])) == 0)
			return true;
	return false;
}

bool blk_rbd_is_spec(const char *disk)
{
	return strncmp(disk, "rbd:", 4) == 0;
}

static int remote_open(struct blk_backend *be, const struct blk_opts *o,
		       char *err, size_t errlen)
{
	if (o->direct) {
		snprintf(err, errlen,
			 "--disk %s: --direct is for local files and block "
			 "devices; drop it",
			 o->disk);
		return -EINVAL;
	}
#ifdef VIRTIOD_NO_NETSTORE
	(void)be;
	snprintf(err, errlen,
		 "--disk %s: this virtiod was built without NBD and RBD "
		 "support (make NETSTORE=0)",
		 o->disk);
	return -ENOTSUP;
#else
	return blk_nbd_is_uri(o->disk) ? blk_nbd_open(be, o, err, errlen)
				       : blk_rbd_open(be, o, err, errlen);
#endif
}

int blk_backend_open(struct blk_backend *be, const struct blk_opts *o,
		     char *err, size_t errlen)
{
	struct stat st;
	unsigned host_lbs = BLK_SECTOR_SIZE;
	int flags, ret;

	memset(be, 0, sizeof(*be));
	be->fd = -1;
	be->lock_fd = -1;
	be->readonly = o->readonly;
	be->direct = o->direct;
	be->dio_mem_align = 1;
	be->dio_len_align = 1;
	if (blk_nbd_is_uri(o->disk) || blk_rbd_is_spec(o->disk))
		return remote_open(be, o, err, errlen);
	if (o->io_timeout_set) {
		snprintf(err, errlen,
			 "--io-timeout is for nbd:// and rbd: disks; %s is a "
			 "local file: drop it",
			 o->disk);
		return -EINVAL;
	}
	be->has_fua = true; /* RWF_DSYNC */

	flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	if (o->direct)
		flags |= O_DIRECT;
	be->fd = open(o->disk, flags);
	if (be->fd < 0) {
		ret = -errno;
		if (ret == -EINVAL && o->direct)
			snprintf(err, errlen,
				 "--disk %s: the file system does not support "
				 "O_DIRECT; drop --direct",
				 o->disk);
		else if ((ret == -EACCES || ret == -EROFS) && !o->readonly)
			snprintf(err, errlen, "--disk %s: %s; add --readonly",
				 o->disk, strerror(-ret));
		else
			snprintf(err, errlen, "--disk %s: %s", o->disk,
				 strerror(-ret));
		return ret;
	}
	if (fstat(be->fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "--disk %s: %s", o->disk, strerror(-ret));
		goto fail;
	}
	/* Before anything reads the image: it may be someone else's. */
	ret = image_lock(be->fd, o->disk, !o->readonly, o->share_rw, "blk",
			 &be->lock_fd, err, errlen);
	if (ret < 0)
		goto fail;
	if (S_ISBLK(st.st_mode)) {
		be->is_bdev = true;
		ret = bdev_probe(be, &st, o->disk, &host_lbs, err, errlen);
		if (ret < 0)
			goto fail;
	} else if (S_ISREG(st.st_mode)) {
		file_probe(be, &st, &host_lbs);
	} else {
		snprintf(err, errlen,
			 "--disk %s: not a regular file or block device",
			 o->disk);
		ret = -EINVAL;
		goto fail;
	}

	if (o->lbs) {
		/* A guest block smaller than the host's O_DIRECT unit would
		 * make every small request fail with EINVAL. */
		if (o->direct && o->lbs < host_lbs) {
			snprintf(err, errlen,
				 "--logical-block-size %u: --direct on %s "
				 "needs %u-byte blocks",
				 o->lbs, o->disk, host_lbs);
			ret = -EINVAL;
			goto fail;
		}
		be->lbs = o->lbs;
	} else {
		be->lbs = host_lbs >= 4096 ? 4096 : BLK_SECTOR_SIZE;
		if (o->direct && be->lbs < host_lbs) {
			snprintf(err, errlen,
				 "--disk %s: --direct needs %u-byte blocks, "
				 "more than virtio-blk's 4096",
				 o->disk, host_lbs);
			ret = -EINVAL;
			goto fail;
		}
	}
	be->size -= be->size % be->lbs;
	if (be->size == 0) {
		snprintf(err, errlen,
			 "--disk %s: smaller than one %u-byte block", o->disk,
			 be->lbs);
		ret = -EINVAL;
		goto fail;
	}
	if (!is_pow2(be->phys) || be->phys < be->lbs || be->phys > (1u << 20))
		be->phys = be->lbs;
	if (be->min_io % be->lbs)
		be->min_io = 0;
	if (be->opt_io % be->lbs)
		be->opt_io = 0;
	if (be->align_off % be->lbs)
		be->align_off = 0;
	probe_nowait(be);
	return 0;
fail:
	blk_backend_close(be);
	return ret;
}

void blk_backend_close(struct blk_backend *be)
{
#ifndef VIRTIOD_NO_NETSTORE
	if (be->store == BLK_STORE_NBD)
		blk_nbd_close(be->remote);
	else if (be->store == BLK_STORE_RBD)
		blk_rbd_close(be->remote);
#endif
	be->remote = NULL;
	if (be->fd >= 0)
		close(be->fd);
	be->fd = -1;
	if (be->lock_fd >= 0)
		close(be->lock_fd); /* releases the image (image_lock.h) */
	be->lock_fd = -1;
}

void blk_backend_default_serial(const char *path,
				char serial[VIRTIO_BLK_ID_BYTES + 1])
{
	/* FNV-1a over the canonical path: stable across restarts, distinct
	 * for two images with the same file name. */
	char *real = realpath(path, NULL);
	const char *p = real ? real : path;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ULL;
	}
	free(real);
	snprintf(serial, VIRTIO_BLK_ID_BYTES + 1, "vd-%016llx",
		 (unsigned long long)h);
}

static int ret_errno(ssize_t r)
{
	if (r < 0)
		return -errno;
	return r > INT_MAX ? INT_MAX : (int)r;
}

int blk_io_exec(int fd, const struct blk_io *io)
{
	uint64_t range[2];
	ssize_t r;

	do {
		switch (io->op) {
		case BLK_OP_READ:
			r = preadv(fd, io->iov, (int)io->n_iov, (off_t)io->off);
			break;
		case BLK_OP_WRITE:
			r = pwritev2(fd, io->iov, (int)io->n_iov,
				     (off_t)io->off, io->rw_flags);
			break;
		case BLK_OP_FSYNC:
			r = fdatasync(fd);
			break;
		case BLK_OP_FALLOCATE:
			r = fallocate(fd, io->mode, (off_t)io->off,
				      (off_t)io->len);
			break;
		case BLK_OP_DISCARD:
			range[0] = io->off;
			range[1] = io->len;
			r = ioctl(fd, BLKDISCARD, range);
			break;
		case BLK_OP_TRIM:
		case BLK_OP_ZERO:
		default:
			return -EINVAL;
		}
	} while (r < 0 && errno == EINTR);
	return ret_errno(r);
}
