/* What each thread role may call: one table, rows added by profile (the
 * shim, the device type, a store that asked with vd_sandbox_need). A call
 * not listed for a role kills the process (SCMP_ACT_KILL_PROCESS): a
 * violation is loud, never an EPERM a library might retry around.
 * docs/security.md summarises it; keep the two in step. */
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <stddef.h>

#include "sandbox.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Every thread: its loop, memory, locks, clocks, logging, ending. */
static const char *const base_calls[] = {
	"read", "write", "readv", "writev", "close", "futex", "poll", "ppoll",
	"epoll_wait", "epoll_pwait", "epoll_ctl", "clock_gettime",
	"clock_nanosleep", "nanosleep", "gettimeofday", "getpid", "gettid",
	"rt_sigprocmask", "rt_sigreturn", "restart_syscall", "mmap", "munmap",
	"mprotect", "madvise", "brk", "mremap", "exit", "exit_group",
	"sched_yield", "getrandom", "fstat", "newfstatat", "statx", "lseek",
	"fcntl",
	/* syslog(3) on the socket openlog(LOG_NDELAY) opened */
	"sendto",
	/* glibc's abort() and raise() */
	"rt_sigaction", "tgkill",
	/* each thread adds its role's filter (only ever narrower) and a
	 * thread older than the seal drops its capabilities */
	"seccomp", "capget", "capset", NULL};

/* Starting threads (pthread_create) and the loops they get. */
static const char *const spawn_calls[] = {"clone",
					  "clone3",
					  "set_robust_list",
					  "rseq",
					  "sched_getaffinity",
					  "prlimit64",
					  "getrlimit",
					  "prctl",
					  "eventfd2",
					  "epoll_create1",
					  "pipe2",
					  NULL};

/* The I/O of a block request: the sync engine, the uring engine (its ring
 * set up when the queue starts), flushes, discards and zeroes. */
static const char *const block_io_calls[] = {
	"pread64",   "pwrite64",       "preadv",	 "pwritev",
	"preadv2",   "pwritev2",       "fsync",		 "fdatasync",
	"fallocate", "io_uring_setup", "io_uring_enter", "io_uring_register",
	NULL};

/* Block-device ioctls (linux/fs.h, type 0x12): BLKDISCARD, BLKZEROOUT,
 * BLKGETSIZE64 for a resize. */
static const unsigned char block_ioctl_types[] = {0x12, 0};

/* A queue thread checks the kind of a new kick fd by its /proc link. */
static const char *const queue_calls[] = {"readlink", "readlinkat", NULL};

/* `virtiod resize` of an image file: the control thread grows or shrinks
 * it and syncs it. */
static const char *const resize_calls[] = {"ftruncate", "fallocate", "fsync",
					   "fdatasync", NULL};

/* A control client: accept, read a request, answer. */
static const char *const control_calls[] = {"accept4", "recvfrom", "recvmsg",
					    "sendmsg", "shutdown", "setsockopt",
					    NULL};

/* vhost-user: messages with fds (SCM_RIGHTS), memory tables mapped,
 * fds checked by kind (fstat, /proc link, seals), the inflight area
 * (memfd), the next frontend accepted, the socket removed at the end. */
static const char *const vu_calls[] = {
	"accept4",     "recvmsg",     "sendmsg",
	"recvfrom",    "setsockopt",  "getsockopt",
	"getsockname", "getpeername", "shutdown",
	"readlink",    "readlinkat",  "access",
	"faccessat",   "faccessat2",  "memfd_create",
	"ftruncate",   "dup",	      "dup3",
	"unlink",      "unlinkat",    "fstatfs",
	"msync",       NULL};

