/* iovec arrays as device models see them: a popped chain's buffers, split
 * wherever guest memory splits them. Copies, slices, advancing and
 * truncating are bounded by the arrays and the lengths given; nothing
 * outside the iovecs is ever touched. */
#ifndef VIRTIOD_IOV_H
#define VIRTIOD_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Total bytes of n iovecs. */
size_t vd_iov_length(const struct iovec *iov, unsigned n);

/* Copy bytes [skip, skip + len) of the iovecs into buf. Returns the bytes
 * copied: less than len only if the iovecs end first. */
size_t vd_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip,
		     void *buf, size_t len);
/* Copy buf into the iovecs from byte `skip` on. Returns the bytes copied:
 * less than len only if the iovecs end first. */
size_t vd_iov_from_buf(const struct iovec *iov, unsigned n, size_t skip,
		       const void *buf, size_t len);

/* dst = the iovecs covering bytes [skip, skip + len) of src (pointers into
 * the same buffers, nothing copied). Returns how many, or -ENOBUFS if that
 * takes more than max. Fewer bytes if src ends first. */
int vd_iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
		 struct iovec *dst, unsigned max);

/* Drop `bytes` from the front: *iov and *n move past the iovecs consumed
 * whole, and the first one left is shortened in place (a short transfer
 * that goes on, a header taken off). Returns the bytes dropped, less than
 * asked only if the iovecs end first. */
size_t vd_iov_advance(struct iovec **iov, unsigned *n, size_t bytes);

/* Keep the first `len` bytes: *n shrinks and the last iovec kept is
 * shortened in place (a trailer left out). Returns the bytes kept. */
size_t vd_iov_truncate(struct iovec *iov, unsigned *n, size_t len);

#endif
