/* iovec helpers for device models (include/virtiod/iov.h). Every loop is
 * bounded by the iovec count; nothing outside the iovecs is touched. */
#include <errno.h>
#include <string.h>

#include "virtiod/iov.h"

size_t vd_iov_length(const struct iovec *iov, unsigned n)
{
	size_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

size_t vd_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip,
		     void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((char *)buf + done, (const char *)iov[i].iov_base + skip,
		       l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t vd_iov_from_buf(const struct iovec *iov, unsigned n, size_t skip,
		       const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((char *)iov[i].iov_base + skip, (const char *)buf + done,
		       l);
		done += l;
		skip = 0;
	}
	return done;
}

int vd_iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
		 struct iovec *dst, unsigned max)
{
	unsigned out = 0;

	for (unsigned i = 0; i < n && len; i++) {
		size_t l = src[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		if (out == max)
			return -ENOBUFS;
		dst[out].iov_base = (char *)src[i].iov_base + skip;
		dst[out].iov_len = l;
		out++;
		len -= l;
		skip = 0;
	}
	return (int)out;
}

size_t vd_iov_advance(struct iovec **iov, unsigned *n, size_t bytes)
{
	struct iovec *v = *iov;
	unsigned left = *n;
	size_t done = 0;

	while (bytes && left) {
		if (bytes < v->iov_len) {
			v->iov_base = (char *)v->iov_base + bytes;
			v->iov_len -= bytes;
			done += bytes;
			break;
		}
		bytes -= v->iov_len;
		done += v->iov_len;
		v++;
		left--;
	}
	*iov = v;
	*n = left;
	return done;
}

size_t vd_iov_truncate(struct iovec *iov, unsigned *n, size_t len)
{
	size_t kept = 0;

	for (unsigned i = 0; i < *n; i++) {
		if (kept == len) {
			*n = i;
			return len;
		}
		if (iov[i].iov_len >= len - kept) {
			iov[i].iov_len = len - kept;
			*n = i + 1;
			return len;
		}
		kept += iov[i].iov_len;
	}
	return kept;
}
