/* libFuzzer target for the vhost-user shim: the input is a sequence of
 * frontend actions. Messages (header, payload, fds made up here: memfds of
 * input-chosen sizes and contents, eventfds, sockets, non-files) go through
 * a real socket to the daemon's own connection code serving a real
 * virtio-blk on a small temp image; the input also writes guest memory and
 * rings, kicks, and reconnects. Nothing may crash, block or leak an fd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "vu_priv.h"

#define NQ	  2  /* blk --num-queues */
#define QSIZE	  "64" /* blk --queue-size: small rings, small areas */
#define N_MEM	  4  /* memfd slots the frontend keeps */
#define N_CHAN	  2  /* backend channels (SET_BACKEND_REQ_FD) kept */
#define N_REG	  16 /* regions remembered for ring buffers */
#define N_TMP	  16 /* fds to close once a message is sent */
#define MAX_OPS	  96
#define PAGE	  4096u
#define MAX_PAGES 256u	   /* a memfd's size, normally */
#define BIG_PAGES 4096u	   /* sometimes: 16 MiB, sparse */
#define UBASE(s)  (0x7f0000000000ull + ((uint64_t)(s) << 32))

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
			      MFD_CLOEXEC | (allow_seal ? MFD_ALLOW_SEALING : 0));

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

/* -------------------------------------------------------------- regions */

/* A region of memfd slot s, as QEMU describes one: its user address is the
 * slot's base plus the offset, so ring addresses can be made from offsets.
 * Sometimes anything at all. */
static int region_of(struct fz *z, struct input *in, struct vu_region_wire *w,
		     struct shadow_region *sh)
{
	uint8_t mode = take8(in);
	unsigned s = mode & 3;
	uint64_t pages = z->mem_size[s] / PAGE, off, len;
	int fd = z->mem[s] >= 0 ? z->mem[s]
				: tmp_fd(z, new_memfd(PAGE, false, false));

	if (mode & 0x80) {
		w->gpa = take(in, 8);
		w->size = take(in, 8);
		w->uaddr = take(in, 8);
		w->mmap_offset = take(in, 8);
	} else {
		off = take8(in) % (pages + 1);
		len = mode & 0x40 ? pages - off : take8(in) % (pages - off + 1);
		w->gpa = (uint64_t)take16(in) * PAGE;
		w->size = len * PAGE;
		w->mmap_offset = off * PAGE;
		w->uaddr = UBASE(s) + w->mmap_offset;
		if (mode & 0x20) /* off by a little */
			w->size += (int8_t)take8(in);
	}
	if (mode & 0x10)
		fd = some_fd(z, take8(in));
	*sh = (struct shadow_region){s, w->gpa, w->size, w->mmap_offset};
	return fd;
}

static void remember_region(struct fz *z, const struct shadow_region *sh)
{
	if (z->n_reg < N_REG)
		z->reg[z->n_reg++] = *sh;
}

static void op_mem_table(struct fz *z, struct input *in)
{
	uint8_t f = take8(in);
	unsigned n = (f >> 4) % (VU_MAX_FDS + 3); /* up to 2 past the limit */
	unsigned nw = n < VU_MAX_FDS ? n : VU_MAX_FDS;
	struct vu_mem_table_wire t = {.nregions = n};
	uint32_t size = 8 + nw * (uint32_t)sizeof(struct vu_region_wire);
	struct shadow_region sh;
	int fds[VU_MAX_FDS + 2];

	z->n_reg = 0;
	for (unsigned i = 0; i < n; i++) {
		struct vu_region_wire extra;

		fds[i] = region_of(z, in, i < nw ? &t.regions[i] : &extra, &sh);
		if (i < nw)
			remember_region(z, &sh);
	}
	if (f & 4)
		t.nregions = take8(in);
	message(z, VU_SET_MEM_TABLE, flags_of(f), size, &t, size, fds,
		f & 8 && n ? n - 1 : n);
}

