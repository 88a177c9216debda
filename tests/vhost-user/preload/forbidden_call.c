/* Test-only LD_PRELOAD library (tests/vhost-user/test_sandbox.c): before
 * each fdatasync, which the daemon makes for a FLUSH on a queue thread or
 * an engine worker, it makes a call that the vhost-user loop may make
 * (memfd_create, for the inflight area) but those roles may not: so the
 * death proves the role's own filter, not only the process's. Under the
 * sandbox the daemon dies of SIGSYS; with --sandbox=none the flush goes
 * on. Never linked into the daemon. */
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

int fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	int s = memfd_create("forbidden", MFD_CLOEXEC);

	if (s >= 0)
		close(s);
	return real ? real(fd) : -1;
}
