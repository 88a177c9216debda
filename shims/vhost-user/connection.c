/* The socket: listening, one message with its SCM_RIGHTS fds, replies, and
 * checking and mapping the fds a frontend shares. Keeps no fd it did not hand
 * to a caller, never maps past the end of a file. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "virtiod/fd_kind.h"
#include "virtiod/unix_socket.h"

#include "connection.h"
#include "messages.h"

void vu_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void vu_close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		vu_close_fd(&fds[i]);
}

/* -------------------------------------------------------------- fd kinds */

bool vu_fd_is_kind(int fd, enum vu_fd_kind kind)
{
	struct stat st;

	switch (kind) {
	case VU_FD_EVENTFD:
		/* Without /proc (a sandbox may hide it) any anonymous inode
		 * passes: none of them blocks a non-blocking write. */
		if (access("/proc/self/fd", X_OK) != 0)
			return fstat(fd, &st) == 0 && !(st.st_mode & S_IFMT);
		return vd_fd_is_anon_inode(fd, "anon_inode:[eventfd]");
	case VU_FD_SOCKET:
		return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	case VU_FD_MAPPABLE:
		/* memfds, tmpfs and hugetlbfs files are regular files; a
		 * device (its mmap is the driver's to define), a socket or a
		 * pipe is never guest memory. */
		return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	case VU_FD_ANY:
		break;
	}
	return true;
}

const char *vu_fd_kind_name(enum vu_fd_kind kind)
{
	switch (kind) {
	case VU_FD_EVENTFD:
		return "an eventfd";
	case VU_FD_SOCKET:
		return "a socket";
	case VU_FD_MAPPABLE:
		return "a regular file (memfd, tmpfs or hugetlbfs)";
	case VU_FD_ANY:
		break;
	}
	return "any fd";
}

const char *vu_fd_describe(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return "not an open fd";
	if (vd_fd_is_anon_inode(fd, "anon_inode:[eventfd]"))
		return "an eventfd";
	if (S_ISFIFO(st.st_mode))
		return "a pipe";
	if (S_ISSOCK(st.st_mode))
		return "a socket";
	if (S_ISREG(st.st_mode))
		return "a regular file";
	if (S_ISCHR(st.st_mode))
		return "a character device";
	if (S_ISBLK(st.st_mode))
		return "a block device";
	if (S_ISDIR(st.st_mode))
		return "a directory";
	return "another kind of fd";
}

/* ------------------------------------------------------------- listening */

/* Two daemons started on one path at once must not both find it stale and
 * remove each other's socket: the check and the bind run under an flock of
 * the directory (advisory, held for a few system calls). */
static int lock_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	int fd;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd; /* -1: not lockable (no read access): go on without */
}

static int bind_listen(const char *path, const struct sockaddr_un *sa,
		       const char *who, int *out_fd)
{
	struct stat st;
	mode_t old_mask;
	int fd, r, live;

	/* A stale socket from an earlier run is replaced; a live one, or
	 * anything else at that path, is someone's and stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			vd_err(who,
			       "--socket-path %s: exists and is not a socket",
			       path);
			return -EEXIST;
		}
		live = vd_unix_socket_is_live(sa);
		if (live) {
			if (live > 0)
				vd_err(who,
				       "--socket-path %s: in use: another "
				       "process listens on it (a running "
				       "virtiod?); stop it or choose another "
				       "path",
				       path);
			else
				vd_err(who,
				       "--socket-path %s: cannot tell whether "
				       "it is in use (%s); remove it if it is "
				       "stale",
				       path, strerror(-live));
			return -EADDRINUSE;
		}
		vd_info(who, "--socket-path %s: replacing a stale socket",
			path);
		if (unlink(path) < 0 && errno != ENOENT) {
			r = -errno;
			vd_err(who, "--socket-path %s: %s", path, strerror(-r));
			return r;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		vd_err(who, "socket: %s", strerror(-r));
		return r;
	}
	/* Created 0600: nobody else may connect before the mode is set.
	 * Only this thread runs during start-up. */
	old_mask = umask(0177);
	r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	umask(old_mask);
	if (r < 0 || listen(fd, 4) < 0) {
		r = -errno;
		vd_err(who, "--socket-path %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

int vu_listen_path(const char *path, const char *who, gid_t group, int *out_fd,
		   bool *created)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int dir, r;

	*created = false;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		vd_err(who, "--socket-path %s: longer than %zu bytes", path,
		       sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked */
	dir = lock_parent_dir(path);
	r = bind_listen(path, &sa, who, out_fd);
	if (dir >= 0)
		close(dir); /* releases the flock */
	if (r < 0)
		return r;
	*created = true;
	/* --socket-group: the group may connect too (0660). Given to the
	 * group first, opened to it then; neither follows a symlink that
	 * someone may have put in the socket's place. */
	if (group != (gid_t)-1 &&
	    (lchown(path, (uid_t)-1, group) < 0 ||
	     fchmodat(AT_FDCWD, path, 0660, AT_SYMLINK_NOFOLLOW) < 0)) {
		r = -errno;
		vd_err(who, "--socket-group %u on %s: %s", (unsigned)group,
		       path, strerror(-r));
		unlink(path);
		close(*out_fd);
		*out_fd = -1;
		*created = false;
		return r;
	}
	return 0;
}

/* "pid N uid U gid G" of a connected unix socket's peer (SO_PEERCRED: as
 * it was when the peer connected). */
void vu_peer_describe(int fd, char *buf, size_t len)
{
	struct ucred uc;
	socklen_t ulen = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ulen) == 0)
		snprintf(buf, len, "pid %d uid %u gid %u", (int)uc.pid,
			 (unsigned)uc.uid, (unsigned)uc.gid);
	else
		snprintf(buf, len, "peer unknown: %s", strerror(errno));
}

/* --fd: the backend program conventions hand us a listening socket. */
int vu_check_listen_fd(int fd, const char *who)
{
	int val = 0;
	socklen_t len = sizeof(val);

	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		vd_err(who, "--fd %d: %s", fd, strerror(errno));
		return -EBADF;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &val, &len) < 0 ||
	    val != AF_UNIX) {
		vd_err(who, "--fd %d: not a unix domain socket", fd);
		return -ENOTSOCK;
	}
	len = sizeof(val);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) < 0 || !val) {
		vd_err(who, "--fd %d: not a listening socket", fd);
		return -EINVAL;
	}
	return 0;
}

