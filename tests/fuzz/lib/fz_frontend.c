/* The frontend side of fuzz_vhost_user: input bytes, the memfds and fds it
 * makes up, the socket it talks to the daemon's connection code through,
 * and the replies it drains so that nothing ever blocks. Messages are made
 * with the vhost-user frontend library; only serving them is the daemon's
 * (serve.h). */
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

#include "fz_frontend.h"
#include "serve.h"
#include "vuf_conn.h"

char fz_img_path[] = "/tmp/fuzz-vu-img.XXXXXX";
char fz_spare_path[] = "/tmp/fuzz-vu-spare.XXXXXX";

/* ------------------------------------------------------------- frontend */

void fz_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int fz_tmp_fd(struct fz *z, int fd)
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

void fz_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		abort();
}

void fz_connect(struct fz *z)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* The daemon's end never blocks: a message the input left short
	 * reads as a frontend that stalled mid-message. Ours neither: we
	 * drain replies after every message. */
	fz_set_nonblock(sv[0]);
	fz_set_nonblock(sv[1]);
	vu_connection_open(z->b, sv[0]);
	z->peer = sv[1];
}

void fz_disconnect(struct fz *z)
{
	if (z->peer < 0)
		return;
	vu_disconnect(z->b, "fuzz");
	fz_close_fd(&z->peer);
	for (unsigned q = 0; q < NQ; q++)
		z->ring[q] = (struct shadow_ring){0};
}

static void keep_inflight_fd(struct fz *z, int fd)
{
	struct stat st;

	fz_close_fd(&z->inflight_fd);
	z->inflight_fd = fd;
	z->inflight_size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Replies and backend-channel messages, so no send ever blocks; the only
 * fd a reply carries is an inflight area, kept for later use. */
static void drain(struct fz *z, int fd, bool keep_fds)
{
	for (unsigned rounds = 0; rounds < 64; rounds++) {
		int fds[VHOST_USER_MAX_REGIONS];
		unsigned n_fds;
		char data[1024];
		ssize_t n = vuf_recvmsg(fd, data, sizeof(data), MSG_DONTWAIT,
					fds, VHOST_USER_MAX_REGIONS, &n_fds);

		if (n <= 0)
			return;
		for (unsigned i = 0; i < n_fds; i++) {
			if (keep_fds)
				keep_inflight_fd(z, fds[i]);
			else
				close(fds[i]);
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
void fz_message(struct fz *z, uint32_t req, uint32_t flags, uint32_t size,
		const void *payload, size_t plen, const int *fds,
		unsigned n_fds)
{
	struct vhost_user_hdr h = {req, flags, size};
	int send_fds[16];
	unsigned n = 0;
	ssize_t r;
	int rc;

	if (z->peer < 0)
		fz_connect(z);
	for (unsigned i = 0; i < n_fds && n < 16; i++)
		if (fds[i] >= 0)
			send_fds[n++] = fds[i];
	r = vuf_send_raw(z->peer, &h, payload, plen, send_fds, n);
	while (z->n_tmp)
		close(z->tmp[--z->n_tmp]);
	if (r < 0)
		abort(); /* an empty socket buffer takes any message */
	rc = vu_serve_message(z->b);
	drain_all(z);
	if (rc < 0)
		fz_disconnect(z);
}

uint32_t fz_flags(uint8_t b)
{
	return VHOST_USER_VERSION | (b & 1 ? VHOST_USER_NEED_REPLY_MASK : 0);
}

/* ------------------------------------------------------------------ fds */

int fz_memfd(uint64_t size, bool allow_seal, bool seal)
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
int fz_some_fd(struct fz *z, uint8_t kind)
{
	int sv[2], p[2];

	switch (kind % 8) {
	case 0:
	case 1:
	case 2:
	case 3:
		if (z->mem[kind % 4] >= 0)
			return z->mem[kind % 4];
		return fz_tmp_fd(z, fz_memfd(PAGE, false, false));
	case 4:
		if (z->inflight_fd >= 0)
			return z->inflight_fd;
		return fz_tmp_fd(z, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	case 5:
		return fz_tmp_fd(z, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	case 6:
		if (kind & 0x80)
			return fz_tmp_fd(z,
					 open("/dev/null", O_RDWR | O_CLOEXEC));
		if (kind & 0x40) {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				       sv) < 0)
				abort();
			close(sv[1]);
			return fz_tmp_fd(z, sv[0]);
		}
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			abort();
		close(p[0]);
		return fz_tmp_fd(z, p[1]);
	default:
		/* A regular file on disk: mappable, not sealable. */
		return fz_tmp_fd(z, open(fz_spare_path, O_RDWR | O_CLOEXEC));
	}
}

/* A kick/call/err eventfd; kick fds stay with us so the input can kick. */
int fz_event_fd(struct fz *z, int *keep)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		abort();
	if (keep) {
		fz_close_fd(keep);
		*keep = fd;
		return fd;
	}
	return fz_tmp_fd(z, fd);
}

/* ------------------------------------------------------------ guest memory */

void fz_poke(struct fz *z, unsigned slot, uint64_t off, const void *p,
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

int fz_count_fds(void)
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

void fz_list_fds(void)
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
