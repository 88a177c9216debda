/* Image ownership: OFD byte-range locks in QEMU's layout (block/file-posix.c),
 * so that two virtiods, or virtiod and QEMU, never write one image unawares.
 * Private to the device models. */
#ifndef VIRTIOD_DEVICES_IMAGE_LOCK_H
#define VIRTIOD_DEVICES_IMAGE_LOCK_H

#include <stdbool.h>
#include <stddef.h>

/* Takes the locks of a user that reads (and writes, if `write`) the image
 * open as fd, and shares writing with others only if `share_rw`. They are
 * held on a descriptor of their own, returned in *lock_fd (-1 when the file
 * system has no locks, which is logged and let through): the image's own fd
 * may stay busy in the kernel after the process dies (io_uring requests in
 * flight), but this one closes with the process, so a successor started
 * right after a crash is not refused. Returns 0, or -EBUSY with err naming
 * the image and what holds it. */
int image_lock(int fd, const char *path, bool write, bool share_rw,
	       const char *who, int *lock_fd, char *err, size_t errlen);

#endif