static void op_mem_reg(struct fz *z, struct input *in)
{
	uint8_t f = take8(in);
	struct vu_mem_reg_wire m = {0};
	struct shadow_region sh;
	int fd;

	if (f & 2 && z->n_reg) {
		/* Remove one we added, exactly as it was described. */
		unsigned k = take8(in) % z->n_reg;

		sh = z->reg[k];
		m.region = (struct vu_region_wire){
			sh.gpa, sh.size, UBASE(sh.slot) + sh.mmap_offset,
			sh.mmap_offset};
		z->reg[k] = z->reg[--z->n_reg];
		fd = f & 4 ? some_fd(z, take8(in)) : -1;
		message(z, VU_REM_MEM_REG, flags_of(f), sizeof(m), &m,
			sizeof(m), &fd, fd >= 0);
		return;
	}
	fd = region_of(z, in, &m.region, &sh);
	if (f & 2) {
		message(z, VU_REM_MEM_REG, flags_of(f), sizeof(m), &m,
			sizeof(m), &fd, f & 4 ? 1 : 0);
		return;
	}
	remember_region(z, &sh);
	message(z, VU_ADD_MEM_REG, flags_of(f), sizeof(m), &m, sizeof(m), &fd,
		f & 4 ? 0 : 1);
}

/* ---------------------------------------------------------------- rings */

static uint32_t ring_index(struct input *in)
{
	uint8_t b = take8(in);

	if (b < 0xf0)
		return b % NQ;
	return b == 0xff ? (uint32_t)take(in, 4) : b;
}

static void op_vring(struct fz *z, struct input *in)
{
	uint8_t f = take8(in), sub = take8(in);
	uint32_t index = ring_index(in);
	struct shadow_ring *sr = index < NQ ? &z->ring[index] : NULL;
	struct vhost_vring_state st = {.index = index};
	struct vhost_vring_addr a = {.index = index};
	uint64_t u64;
	int fd = -1;

	switch (sub % 8) {
	case 0: {
		uint8_t b = take8(in);

		st.num = b < 0xf0 ? 1u << (b % 8)
				  : (b == 0xff ? (uint32_t)take(in, 4)
					       : take16(in));
		if (sr)
			sr->num = (uint16_t)st.num;
		message(z, VU_SET_VRING_NUM, flags_of(f), sizeof(st), &st,
			sizeof(st), NULL, 0);
		return;
	}
	case 1: {
		uint8_t mode = take8(in);
		unsigned s = mode & 3;
		uint16_t num = sr && sr->num ? sr->num : 64;
		uint64_t desc = (uint64_t)take16(in) * 16, avail, used;
		size_t dl, al, ul;

		/* Laid out one after the other, as a driver would, or each
		 * part anywhere. */
		vd_vq_ring_sizes(z->packed ? VD_VQ_PACKED : VD_VQ_SPLIT, num,
				 &dl, &al, &ul);
		avail = mode & 4 ? (uint64_t)take16(in) * 2 : desc + dl;
		used = mode & 8 ? (uint64_t)take16(in) * 4
				: (avail + al + 3) & ~3ull;
		a.desc_user_addr = UBASE(s) + desc;
		a.avail_user_addr = UBASE(s) + avail;
		a.used_user_addr = UBASE(s) + used;
		if (mode & 0x10) {
			a.flags = 1u << VHOST_VRING_F_LOG;
			a.log_guest_addr = take(in, 8);
		}
		if (mode & 0x20)
			a.flags |= take8(in);
		if (mode & 0x40)
			a.used_user_addr = take(in, 8);
		if (sr)
			*sr = (struct shadow_ring){
				.addr_set = true,
				.slot = s,
				.desc = desc,
				.avail = avail,
				.num = num,
				.wrap = true,
			};
		message(z, VU_SET_VRING_ADDR, flags_of(f), sizeof(a), &a,
			sizeof(a), NULL, 0);
		return;
	}
	case 2:
		st.num = f & 0x80 ? (uint32_t)take(in, 4) : take16(in);
		if (sr) {
			sr->avail_idx = sr->next_desc = (uint16_t)(st.num &
								   0x7fff);
			sr->wrap = z->packed ? !!(st.num & 0x8000) : true;
		}
		message(z, VU_SET_VRING_BASE, flags_of(f), sizeof(st), &st,
			sizeof(st), NULL, 0);
		return;
	case 3:
		message(z, VU_GET_VRING_BASE, flags_of(f), sizeof(st), &st,
			sizeof(st), NULL, 0);
		return;
	case 4:
	case 5:
	case 6: {
		static const uint32_t req[3] = {
			VU_SET_VRING_KICK, VU_SET_VRING_CALL, VU_SET_VRING_ERR};
		uint8_t mode = take8(in);

		u64 = index & VU_VRING_IDX_MASK;
		if (index > VU_VRING_IDX_MASK || mode & 0x80)
			u64 = take(in, 8);
		if (mode & 1)
			u64 |= VU_VRING_NOFD_MASK;
		if (!(mode & 1) || mode & 2)
			fd = mode & 4 ? some_fd(z, take8(in))
				      : event_fd(z, sub % 8 == 4 && sr
							    ? &z->kick[index]
							    : NULL);
		message(z, req[sub % 8 - 4], flags_of(f), sizeof(u64), &u64,
			sizeof(u64), &fd, fd >= 0);
		return;
	}
	default:
		st.num = f & 0x80 ? (uint32_t)take(in, 4) : take8(in) & 1;
		message(z, VU_SET_VRING_ENABLE, flags_of(f), sizeof(st), &st,
			sizeof(st), NULL, 0);
		return;
	}
}

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