/* Xen's libraries on their open fds (tools/libs/NAME/linux.c): foreignmemory
 * and devicemodel ioctl /dev/xen/privcmd ('P': MMAPBATCH_V2, DM_OP,
 * HYPERCALL, MMAP_RESOURCE) and mmap it; call mmaps /dev/xen/hypercall for
 * its buffers; gnttab ioctls /dev/xen/gntdev ('G': MAP/UNMAP_GRANT_REF,
 * SET_UNMAP_NOTIFY) and mmaps it; evtchn reads and writes its fd
 * (pending, unmask) and ioctls it ('E': BIND/UNBIND, NOTIFY); xenstore
 * reads and writes /dev/xen/xenbus or its socket. The restart state file
 * is written and, when the device ends, removed. */
static const char *const xen_calls[] = {
	"pread64", "pwrite64", "ftruncate", "fsync",   "fdatasync", "msync",
	"unlink",  "unlinkat", "recvmsg",   "sendmsg", "recvfrom",  NULL};
static const unsigned char xen_ioctl_types[] = {'P', 'G', 'E', 0};

/* virtio-net: offloads and queue pairs the guest sets at run time (tap);
 * link changes read from the netlink socket opened at start-up. */
static const char *const net_calls[] = {"recvfrom", "recvmsg", NULL};
static const unsigned long net_ioctls[] = {TUNSETOFFLOAD, TUNSETVNETHDRSZ,
					   TUNSETVNETLE,  TUNSETQUEUE,
					   TUNGETIFF,	  0};

/* virtio-rng with --rate: the queue's token-bucket timer, made when the
 * queue starts (after the seal) and armed while requests wait. */
static const char *const rng_calls[] = {"timerfd_create", "timerfd_settime",
					"timerfd_gettime", NULL};

/* libnbd and librbd run their own threads, started when the store opens
 * (so before the filter) and, for librbd, also later; they reconnect, read
 * their configuration and log as they please. Their profile is loose and
 * applies to every role of the process: a documented trade (docs/
 * security.md); the daemon's own threads still lose exec, ptrace and the
 * rest of what is not listed. */
static const char *const netstore_calls[] = {
	"socket", "connect", "sendmsg", "recvmsg", "recvfrom", "sendmmsg",
	"recvmmsg", "setsockopt", "getsockopt", "getsockname", "getpeername",
	"shutdown", "openat", "open", "getdents64", "uname", "getcwd",
	"sysinfo", "timerfd_create", "timerfd_settime", "timerfd_gettime",
	"getuid", "geteuid", "getgid", "getegid", "sched_setaffinity",
	"membarrier", "mlock", "munlock", "io_setup", "io_submit",
	"io_getevents", "io_destroy", "readlink", "readlinkat", "access",
	"faccessat", "faccessat2", "unlink", "unlinkat", "rename", "renameat",
	"renameat2", "mkdir", "mkdirat", "ftruncate", "fsync", "fdatasync",
	"dup", "dup3", "sigaltstack", "rt_sigtimedwait", "setitimer",
	"getrusage", "times", "sched_getparam", "sched_getscheduler",
	"sched_setscheduler", "pselect6", "select", "wait4", "kill",
	/* Ceph's messenger also listens (a client can be called back) */
	"accept", "accept4", "bind", "listen", "socketpair", "statfs",
	"fstatfs", "fadvise64", "getpriority", "setpriority", "ioprio_get",
	"ioprio_set", NULL};

#define ROW(role_, prof, calls_)                                               \
	{                                                                      \
		.role = (role_), .profile = (prof), .calls = (calls_)          \
	}

