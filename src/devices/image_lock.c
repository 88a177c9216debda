/* Image ownership as QEMU does it (block/file-posix.c, raw_apply_lock_bytes
 * and raw_check_lock_bytes): a shared OFD lock on byte 100+n for each
 * permission n held, and on byte 200+n for each permission not shared; a
 * user may go on only if no one else denies what it holds, and no one else
 * holds what it denies. Never takes an exclusive lock, so readers that
 * share everything (qemu-img -U) are not disturbed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtiod/log.h"

#include "image_lock.h"

#define LOCK_PERM_BASE	 100
#define LOCK_SHARED_BASE 200

/* QEMU's BLK_PERM_* bits, in their order (the lock byte offsets). */
enum {
	PERM_CONSISTENT_READ = 1u << 0,
	PERM_WRITE = 1u << 1,
	PERM_WRITE_UNCHANGED = 1u << 2,
	PERM_RESIZE = 1u << 3,
	PERM_COUNT = 4,
};

static const char *const perm_name[PERM_COUNT] = {
	"consistent read",
	"write",
	"write unchanged",
	"resize",
};

static int set_shared(int fd, off_t off)
{
	struct flock fl = {
		.l_type = F_RDLCK,
		.l_whence = SEEK_SET,
		.l_start = off,
		.l_len = 1,
	};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* 1 if another open file holds a lock on byte off, 0 if not. */
static int held_by_other(int fd, off_t off)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = off,
		.l_len = 1,
	};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

/* 0, -EBUSY with *conflict set (an index; *denied: someone denies it,
 * else someone holds it), or another -errno. */
static int try_lock(int fd, unsigned perm, unsigned shared, unsigned *conflict,
		    bool *denied)
{
	int r;

	for (unsigned i = 0; i < PERM_COUNT; i++) {
		if ((perm & (1u << i)) &&
		    (r = set_shared(fd, LOCK_PERM_BASE + i)) < 0)
			return r == -EAGAIN ? -EBUSY : r;
		if (!(shared & (1u << i)) &&
		    (r = set_shared(fd, LOCK_SHARED_BASE + i)) < 0)
			return r == -EAGAIN ? -EBUSY : r;
	}
	for (unsigned i = 0; i < PERM_COUNT; i++) {
		if (perm & (1u << i)) {
			r = held_by_other(fd, LOCK_SHARED_BASE + i);
			if (r) {
				*conflict = i;
				*denied = true;
				return r < 0 ? r : -EBUSY;
			}
		}
		if (!(shared & (1u << i))) {
			r = held_by_other(fd, LOCK_PERM_BASE + i);
			if (r) {
				*conflict = i;
				*denied = false;
				return r < 0 ? r : -EBUSY;
			}
		}
	}
	return 0;
}

int image_lock(int fd, const char *path, bool write, bool share_rw,
	       const char *who, int *lock_fd, char *err, size_t errlen)
{
	/* What QEMU's virtio-blk asks for (blkconf_apply_backend_options). */
	unsigned perm = PERM_CONSISTENT_READ | (write ? PERM_WRITE : 0);
	unsigned shared = PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED |
			  PERM_RESIZE | (share_rw ? PERM_WRITE : 0);
	struct stat a, b;
	unsigned conflict = 0;
	bool denied = false;
	int lfd, r;

	*lock_fd = -1;
	lfd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (lfd < 0) {
		r = -errno;
		snprintf(err, errlen,
			 "--disk %s: cannot open it to lock it: %s", path,
			 strerror(-r));
		return r;
	}
	/* The very file the data fd has, not one renamed into its place. */
	if (fstat(fd, &a) < 0 || fstat(lfd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		snprintf(err, errlen,
			 "--disk %s: the file changed while it was opened; "
			 "try again",
			 path);
		close(lfd);
		return -ESTALE;
	}
	r = try_lock(lfd, perm, shared, &conflict, &denied);
	if (r == 0) {
		*lock_fd = lfd;
		return 0;
	}
	close(lfd); /* drops whatever was taken */
	if (r == -ENOLCK || r == -EOPNOTSUPP || r == -EINVAL) {
		vd_warn(who,
			"--disk %s: the file system does not lock files (%s): "
			"nothing stops a second writer",
			path, strerror(-r));
		return 0;
	}
	if (r != -EBUSY) {
		snprintf(err, errlen, "--disk %s: cannot lock: %s", path,
			 strerror(-r));
		return r;
	}
	if (denied)
		snprintf(err, errlen,
			 "--disk %s: in use: another process (virtiod, QEMU) "
			 "has it open and does not share \"%s\" access; stop "
			 "it, or let every user share writing (--share-rw, "
			 "QEMU's share-rw=on) if that is intended",
			 path, perm_name[conflict]);
	else
		snprintf(err, errlen,
			 "--disk %s: in use: another process (virtiod, QEMU) "
			 "has \"%s\" access to it%s; stop it%s",
			 path, perm_name[conflict],
			 write ? ""
			       : " and this read-only user does not share it",
			 share_rw ? ""
				  : ", or give --share-rw if sharing is "
				    "intended");
	return -EBUSY;
}