/* A buffer inside a remembered region: its guest address and where it is
 * in our memfd. False if there is no such region. */
static bool buffer_at(struct fz *z, struct input *in, uint32_t len,
		      uint64_t *gpa, unsigned *slot, uint64_t *off)
{
	struct shadow_region *r;
	uint64_t o;

	if (!z->n_reg)
		return false;
	r = &z->reg[take8(in) % z->n_reg];
	o = (uint64_t)take16(in) * 16;
	if (r->size > len)
		o %= r->size - len;
	*gpa = r->gpa + o;
	*slot = r->slot;
	*off = r->mmap_offset + o;
	return true;
}

/* A blk request made available on a ring set up with offsets in a memfd:
 * header, data, status in guest memory, descriptors, then the index or the
 * flags that publish it, and a kick. The driver side of the ring. */
static void op_request(struct fz *z, struct input *in)
{
	static const uint32_t types[] = {
		VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,	       VIRTIO_BLK_T_FLUSH,
		VIRTIO_BLK_T_GET_ID,  VIRTIO_BLK_T_DISCARD,
		VIRTIO_BLK_T_WRITE_ZEROES, 0x77,
	};
	uint8_t f = take8(in);
	unsigned q = take8(in) % NQ, nb = 0;
	struct shadow_ring *sr = &z->ring[q];
	uint8_t tsel = take8(in);
	struct virtio_blk_outhdr h = {
		.type = tsel < 0xf0 ? types[tsel % 7] : (uint32_t)take(in, 4),
		.sector = take8(in),
	};
	uint32_t dlen = take16(in) % 0x3000;
	bool dev_writes = h.type == VIRTIO_BLK_T_IN ||
			  h.type == VIRTIO_BLK_T_GET_ID;
	struct fbuf {
		uint64_t gpa;
		uint32_t len;
		bool write;
	} bufs[4];
	unsigned slot;
	uint64_t off, gpa;
	uint8_t status = 0xff;

	if (!sr->addr_set || !sr->num || z->mem[sr->slot] < 0)
		return;
	if (!buffer_at(z, in, sizeof(h), &gpa, &slot, &off))
		return;
	poke(z, slot, off, &h, sizeof(h));
	bufs[nb++] = (struct fbuf){gpa, sizeof(h), false};
	if (dlen && buffer_at(z, in, dlen, &gpa, &slot, &off))
		bufs[nb++] = (struct fbuf){gpa, dlen, dev_writes};
	if (buffer_at(z, in, 1, &gpa, &slot, &off)) {
		poke(z, slot, off, &status, 1);
		bufs[nb++] = (struct fbuf){gpa, 1, true};
	}
	if (f & 2 && nb > 1) /* a writable buffer before a readable one */
		bufs[0].write = true;

	if (!z->packed) {
		uint16_t head = sr->next_desc % sr->num;

		for (unsigned i = 0; i < nb; i++) {
			uint16_t at = (uint16_t)((head + i) % sr->num);
			struct vring_desc d = {
				.addr = bufs[i].gpa,
				.len = bufs[i].len,
				.flags = (uint16_t)((i + 1 < nb ? VRING_DESC_F_NEXT
								 : 0) |
						    (bufs[i].write
							     ? VRING_DESC_F_WRITE
							     : 0)),
				.next = (uint16_t)((at + 1) % sr->num),
			};

			if (f & 4 && i == 0)
				d.next = take16(in); /* anywhere */
			poke(z, sr->slot, sr->desc + at * sizeof(d), &d,
			     sizeof(d));
		}
		sr->next_desc = (uint16_t)(head + nb);
		poke(z, sr->slot, sr->avail + 4 + (sr->avail_idx % sr->num) * 2,
		     &head, 2);
		sr->avail_idx++;
		if (f & 8)
			sr->avail_idx = take16(in);
		poke(z, sr->slot, sr->avail + 2, &sr->avail_idx, 2);
	} else {
		uint16_t id = sr->next_id++ % sr->num;
		uint16_t head = sr->avail_idx % sr->num, head_flags = 0;
		uint16_t pos = head;

		for (unsigned i = 0; i < nb; i++) {
			uint16_t fl = (uint16_t)(
				(sr->wrap ? 1u << VRING_PACKED_DESC_F_AVAIL
					  : 1u << VRING_PACKED_DESC_F_USED) |
				(i + 1 < nb ? VRING_DESC_F_NEXT : 0) |
				(bufs[i].write ? VRING_DESC_F_WRITE : 0));
			struct vring_packed_desc d = {
				.addr = bufs[i].gpa,
				.len = bufs[i].len,
				.id = f & 4 ? take16(in) : id,
			};

			/* The head's flags go last: they publish the chain. */
			if (i == 0)
				head_flags = fl;
			else
				d.flags = fl;
			poke(z, sr->slot, sr->desc + pos * sizeof(d), &d,
			     sizeof(d));
			if (++pos == sr->num) {
				pos = 0;
				sr->wrap = !sr->wrap;
			}
		}
		sr->avail_idx = pos;
		poke(z, sr->slot,
		     sr->desc + head * sizeof(struct vring_packed_desc) + 14,
		     &head_flags, 2);
	}
	if (z->kick[q] >= 0 && !(f & 0x10)) {
		uint64_t one = 1;

		if (write(z->kick[q], &one, sizeof(one)) < 0 && errno != EAGAIN)
			abort();
	}
}