const struct sandbox_row sandbox_table[] = {
	ROW(VD_SANDBOX_CONTROL, NULL, base_calls),
	ROW(VD_SANDBOX_QUEUE, NULL, base_calls),
	ROW(VD_SANDBOX_ENGINE, NULL, base_calls),
	ROW(VD_SANDBOX_VU_LOOP, NULL, base_calls),
	ROW(VD_SANDBOX_XEN_LOOP, NULL, base_calls),
	ROW(VD_SANDBOX_QUEUE, NULL, spawn_calls),
	ROW(VD_SANDBOX_VU_LOOP, NULL, spawn_calls),
	ROW(VD_SANDBOX_XEN_LOOP, NULL, spawn_calls),
	ROW(VD_SANDBOX_QUEUE, NULL, queue_calls),
	ROW(VD_SANDBOX_CONTROL, NULL, control_calls),
	/* blk: requests on queue threads and engine workers; the control
	 * thread reads a grown block device's size and resizes an image file.
	 */
	{.role = VD_SANDBOX_QUEUE,
	 .profile = "blk",
	 .calls = block_io_calls,
	 .ioctl_types = block_ioctl_types},
	{.role = VD_SANDBOX_ENGINE,
	 .profile = "blk",
	 .calls = block_io_calls,
	 .ioctl_types = block_ioctl_types},
	{.role = VD_SANDBOX_CONTROL,
	 .profile = "blk",
	 .calls = resize_calls,
	 .ioctl_types = block_ioctl_types},
	ROW(VD_SANDBOX_QUEUE, "rng", rng_calls),
	{.role = VD_SANDBOX_QUEUE,
	 .profile = "net",
	 .calls = net_calls,
	 .ioctls = net_ioctls},
	{.role = VD_SANDBOX_VU_LOOP,
	 .profile = "net",
	 .calls = net_calls,
	 .ioctls = net_ioctls},
	{.role = VD_SANDBOX_XEN_LOOP,
	 .profile = "net",
	 .calls = net_calls,
	 .ioctls = net_ioctls},
	ROW(VD_SANDBOX_VU_LOOP, "vhost-user", vu_calls),
	{.role = VD_SANDBOX_XEN_LOOP,
	 .profile = "xen",
	 .calls = xen_calls,
	 .ioctl_types = xen_ioctl_types},
	/* A Xen queue thread maps guest memory (foreign pages or grants:
	 * ioctl and mmap) and raises the guest's interrupt (DM_OP or an
	 * event-channel notify) itself. */
	{.role = VD_SANDBOX_QUEUE,
	 .profile = "xen",
	 .ioctl_types = xen_ioctl_types},
#define NETSTORE(role_, prof)                                                  \
	{                                                                      \
		.role = (role_), .profile = (prof), .calls = netstore_calls,   \
		.ioctl_types = block_ioctl_types, .loose = true                \
	}
	NETSTORE(VD_SANDBOX_CONTROL, "nbd"),
	NETSTORE(VD_SANDBOX_QUEUE, "nbd"),
	NETSTORE(VD_SANDBOX_ENGINE, "nbd"),
	NETSTORE(VD_SANDBOX_VU_LOOP, "nbd"),
	NETSTORE(VD_SANDBOX_XEN_LOOP, "nbd"),
	NETSTORE(VD_SANDBOX_CONTROL, "rbd"),
	NETSTORE(VD_SANDBOX_QUEUE, "rbd"),
	NETSTORE(VD_SANDBOX_ENGINE, "rbd"),
	NETSTORE(VD_SANDBOX_VU_LOOP, "rbd"),
	NETSTORE(VD_SANDBOX_XEN_LOOP, "rbd"),
};
const unsigned sandbox_table_len = N(sandbox_table);

const unsigned sandbox_spawns[VD_SANDBOX_ROLES] = {
	[VD_SANDBOX_QUEUE] = 1u << VD_SANDBOX_ENGINE,
	[VD_SANDBOX_VU_LOOP] = 1u << VD_SANDBOX_QUEUE,
	[VD_SANDBOX_XEN_LOOP] = 1u << VD_SANDBOX_QUEUE,
};

const char *const sandbox_role_name[VD_SANDBOX_ROLES] = {
	[VD_SANDBOX_CONTROL] = "control",
	[VD_SANDBOX_QUEUE] = "queue",
	[VD_SANDBOX_ENGINE] = "engine",
	[VD_SANDBOX_VU_LOOP] = "vhost-user loop",
	[VD_SANDBOX_XEN_LOOP] = "xen loop",
};
