/* The frontend side of fuzz_vhost_user: input bytes, the memfds and fds it
 * makes up, the socket it talks to the daemon's connection code through,
 * and the replies it drains so that nothing ever blocks. */
#ifndef VIRTIOD_FUZZ_VU_FRONTEND_H
#define VIRTIOD_FUZZ_VU_FRONTEND_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "serve.h"
#include "vu_wire.h"

#define NQ	  2    /* blk --num-queues */
#define QSIZE	  "64" /* blk --queue-size: small rings, small areas */
#define N_MEM	  4    /* memfd slots the frontend keeps */
#define N_CHAN	  2    /* backend channels (SET_BACKEND_REQ_FD) kept */
#define N_REG	  16   /* regions remembered for ring buffers */
#define N_TMP	  16   /* fds to close once a message is sent */
#define MAX_OPS	  96   /* actions per input */
#define PAGE	  4096u
#define MAX_PAGES 256u	/* a memfd's size, normally */
#define BIG_PAGES 4096u /* sometimes: 16 MiB, sparse */
/* Where the frontend "mapped" memfd slot s: user addresses of regions and
 * rings are this plus an offset in the file, as QEMU's are. */
#define UBASE(s) (0x7f0000000000ull + ((uint64_t)(s) << 32))

static char img_path[] = "/tmp/fuzz-vu-img.XXXXXX";
static char spare_path[] = "/tmp/fuzz-vu-spare.XXXXXX";

/* --------------------------------------------------------------- input */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v |= (uint64_t)(in->n ? *in->p : 0) << (8 * i);
		if (in->n) {
			in->p++;
			in->n--;
		}
	}
	return v;
}

static uint8_t take8(struct input *in)
{
	return (uint8_t)take(in, 1);
}

static uint16_t take16(struct input *in)
{
	return (uint16_t)take(in, 2);
}

/* ------------------------------------------------------------- frontend */

/* What the frontend believes it set up, so rings and buffers can be placed
 * where the daemon will look (the input may have made any of it fail). */
struct shadow_region {
	unsigned slot;
	uint64_t gpa, size, mmap_offset;
};

struct shadow_ring {
	bool addr_set;
	unsigned slot;
	uint64_t desc, avail; /* offsets in the slot's memfd */
	uint16_t num;
	uint16_t avail_idx, next_desc, next_id;
	bool wrap;
};

struct fz {
	struct vu_backend *b;
	int peer; /* our end of the connection, -1: none */
	int mem[N_MEM];
	uint64_t mem_size[N_MEM];
	int inflight_fd; /* from GET_INFLIGHT_FD */
	uint64_t inflight_size;
	int kick[NQ]; /* our copies of the kick eventfds */
	int chan[N_CHAN];
	int tmp[N_TMP];
	unsigned n_tmp;
	struct shadow_region reg[N_REG];
	unsigned n_reg;
	struct shadow_ring ring[NQ];
	bool packed;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int tmp_fd(struct fz *z, int fd)
{
	if (fd < 0)
		return -1;
	if (z->n_tmp == N_TMP) {
		close(fd);
		return -1;
	}
	z->tmp[z->n_tmp++] = fd;
	return fd;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		abort();
}

static void connect_frontend(struct fz *z)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* The daemon's end never blocks: a message the input left short
	 * reads as a frontend that stalled mid-message. Ours neither: we
	 * drain replies after every message. */
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	vu_connection_open(z->b, sv[0]);
	z->peer = sv[1];
}

static void disconnect_frontend(struct fz *z)
{
	if (z->peer < 0)
		return;
	vu_disconnect(z->b, "fuzz");
	close_fd(&z->peer);
	for (unsigned q = 0; q < NQ; q++)
		z->ring[q] = (struct shadow_ring){0};
}

static void keep_inflight_fd(struct fz *z, int fd)
{
	struct stat st;

	close_fd(&z->inflight_fd);
	z->inflight_fd = fd;
	z->inflight_size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Replies and backend-channel messages, so no send ever blocks; the only
 * fd a reply carries is an inflight area, kept for later use. */
static void drain(struct fz *z, int fd, bool keep_fds)
{
	for (unsigned rounds = 0; rounds < 64; rounds++) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
			struct cmsghdr align;
		} cbuf;
		char data[1024];
		struct iovec iov = {data, sizeof(data)};
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf.buf,
			.msg_controllen = sizeof(cbuf.buf),
		};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n <= 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < k; i++) {
				int rfd;

				memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(rfd));
				if (keep_fds)
					keep_inflight_fd(z, rfd);
				else
					close(rfd);
			}
		}
	}
}

