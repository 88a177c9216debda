/* Linux native AIO through the raw system calls (io_setup, io_submit,
 * io_getevents): no libaio in the guest. Chosen over io_uring because it is
 * three calls with no shared rings to order, and because it exists on every
 * guest kernel while io_uring may be disabled (kernel.io_uring_disabled,
 * seccomp profiles, some distribution kernels). With O_DIRECT on a block
 * device, submission is truly asynchronous. */
#include <errno.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vd_verify.h"

int vd_aio_setup(unsigned nr, unsigned long *ctx)
{
	aio_context_t c = 0;
	if (syscall(SYS_io_setup, nr, &c))
		return -errno;
	*ctx = (unsigned long)c;
	return 0;
}

int vd_aio_destroy(unsigned long ctx)
{
	return syscall(SYS_io_destroy, (aio_context_t)ctx) ? -errno : 0;
}

/* Returns how many were accepted (the kernel may take fewer than n), or
 * -errno when not even the first was. */
int vd_aio_submit(unsigned long ctx, long n, struct iocb **cbs)
{
	long r = syscall(SYS_io_submit, (aio_context_t)ctx, n, cbs);
	return r < 0 ? -errno : (int)r;
}

/* Waits up to timeout_s for at least min completions. Returns how many
 * were reaped (0 on timeout) or -errno. EINTR is retried. */
int vd_aio_getevents(unsigned long ctx, long min, long max, struct io_event *ev,
		     double timeout_s)
{
	struct timespec ts;
	ts.tv_sec = (time_t)timeout_s;
	ts.tv_nsec = (long)((timeout_s - (double)ts.tv_sec) * 1e9);
	for (;;) {
		long r = syscall(SYS_io_getevents, (aio_context_t)ctx, min, max,
				 ev, &ts);
		if (r >= 0)
			return (int)r;
		if (errno != EINTR)
			return -errno;
	}
}
