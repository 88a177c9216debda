/* The test frontend: vhost-user messages with SCM_RIGHTS, memfd guest
 * memory, split and packed rings written as a virtio driver writes them,
 * virtio-blk requests. Shares no code with the daemon it checks. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vu_test.h"

#define TIMEOUT_MS 5000

/* ------------------------------------------------------------ connection */

void fe_connect(struct fe *f, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};

	memset(f, 0, sizeof(*f));
	f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->sock >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(f->sock, (struct sockaddr *)&sa, sizeof(sa)),
			 0);
	setsockopt(f->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

void fe_close(struct fe *f)
{
	if (f->sock >= 0)
		close(f->sock);
	f->sock = -1;
}

int fe_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload,
	    uint32_t size, const int *fds, unsigned n_fds)
{
	struct wire_hdr h = {req, flags, size};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
	ssize_t n;

	memset(&cbuf, 0, sizeof(cbuf));
	if (n_fds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n == (ssize_t)(sizeof(h) + size) ? 0 : -EIO;
}

static int recv_all(int fd, void *buf, size_t len, int *rfd)
{
	size_t got = 0;

	while (got < len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr align;
		} cbuf;
		struct iovec iov = {(char *)buf + got, len - got};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf.buf,
				    .msg_controllen = sizeof(cbuf.buf)};
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) /
				      sizeof(int));

			for (int i = 0; i < k; i++) {
				int x;

				memcpy(&x, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(x));
				if (rfd && *rfd < 0)
					*rfd = x;
				else
					close(x);
			}
		}
		got += (size_t)n;
	}
	return 0;
}

int fe_recv(struct fe *f, struct wire_hdr *h, void *payload, size_t max,
	    int *fd, int timeout_ms)
{
	struct pollfd p = {f->sock, POLLIN, 0};
	int r;

	if (fd)
		*fd = -1;
	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	r = recv_all(f->sock, h, sizeof(*h), fd);
	if (r)
		return r;
	if (h->size > max)
		return -EMSGSIZE;
	r = recv_all(f->sock, payload, h->size, fd);
	return r ? r : (int)h->size;
}

