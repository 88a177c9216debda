/* virtio-blk online resize: the image grew or shrank under us, or the
 * operator asks for a new size (`virtiod resize`). The capacity requests
 * are checked against is one atomic, so a request is either inside the old
 * or the new size; a shrink publishes the smaller size before the file is
 * cut, a growth only after it has grown. Never runs on a queue thread. */
#include <errno.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"

/* The backing store's size now, rounded down to the block size. */
static int store_size(const struct blk_dev *d, uint64_t *out)
{
	struct stat st;
	uint64_t size = 0;

	if (d->be.is_bdev) {
		if (ioctl(d->be.fd, BLKGETSIZE64, &size) < 0)
			return -errno;
	} else {
		if (fstat(d->be.fd, &st) < 0)
			return -errno;
		size = (uint64_t)st.st_size;
	}
	*out = size - size % d->be.lbs;
	return 0;
}

/* `virtiod resize`: a file image is cut or extended to bytes. */
static int set_file_size(struct blk_dev *d, uint64_t bytes, char *err,
			 size_t errlen)
{
	uint64_t now = atomic_load(&d->size);

	if (bytes % d->be.lbs) {
		snprintf(err, errlen,
			 "size %" PRIu64 ": not a multiple of the device's "
			 "%u-byte blocks",
			 bytes, d->be.lbs);
		return -EINVAL;
	}
	if (d->be.readonly) {
		snprintf(err, errlen,
			 "%s is served read-only; resize the image itself, "
			 "virtiod follows within a second",
			 d->who);
		return -EROFS;
	}
	if (d->be.is_bdev) {
		snprintf(err, errlen,
			 "%s is a block device; resize the device (e.g. "
			 "lvextend), virtiod follows within a second",
			 d->who);
		return -ENOTSUP;
	}
	if (bytes > (uint64_t)INT64_MAX) {
		snprintf(err, errlen, "size %" PRIu64 ": too large", bytes);
		return -EFBIG;
	}
	/* Shrinking: no request may start past the new end once the file
	 * is cut (one already running there may still extend it: the guest
	 * was told the disk shrinks only after this returns). */
	if (bytes < now)
		atomic_store(&d->size, bytes);
	if (ftruncate(d->be.fd, (off_t)bytes) < 0) {
		int r = -errno;

		atomic_store(&d->size, now);
		snprintf(err, errlen, "%s: truncate to %" PRIu64 " bytes: %s",
			 d->who, bytes, strerror(-r));
		return r;
	}
	return 0;
}

int blk_resize(void *model, uint64_t bytes, char *err, size_t errlen)
{
	struct blk_dev *d = model;
	uint64_t old = atomic_load(&d->size), now = 0;
	int r;

	/* NBD and RBD report their own size changes (blk_nbd.c, blk_rbd.c). */
	if (d->be.store != BLK_STORE_FILE) {
		if (bytes)
			snprintf(err, errlen,
				 "%s is a network store; resize it there "
				 "(e.g. rbd resize), virtiod follows",
				 d->who);
		return -EOPNOTSUPP;
	}
	if (bytes) {
		r = set_file_size(d, bytes, err, errlen);
		if (r < 0)
			return r;
	}
	r = store_size(d, &now);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read its size: %s", d->who,
			 strerror(-r));
		return r;
	}
	if (now == old && !bytes)
		return 0;
	atomic_store(&d->size, now);
	if (now == old)
		return 0;
	vd_info(d->who, "capacity %" PRIu64 " -> %" PRIu64 " bytes", old, now);
	return 1;
}