/* -------------------------------------------------------------- messages */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for more of the message until the deadline for the whole message:
 * a per-read timeout alone lets a frontend that drips a byte at a time hold
 * the daemon (and a SIGTERM, blocked outside ppoll) for minutes. */
static int wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Read exactly len bytes by the deadline, collecting SCM_RIGHTS fds into
 * fds[] (at most max). Extra fds are closed and reported as -E2BIG once
 * the bytes are in, so the stream stays in step. */
static int recv_full(int fd, void *buf, size_t len, int *fds, unsigned *n_fds,
		     unsigned max, int64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	size_t got = 0;
	bool too_many = false;

	while (got < len) {
		struct iovec iov = {(char *)buf + got, len - got};
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf.buf,
			.msg_controllen = sizeof(cbuf.buf),
		};
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			r = wait_readable(fd, deadline);
			if (r)
				return r;
			continue;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			int *in = (int *)CMSG_DATA(c);
			size_t k;

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int nfd;

				memcpy(&nfd, &in[i], sizeof(nfd));
				if (*n_fds < max) {
					fds[(*n_fds)++] = nfd;
				} else {
					close(nfd);
					too_many = true;
				}
			}
		}
		/* The kernel dropped fds that did not fit the buffer. */
		if (mh.msg_flags & MSG_CTRUNC)
			too_many = true;
		if (n == 0)
			return got ? -EPIPE : -ECONNRESET;
		got += (size_t)n;
	}
	return too_many ? -E2BIG : 0;
}

int vu_recv_msg(struct vu_backend *b, struct vu_msg *m)
{
	/* The whole message, header and payload, within msg_timeout_ms. */
	int64_t deadline = now_ms() + b->msg_timeout_ms;
	int r;

	m->n_fds = 0;
	r = recv_full(b->conn_fd, &m->hdr, sizeof(m->hdr), m->fds, &m->n_fds,
		      VU_MAX_FDS, deadline);
	if (r == -ECONNRESET)
		return r;
	if (r == 0 && m->hdr.size > VU_MAX_PAYLOAD) {
		vd_warn(b->who,
			"%s: payload of %u bytes, no request has more than "
			"%zu; "
			"closing the connection",
			vu_request_name(m->hdr.request), m->hdr.size,
			VU_MAX_PAYLOAD);
		r = -EMSGSIZE;
	}
	if (r == 0 && m->hdr.size) {
		/* fds belong to the header's first byte ("Communication"):
		 * any arriving with the payload are strays. */
		unsigned before = m->n_fds;

		r = recv_full(b->conn_fd, &m->p, m->hdr.size, m->fds, &m->n_fds,
			      VU_MAX_FDS, deadline);
		if (r == 0 && m->n_fds != before)
			r = -EPROTO;
	}
	if (r == 0)
		return 0;
	vu_close_fds(m->fds, m->n_fds);
	m->n_fds = 0;
	switch (r) {
	case -EMSGSIZE:
		break;
	case -E2BIG:
		vd_warn(b->who,
			"%s: more than %u fds attached; closing the "
			"connection",
			vu_request_name(m->hdr.request), VU_MAX_FDS);
		break;
	case -EPROTO:
		vd_warn(b->who,
			"%s: fds sent with the payload, not the header; "
			"closing the connection",
			vu_request_name(m->hdr.request));
		break;
	case -EPIPE:
	case -ETIMEDOUT:
		vd_warn(b->who,
			"truncated message (%s); closing the connection",
			r == -EPIPE ? "peer closed" : "timed out");
		break;
	default:
		vd_warn(b->who, "receive: %s; closing the connection",
			strerror(-r));
	}
	return r;
}