/* ----------------------------------------------------------------- others */

static void op_features(struct fz *z, struct input *in)
{
	uint8_t f = take8(in), sub = take8(in);
	uint64_t offered = z->b->model->features | (1ull << VU_F_PROTOCOL_FEATURES) |
			   (1ull << VHOST_F_LOG_ALL);
	uint64_t v;

	switch (sub % 4) {
	case 0:
		v = sub & 0x10 ? offered : offered & take(in, 8);
		if (sub & 0x20)
			v ^= 1ull << VIRTIO_F_RING_PACKED;
		if (sub & 0x40)
			v = take(in, 8);
		z->packed = v & (1ull << VIRTIO_F_RING_PACKED);
		message(z, VU_SET_FEATURES, flags_of(f), 8, &v, 8, NULL, 0);
		return;
	case 1:
		v = sub & 0x10 ? VU_PROTOCOL_FEATURES
			       : VU_PROTOCOL_FEATURES & take(in, 8);
		if (sub & 0x40)
			v = take(in, 8);
		message(z, VU_SET_PROTOCOL_FEATURES, flags_of(f), 8, &v, 8,
			NULL, 0);
		return;
	case 2:
		message(z, VU_GET_FEATURES, flags_of(f), 0, NULL, 0, NULL, 0);
		return;
	default:
		message(z, VU_GET_PROTOCOL_FEATURES, flags_of(f), 0, NULL, 0,
			NULL, 0);
		return;
	}
}

static void op_config(struct fz *z, struct input *in)
{
	uint8_t f = take8(in);
	struct vu_config_wire c = {
		.offset = take8(in),
		.size = take8(in),
		.flags = f & 0x20 ? (uint32_t)take(in, 4) : (f >> 6) & 1,
	};
	uint32_t size;

	if (f & 0x10)
		c.offset = (uint32_t)take(in, 4);
	if (f & 0x80)
		c.size = (uint32_t)take(in, 4);
	for (unsigned i = 0; i < c.size && i < VU_MAX_CONFIG_SIZE; i++)
		c.payload[i] = take8(in);
	size = (uint32_t)VU_CONFIG_HDR_SIZE +
	       (c.size < VU_MAX_CONFIG_SIZE ? c.size : VU_MAX_CONFIG_SIZE);
	if (f & 4)
		size = take16(in) % (sizeof(c) + 8);
	message(z, f & 2 ? VU_SET_CONFIG : VU_GET_CONFIG, flags_of(f), size,
		&c, size < sizeof(c) ? size : sizeof(c), NULL, 0);
}