bool fe_closed_by_peer(struct fe *f, int timeout_ms)
{
	struct pollfd p = {f->sock, POLLIN, 0};
	char c;

	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	/* A close with our bytes still unread arrives as a reset. */
	n = recv(f->sock, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

uint64_t fe_get_u64(struct fe *f, uint32_t req)
{
	struct wire_hdr h;
	uint64_t v = 0;

	assert_int_equal(fe_send(f, req, F_VERSION, NULL, 0, NULL, 0), 0);
	assert_int_equal(fe_recv(f, &h, &v, sizeof(v), NULL, TIMEOUT_MS), 8);
	assert_int_equal(h.request, req);
	assert_int_equal(h.flags, F_VERSION | F_REPLY);
	return v;
}

uint64_t fe_acked(struct fe *f, uint32_t req, const void *payload,
		  uint32_t size, const int *fds, unsigned n_fds)
{
	struct wire_hdr h;
	uint64_t v = 0;

	assert_int_equal(fe_send(f, req, F_VERSION | F_NEED_REPLY, payload,
				 size, fds, n_fds),
			 0);
	assert_int_equal(fe_recv(f, &h, &v, sizeof(v), NULL, TIMEOUT_MS), 8);
	assert_int_equal(h.request, req);
	return v;
}

void fe_set_u64(struct fe *f, uint32_t req, uint64_t v)
{
	/* With REPLY_ACK every request is confirmed, so a refusal shows up
	 * here and not three requests later. */
	if (f->protocol & (1ull << PF_REPLY_ACK))
		assert_int_equal(fe_acked(f, req, &v, sizeof(v), NULL, 0), 0);
	else
		assert_int_equal(
			fe_send(f, req, F_VERSION, &v, sizeof(v), NULL, 0), 0);
}

void fe_handshake(struct fe *f)
{
	uint64_t feat = fe_get_u64(f, REQ_GET_FEATURES), pf;

	assert_true(feat & (1ull << PROTOCOL_FEATURES_BIT));
	pf = fe_get_u64(f, REQ_GET_PROTOCOL_FEATURES);
	assert_int_equal(pf, EXPECTED_PROTOCOL_FEATURES);
	fe_set_u64(f, REQ_SET_PROTOCOL_FEATURES, pf);
	f->protocol = pf;
	assert_int_equal(fe_acked(f, REQ_SET_OWNER, NULL, 0, NULL, 0), 0);
}

void fe_set_features(struct fe *f, uint64_t virtio_features)
{
	f->features = virtio_features | (1ull << PROTOCOL_FEATURES_BIT);
	fe_set_u64(f, REQ_SET_FEATURES, f->features);
}

uint64_t blk_features(bool packed)
{
	return (1ull << VIRTIO_F_VERSION_1) |
	       (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
	       (1ull << VIRTIO_RING_F_EVENT_IDX) |
	       (1ull << VIRTIO_BLK_F_FLUSH) |
	       (1ull << VIRTIO_BLK_F_CONFIG_WCE) | (1ull << VIRTIO_BLK_F_MQ) |
	       (packed ? 1ull << VIRTIO_F_RING_PACKED : 0);
}

/* ---------------------------------------------------------------- memory */

void gmem_new(struct gmem *m, size_t size, uint64_t gpa)
{
	memset(m, 0, sizeof(*m));
	m->fd = memfd_create("vu-test-guest", MFD_CLOEXEC);
	assert_true(m->fd >= 0);
	assert_int_equal(ftruncate(m->fd, (off_t)size), 0);
	m->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	assert_true(m->hva != MAP_FAILED);
	m->size = size;
	m->gpa = gpa;
}

void gmem_free(struct gmem *m)
{
	if (m->hva)
		munmap(m->hva, m->size);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

uint64_t gmem_alloc(struct gmem *m, size_t size, size_t align)
{
	size_t at = (m->next + align - 1) & ~(align - 1);

	assert_true(at + size <= m->size);
	m->next = at + size;
	memset(m->hva + at, 0, size);
	return m->gpa + at;
}

void *gmem_hva(struct gmem *m, uint64_t gpa)
{
	assert_true(gpa >= m->gpa && gpa < m->gpa + m->size);
	return m->hva + (gpa - m->gpa);
}

struct wire_region gmem_region(const struct gmem *m)
{
	/* uaddr: our own mapping, as QEMU sends its own virtual address. */
	return (struct wire_region){m->gpa, m->size, (uintptr_t)m->hva, 0};
}

void fe_set_mem_table(struct fe *f, struct gmem *const *mems, unsigned n)
{
	struct {
		uint32_t nregions, padding;
		struct wire_region r[8];
	} t = {n, 0, {{0}}};
	int fds[8];

	for (unsigned i = 0; i < n; i++) {
		t.r[i] = gmem_region(mems[i]);
		fds[i] = mems[i]->fd;
	}
	assert_int_equal(fe_acked(f, REQ_SET_MEM_TABLE, &t,
				  8 + n * (uint32_t)sizeof(t.r[0]), fds, n),
			 0);
}

/* ----------------------------------------------------------------- rings */

void ring_init(struct ring *r, struct gmem *m, unsigned index, uint16_t num,
	       bool packed)
{
	assert_true(num <= RING_MAX);
	memset(r, 0, sizeof(*r));
	r->m = m;
	r->packed = packed;
	r->num = num;
	r->index = index;
	/* Each ring part on its own pages: dirty-log tests tell them apart. */
	if (packed) {
		r->desc_gpa = gmem_alloc(m, 16u * num, 4096);
		r->avail_gpa = gmem_alloc(m, 4, 4096); /* driver event area */
		r->used_gpa = gmem_alloc(m, 4, 4096);  /* device event area */
		r->avail_wrap = r->used_wrap = true;
	} else {
		r->desc_gpa = gmem_alloc(m, 16u * num, 4096);
		r->avail_gpa = gmem_alloc(m, 6 + 2u * num, 4096);
		r->used_gpa = gmem_alloc(m, 6 + 8u * num, 4096);
		for (uint16_t i = 0; i < num; i++) {
			struct vring_desc *d = gmem_hva(m, r->desc_gpa);

			d[i].next = (uint16_t)(i + 1);
		}
		r->n_free = num;
	}
	r->desc = gmem_hva(m, r->desc_gpa);
	r->avail = gmem_hva(m, r->avail_gpa);
	r->used = gmem_hva(m, r->used_gpa);
	r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(r->kick >= 0 && r->call >= 0);
}

void ring_free(struct ring *r)
{
	if (r->kick > 0)
		close(r->kick);
	if (r->call > 0)
		close(r->call);
	r->kick = r->call = -1;
}

void fe_setup_ring(struct fe *f, struct ring *r, uint32_t base, bool log,
		   bool enable)
{
	uint32_t st[2] = {r->index, r->num};
	struct wire_vring_addr a = {
		.index = r->index,
		.flags = log ? 1u << 0 : 0,
		.desc = (uintptr_t)r->desc,
		.used = (uintptr_t)r->used,
		.avail = (uintptr_t)r->avail,
		.log = r->used_gpa,
	};
	uint64_t idx = r->index;

	assert_int_equal(fe_acked(f, REQ_SET_VRING_NUM, st, 8, NULL, 0), 0);
	st[1] = base;
	assert_int_equal(fe_acked(f, REQ_SET_VRING_BASE, st, 8, NULL, 0), 0);
	assert_int_equal(
		fe_acked(f, REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(fe_acked(f, REQ_SET_VRING_KICK, &idx, 8, &r->kick, 1),
			 0);
	assert_int_equal(fe_acked(f, REQ_SET_VRING_CALL, &idx, 8, &r->call, 1),
			 0);
	if (enable) {
		st[1] = 1;
		assert_int_equal(
			fe_acked(f, REQ_SET_VRING_ENABLE, st, 8, NULL, 0), 0);
	}
}

static int split_add(struct ring *r, const struct buf *bufs, unsigned n)
{
	struct vring_desc *desc = r->desc;
	struct vring_avail *avail = r->avail;
	uint16_t head = r->free_head, i = head;

	assert_true(n && n <= r->n_free);
	for (unsigned k = 0; k < n; k++) {
		desc[i].addr = htole64(bufs[k].gpa);
		desc[i].len = htole32(bufs[k].len);
		desc[i].flags =
			htole16((bufs[k].write ? VRING_DESC_F_WRITE : 0) |
				(k + 1 < n ? VRING_DESC_F_NEXT : 0));
		if (k + 1 < n)
			i = le16toh(desc[i].next);
	}
	r->free_head = le16toh(desc[i].next);
	r->n_free = (uint16_t)(r->n_free - n);
	r->chain_len[head] = (uint16_t)n;
	avail->ring[r->avail_idx % r->num] = htole16(head);
	r->avail_idx++;
	__atomic_store_n(&avail->idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
	return head;
}

static int packed_add(struct ring *r, const struct buf *bufs, unsigned n)
{
	struct vring_packed_desc *desc = r->desc;
	uint16_t id = r->next_id, first = r->avail_pos, first_flags = 0;
	unsigned tries = 0;

	while (r->id_busy[id] && tries++ < r->num)
		id = (uint16_t)((id + 1) % r->num);
	assert_false(r->id_busy[id]);
	r->next_id = (uint16_t)((id + 1) % r->num);
	for (unsigned k = 0; k < n; k++) {
		uint16_t pos = r->avail_pos;
		uint16_t fl =
			(uint16_t)((bufs[k].write ? VRING_DESC_F_WRITE : 0) |
				   (k + 1 < n ? VRING_DESC_F_NEXT : 0));

		fl |= r->avail_wrap ? 1u << VRING_PACKED_DESC_F_AVAIL
				    : 1u << VRING_PACKED_DESC_F_USED;
		desc[pos].addr = htole64(bufs[k].gpa);
		desc[pos].len = htole32(bufs[k].len);
		desc[pos].id = htole16(id);
		if (k == 0)
			first_flags = fl;
		else
			desc[pos].flags = htole16(fl);
		if (++r->avail_pos == r->num) {
			r->avail_pos = 0;
			r->avail_wrap = !r->avail_wrap;
		}
	}
	/* The head's flags last: the device sees the whole chain at once. */
	__atomic_store_n(&desc[first].flags, htole16(first_flags),
			 __ATOMIC_RELEASE);
	r->id_busy[id] = true;
	r->id_ndesc[id] = (uint16_t)n;
	return id;
}

int ring_add(struct ring *r, const struct buf *bufs, unsigned n)
{
	return r->packed ? packed_add(r, bufs, n) : split_add(r, bufs, n);
}

void ring_kick(struct ring *r)
{
	uint64_t one = 1;

	assert_int_equal(write(r->kick, &one, sizeof(one)), sizeof(one));
}

uint16_t ring_used_idx(const struct ring *r)
{
	const struct vring_used *u = r->used;

	return le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE));
}

static bool split_used(struct ring *r, uint16_t *token, uint32_t *len)
{
	struct vring_used *u = r->used;
	struct vring_desc *desc = r->desc;
	uint16_t head, i;

	if (ring_used_idx(r) == r->last_used)
		return false;
	head = (uint16_t)le32toh(u->ring[r->last_used % r->num].id);
	*len = le32toh(u->ring[r->last_used % r->num].len);
	r->last_used++;
	assert_true(head < r->num);
	/* Return the chain to the free list. */
	i = head;
	for (uint16_t k = 1; k < r->chain_len[head]; k++)
		i = le16toh(desc[i].next);
	desc[i].next = htole16(r->free_head);
	r->free_head = head;
	r->n_free = (uint16_t)(r->n_free + r->chain_len[head]);
	*token = head;
	return true;
}

static bool packed_used(struct ring *r, uint16_t *token, uint32_t *len)
{
	struct vring_packed_desc *desc = r->desc;
	uint16_t fl = le16toh(
		__atomic_load_n(&desc[r->used_pos].flags, __ATOMIC_ACQUIRE));
	bool avail = fl & (1u << VRING_PACKED_DESC_F_AVAIL);
	bool used = fl & (1u << VRING_PACKED_DESC_F_USED);
	uint16_t id;

	if (avail != used || used != r->used_wrap)
		return false;
	id = le16toh(desc[r->used_pos].id);
	*len = le32toh(desc[r->used_pos].len);
	assert_true(id < r->num && r->id_busy[id]);
	r->id_busy[id] = false;
	r->used_pos = (uint16_t)(r->used_pos + r->id_ndesc[id]);
	if (r->used_pos >= r->num) {
		r->used_pos = (uint16_t)(r->used_pos - r->num);
		r->used_wrap = !r->used_wrap;
	}
	*token = id;
	return true;
}

bool ring_peek_used(const struct ring *r)
{
	const struct vring_packed_desc *desc = r->desc;
	uint16_t fl;

	if (!r->packed)
		return ring_used_idx(r) != r->last_used;
	fl = le16toh(
		__atomic_load_n(&desc[r->used_pos].flags, __ATOMIC_ACQUIRE));
	return !!(fl & (1u << VRING_PACKED_DESC_F_AVAIL)) == r->used_wrap &&
	       !!(fl & (1u << VRING_PACKED_DESC_F_USED)) == r->used_wrap;
}

bool ring_get_used(struct ring *r, uint16_t *token, uint32_t *len,
		   int timeout_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {r->call, POLLIN, 0};
		uint64_t cnt;

		if (r->packed ? packed_used(r, token, len)
			      : split_used(r, token, len))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			    (t.tv_nsec - t0.tv_nsec) / 1000000 >=
		    timeout_ms)
			return false;
		/* Interrupts may be suppressed (EVENT_IDX): poll briefly. */
		if (poll(&p, 1, 5) > 0 && read(r->call, &cnt, sizeof(cnt)) < 0)
			cnt = 0;
	}
}

/* ------------------------------------------------------------------- blk */

void blk_submit_at(struct ring *r, struct blk_req *q, uint32_t type,
		   uint64_t sector, uint64_t data_gpa, uint32_t len,
		   uint64_t hdr_gpa, uint64_t status_gpa)
{
	struct virtio_blk_outhdr *h;
	struct buf b[3];
	unsigned n = 0;

	q->hdr_gpa = hdr_gpa;
	q->status_gpa = status_gpa;
	q->data_gpa = data_gpa;
	q->type = type;
	q->len = len;
	h = gmem_hva(r->m, q->hdr_gpa);
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	*(uint8_t *)gmem_hva(r->m, q->status_gpa) = 0xff;
	b[n++] = (struct buf){q->hdr_gpa, sizeof(*h), false};
	if (len)
		b[n++] = (struct buf){data_gpa, len, type != VIRTIO_BLK_T_OUT};
	b[n++] = (struct buf){q->status_gpa, 1, true};
	q->token = ring_add(r, b, n);
}

void blk_submit(struct ring *r, struct blk_req *q, uint32_t type,
		uint64_t sector, uint64_t data_gpa, uint32_t len)
{
	uint64_t hdr = gmem_alloc(r->m, sizeof(struct virtio_blk_outhdr), 16);

	blk_submit_at(r, q, type, sector, data_gpa, len, hdr,
		      gmem_alloc(r->m, 1, 1));
}

uint8_t blk_wait(struct ring *r, struct blk_req *q)
{
	uint16_t token;
	uint32_t len;
	uint8_t st;
	bool reads =
		q->type == VIRTIO_BLK_T_IN || q->type == VIRTIO_BLK_T_GET_ID;

	assert_true(ring_get_used(r, &token, &len, TIMEOUT_MS));
	assert_int_equal(token, q->token);
	st = *(uint8_t *)gmem_hva(r->m, q->status_gpa);
	/* §5.2.6: the used length counts what the device wrote: the data of
	 * a read and the status byte. */
	if (st == VIRTIO_BLK_S_OK && q->type != VIRTIO_BLK_T_GET_ID)
		assert_int_equal(len, 1 + (reads ? q->len : 0));
	return st;
}

uint8_t blk_do(struct ring *r, uint32_t type, uint64_t sector,
	       uint64_t data_gpa, uint32_t len)
{
	struct blk_req q;

	blk_submit(r, &q, type, sector, data_gpa, len);
	ring_kick(r);
	return blk_wait(r, &q);
}

void fill_pattern(void *p, size_t len, uint32_t seed)
{
	uint8_t *b = p;
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

bool check_pattern(const void *p, size_t len, uint32_t seed)
{
	uint8_t *want = malloc(len);
	bool ok;

	assert_non_null(want);
	fill_pattern(want, len, seed);
	ok = memcmp(p, want, len) == 0;
	free(want);
	return ok;
}

bool image_has_pattern(const struct daemon *d, uint64_t sector, size_t len,
		       uint32_t seed)
{
	uint8_t *buf = malloc(len);
	int fd = open(d->img, O_RDONLY | O_CLOEXEC);
	bool ok;

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)(sector * SECTOR)),
			 (ssize_t)len);
	close(fd);
	ok = check_pattern(buf, len, seed);
	free(buf);
	return ok;
}

/* --------------------------------------------------------------- devices */

void env_open(struct env *e, unsigned nq, bool packed, uint16_t num)
{
	struct gmem *mems[1] = {&e->m};

	e->nq = nq;
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(packed));
	gmem_new(&e->m, 64u << 20, 0x100000000ull);
	fe_set_mem_table(&e->f, mems, 1);
	for (unsigned i = 0; i < nq; i++) {
		ring_init(&e->r[i], &e->m, i, num, packed);
		fe_setup_ring(&e->f, &e->r[i], packed ? 0x80008000u : 0, false,
			      true);
	}
}

void env_close(struct env *e)
{
	fe_close(&e->f);
	for (unsigned i = 0; i < e->nq; i++)
		ring_free(&e->r[i]);
	gmem_free(&e->m);
	e->nq = 0;
}