static void drain_all(struct fz *z)
{
	if (z->peer >= 0)
		drain(z, z->peer, true);
	for (unsigned i = 0; i < N_CHAN; i++)
		if (z->chan[i] >= 0)
			drain(z, z->chan[i], false);
}

/* One message: header and `plen` payload bytes (a header claiming more
 * makes a truncated message), fds on the first byte. Served by the daemon's
 * own receive-and-dispatch; a refusal closes the connection as it would. */
static void message(struct fz *z, uint32_t req, uint32_t flags, uint32_t size,
		    const void *payload, size_t plen, const int *fds,
		    unsigned n_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} cbuf;
	struct vu_hdr h = {req, flags, size};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, plen}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = plen ? 2 : 1};
	int send_fds[16];
	unsigned n = 0;
	int r;

	if (z->peer < 0)
		connect_frontend(z);
	for (unsigned i = 0; i < n_fds && n < 16; i++)
		if (fds[i] >= 0)
			send_fds[n++] = fds[i];
	if (n) {
		struct cmsghdr *c;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), send_fds, sizeof(int) * n);
	}
	r = (int)sendmsg(z->peer, &mh, MSG_NOSIGNAL);
	while (z->n_tmp)
		close(z->tmp[--z->n_tmp]);
	if (r < 0)
		abort(); /* an empty socket buffer takes any message */
	r = vu_serve_message(z->b);
	drain_all(z);
	if (r < 0)
		disconnect_frontend(z);
}

static uint32_t flags_of(uint8_t b)
{
	return VU_VERSION | (b & 1 ? VU_FLAG_NEED_REPLY : 0);
}

/* ------------------------------------------------------------------ fds */

static int new_memfd(uint64_t size, bool allow_seal, bool seal)
{
	int fd = memfd_create("fuzz-guest",
			      MFD_CLOEXEC |
				      (allow_seal ? MFD_ALLOW_SEALING : 0));

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	if (seal && allow_seal &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		abort();
	return fd;
}

/* An fd of an input-chosen kind, for places that take one. */
static int some_fd(struct fz *z, uint8_t kind)
{
	int sv[2], p[2];

	switch (kind % 8) {
	case 0:
	case 1:
	case 2:
	case 3:
		if (z->mem[kind % 4] >= 0)
			return z->mem[kind % 4];
		return tmp_fd(z, new_memfd(PAGE, false, false));
	case 4:
		if (z->inflight_fd >= 0)
			return z->inflight_fd;
		return tmp_fd(z, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	case 5:
		return tmp_fd(z, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	case 6:
		if (kind & 0x80)
			return tmp_fd(z, open("/dev/null", O_RDWR | O_CLOEXEC));
		if (kind & 0x40) {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				       sv) < 0)
				abort();
			close(sv[1]);
			return tmp_fd(z, sv[0]);
		}
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			abort();
		close(p[0]);
		return tmp_fd(z, p[1]);
	default:
		/* A regular file on disk: mappable, not sealable. */
		return tmp_fd(z, open(spare_path, O_RDWR | O_CLOEXEC));
	}
}

/* A kick/call/err eventfd; kick fds stay with us so the input can kick. */
static int event_fd(struct fz *z, int *keep)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		abort();
	if (keep) {
		close_fd(keep);
		*keep = fd;
		return fd;
	}
	return tmp_fd(z, fd);
}

/* ------------------------------------------------------------ guest memory */

static void poke(struct fz *z, unsigned slot, uint64_t off, const void *p,
		 size_t len)
{
	int fd = slot < N_MEM ? z->mem[slot] : z->inflight_fd;
	uint64_t size = slot < N_MEM ? z->mem_size[slot] : z->inflight_size;

	if (fd < 0 || off >= size)
		return;
	if (len > size - off)
		len = (size_t)(size - off);
	if (pwrite(fd, p, len, (off_t)off) < 0)
		abort();
}

/* ------------------------------------------------------------------ fd leaks
 */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[300], target[256];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
	}
	closedir(d);
}

#endif