static void op_inflight(struct fz *z, struct input *in)
{
	uint8_t f = take8(in), qb = take8(in);
	struct vu_inflight_wire w = {
		.num_queues = take8(in) % (NQ + 2),
		.queue_size = qb < 0xf0 ? 1u << (qb % 8) : take16(in),
	};
	int fd;

	if (!(f & 2)) {
		message(z, VU_GET_INFLIGHT_FD, flags_of(f), sizeof(w), &w,
			sizeof(w), NULL, 0);
		return;
	}
	if (f & 4 && z->inflight_fd >= 0) {
		fd = z->inflight_fd;
		w.mmap_size = z->inflight_size;
	} else {
		fd = some_fd(z, take8(in));
		w.mmap_size = (uint64_t)take8(in) * PAGE;
	}
	if (f & 8)
		w.mmap_offset = (uint64_t)take8(in) * PAGE;
	if (f & 0x10)
		w.mmap_size = take(in, 8);
	message(z, VU_SET_INFLIGHT_FD, flags_of(f), sizeof(w), &w, sizeof(w),
		&fd, f & 0x20 ? 0 : 1);
}

static void op_log(struct fz *z, struct input *in)
{
	uint8_t f = take8(in);
	struct vu_log_wire w = {
		.mmap_size = (uint64_t)take8(in) * 64,
		.mmap_offset = (uint64_t)(take8(in) & 3) * PAGE,
	};
	int fd = some_fd(z, take8(in));

	if (f & 2)
		w.mmap_size = take(in, 8);
	if (f & 4)
		w.mmap_offset = take(in, 8);
	message(z, VU_SET_LOG_BASE, flags_of(f), sizeof(w), &w, sizeof(w), &fd,
		f & 8 ? 0 : 1);
}

static void op_simple(struct fz *z, struct input *in)
{
	static const uint32_t reqs[] = {
		VU_SET_OWNER,	  VU_RESET_OWNER,	VU_GET_QUEUE_NUM,
		VU_RESET_DEVICE,  VU_GET_MAX_MEM_SLOTS, VU_SET_STATUS,
		VU_GET_STATUS,	  VU_SET_BACKEND_REQ_FD,
	};
	uint8_t f = take8(in);
	uint32_t req = reqs[take8(in) % 8];
	uint64_t v = f & 0x80 ? take(in, 8) : take8(in);
	int sv[2];

	if (req == VU_SET_STATUS) {
		message(z, req, flags_of(f), 8, &v, 8, NULL, 0);
	} else if (req == VU_SET_BACKEND_REQ_FD) {
		unsigned k = f & 0x40 ? 1 : 0;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			abort();
		set_nonblock(sv[1]);
		close_fd(&z->chan[k]);
		z->chan[k] = sv[1];
		tmp_fd(z, sv[0]);
		message(z, req, flags_of(f), 0, NULL, 0, sv, 1);
	} else {
		message(z, req, flags_of(f), 0, NULL, 0, NULL, 0);
	}
}

/* Any header, any payload, any fds. */
static void op_raw(struct fz *z, struct input *in)
{
	uint8_t rb = take8(in), fb = take8(in), nfd = take8(in);
	uint32_t req = rb < 0xf0 ? rb % 42u : (uint32_t)take(in, 4);
	uint32_t flags = fb & 0x80 ? (uint32_t)take(in, 4) : fb & 0x0f;
	uint32_t size = take16(in) % 0x180;
	uint8_t payload[0x180];
	size_t plen = 0;
	int fds[VU_MAX_FDS + 3];
	unsigned n = nfd % (VU_MAX_FDS + 4);

	if (nfd & 0x80)
		size = (uint32_t)take(in, 4);
	for (unsigned i = 0; i < n; i++)
		fds[i] = some_fd(z, take8(in));
	while (plen < size && plen < sizeof(payload) && in->n)
		payload[plen++] = take8(in);
	message(z, req, flags, size, payload, plen, fds, n);
}

static void op_memfd(struct fz *z, struct input *in)
{
	uint8_t f = take8(in);
	unsigned s = f & 3;
	uint64_t pages = f & 0x40 ? take16(in) % (BIG_PAGES + 1)
				  : take8(in) % (MAX_PAGES + 1);

	close_fd(&z->mem[s]);
	z->mem[s] = new_memfd(pages * PAGE, f & 4, f & 8);
	z->mem_size[s] = pages * PAGE;
}