/* Sends r (and the fds in it, which are closed afterwards: the frontend
 * has its own copies). */
int vu_send_reply(struct vu_backend *b, struct vu_reply *r)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf = {{0}};
	struct iovec iov[2] = {
		{&r->hdr, sizeof(r->hdr)},
		{&r->p, r->hdr.size},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	size_t left = sizeof(r->hdr) + r->hdr.size;
	int ret = 0;

	if (r->n_fds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &r->fds[0], sizeof(int));
	}
	vd_debug(b->who, "-> %s reply size %u fds %u",
		 vu_request_name(r->hdr.request), r->hdr.size, r->n_fds);
	while (left) {
		ssize_t n = sendmsg(b->conn_fd, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			vd_warn(b->who, "%s: sending the reply: %s",
				vu_request_name(r->hdr.request),
				strerror(-ret));
			break;
		}
		left -= (size_t)n;
		/* A partial write: go on from where it stopped, without the
		 * fds, which went with the first byte. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (n > 0 && mh.msg_iovlen) {
			size_t step = (size_t)n < mh.msg_iov->iov_len
					      ? (size_t)n
					      : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base =
				(char *)mh.msg_iov->iov_base + step;
			mh.msg_iov->iov_len -= step;
			n -= (ssize_t)step;
			if (!mh.msg_iov->iov_len) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	vu_close_fds(r->fds, r->n_fds);
	r->n_fds = 0;
	return ret;
}

/* ------------------------------------------------------------ shared fds */

/* A frontend that shrinks a shared file under our mapping makes the next
 * access there fault (SIGBUS) in whichever thread touches it, and no
 * check at mapping time can prevent that; F_SEAL_SHRINK does. QEMU's
 * memory-backend-memfd sets it (seal=on is the default). A memfd that
 * allows sealing but has no such seal gets it from us: growing stays
 * possible, and a frontend has no business shrinking memory it shared.
 * Files that cannot be sealed (tmpfs or hugetlbfs paths, memfds without
 * MFD_ALLOW_SEALING) remain a risk; see docs/vhost-user.md. Returns true
 * if the file can no longer shrink. */
static bool seal_against_shrink(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return false; /* not a file with seals */
	if (seals & F_SEAL_SHRINK)
		return true;
	if (seals & F_SEAL_SEAL)
		return false;
	return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0;
}

int vu_fd_check_range(struct vu_backend *b, const char *what, int fd,
		      uint64_t offset, uint64_t size, char *why, size_t whylen,
		      struct stat *st)
{
	/* Sealed before the size is read, so the size checked stays. */
	bool sealed = seal_against_shrink(fd);

	if (fstat(fd, st) < 0) {
		snprintf(why, whylen, "fstat: %s", strerror(errno));
		return -EINVAL;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen,
			 "fd is not a regular file (memfd, tmpfs or "
			 "hugetlbfs)");
		return -EINVAL;
	}
	/* Mapping past the end would fault on access, in a queue thread. */
	if (offset > (uint64_t)st->st_size ||
	    size > (uint64_t)st->st_size - offset) {
		snprintf(why, whylen,
			 "[0x%llx, +0x%llx) ends past the end of its file "
			 "(0x%llx bytes)",
			 (unsigned long long)offset, (unsigned long long)size,
			 (unsigned long long)st->st_size);
		return -EINVAL;
	}
	/* Once per connection: QEMU's memory-backend-file is common and
	 * would otherwise warn for every region. */
	if (!sealed && !b->unsealed_warned) {
		b->unsealed_warned = true;
		vd_warn(b->who,
			"%s: file not sealed against shrinking and not "
			"sealable; a frontend that truncates it crashes the "
			"daemon (SIGBUS). Sealed memfds (QEMU's "
			"memory-backend-memfd) avoid this",
			what);
	}
	return 0;
}

void *vu_map_fd(int fd, uint64_t offset, uint64_t size, const struct stat *st,
		void **base, size_t *len, char *why, size_t whylen)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t align = page, map_off, delta, map_len;
	void *p;

	/* hugetlbfs maps in huge pages and says so in st_blksize. */
	if (st->st_blksize > 0 && (uint64_t)st->st_blksize > page &&
	    !((uint64_t)st->st_blksize & ((uint64_t)st->st_blksize - 1)))
		align = (uint64_t)st->st_blksize;
	map_off = offset & ~(align - 1);
	delta = offset - map_off;
	if (size > SIZE_MAX - delta - align) {
		snprintf(why, whylen, "size 0x%llx too large to map",
			 (unsigned long long)size);
		return NULL;
	}
	map_len = (delta + size + align - 1) & ~(align - 1);
	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE, fd, (off_t)map_off);
	if (p == MAP_FAILED) {
		snprintf(why, whylen, "mmap of 0x%llx bytes: %s",
			 (unsigned long long)map_len, strerror(errno));
		return NULL;
	}
	*base = p;
	*len = map_len;
	return (char *)p + delta;
}