static void op_poke(struct fz *z, struct input *in)
{
	uint8_t f = take8(in), buf[256];
	unsigned slot = f % (N_MEM + 1);
	uint64_t off = f & 0x80 ? take(in, 4) : (uint64_t)take16(in) * 8;
	size_t len = take8(in);

	for (size_t i = 0; i < len; i++)
		buf[i] = take8(in);
	poke(z, slot, off, buf, len);
}

/* ------------------------------------------------------------ the target */

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

static struct vd_model *blk_model(void)
{
	const struct vd_device_type *t = vd_device_type_find("blk");
	struct vd_model *m = NULL;
	char err[256];
	void *o = t ? t->opts_new() : NULL;

	if (!o || t->opts_set(o, "disk", img_path, err, sizeof(err)) ||
	    t->opts_set(o, "num-queues", NQ == 2 ? "2" : "1", err,
			sizeof(err)) ||
	    t->opts_set(o, "queue-size", QSIZE, err, sizeof(err)) ||
	    t->create(o, &m, err, sizeof(err))) {
		fprintf(stderr, "fuzz_vhost_user: blk: %s\n", err);
		abort();
	}
	t->opts_free(o);
	return m;
}

static void remove_files(void)
{
	unlink(img_path);
	unlink(spare_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VIRTIOD_FUZZ_LOG");
	enum vd_log_level level = VD_LOG_ERR;
	int fd;

	(void)argc;
	(void)argv;
	/* Quiet by default; VIRTIOD_FUZZ_LOG=debug formats every line (run
	 * with -close_fd_mask=2 to keep the speed). */
	if (lvl)
		vd_log_level_parse(lvl, &level);
	vd_log_set_level(level);
	fd = mkstemp(img_path);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	fd = mkstemp(spare_path);
	if (fd < 0 || ftruncate(fd, 16 * PAGE) < 0)
		abort();
	close(fd);
	atexit(remove_files);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct fz z = {.peer = -1, .inflight_fd = -1};
	/* Counted around each input: libFuzzer and the sanitizers open fds
	 * of their own in between (the symbolizer's pipes). */
	int before = count_fds(), now;

	for (unsigned i = 0; i < N_MEM; i++)
		z.mem[i] = -1;
	for (unsigned i = 0; i < NQ; i++)
		z.kick[i] = -1;
	for (unsigned i = 0; i < N_CHAN; i++)
		z.chan[i] = -1;
	z.b = vu_backend_new("fuzz", blk_model());
	if (!z.b)
		abort();
	connect_frontend(&z);
	for (unsigned ops = 0; ops < MAX_OPS && in.n; ops++) {
		switch (take8(&in) % 14) {
		case 0:
			op_raw(&z, &in);
			break;
		case 1:
			op_memfd(&z, &in);
			break;
		case 2:
			op_poke(&z, &in);
			break;
		case 3:
			op_mem_table(&z, &in);
			break;
		case 4:
			op_mem_reg(&z, &in);
			break;
		case 5:
		case 6:
			op_vring(&z, &in);
			break;
		case 7:
			op_features(&z, &in);
			break;
		case 8:
			op_config(&z, &in);
			break;
		case 9:
			op_inflight(&z, &in);
			break;
		case 10:
			op_log(&z, &in);
			break;
		case 11:
			op_simple(&z, &in);
			break;
		case 12:
			op_request(&z, &in);
			break;
		default:
			/* QEMU's reconnect: the frontend goes and comes back
			 * with its memory and inflight area. */
			disconnect_frontend(&z);
			connect_frontend(&z);
			break;
		}
	}
	disconnect_frontend(&z);
	vu_backend_free(z.b);
	for (unsigned i = 0; i < N_MEM; i++)
		close_fd(&z.mem[i]);
	for (unsigned i = 0; i < NQ; i++)
		close_fd(&z.kick[i]);
	for (unsigned i = 0; i < N_CHAN; i++)
		close_fd(&z.chan[i]);
	close_fd(&z.inflight_fd);
	now = count_fds();
	if (now != before) {
		fprintf(stderr, "fuzz_vhost_user: %d fds open, %d before\n",
			now, before);
		list_fds();
		abort();
	}
	return 0;
}
