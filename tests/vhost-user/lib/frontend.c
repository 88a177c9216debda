/* The test frontend: the vhost-user frontend library (memfd guest memory,
 * split and packed rings written as a virtio driver writes them) with
 * every failure failing the test, and virtio-blk requests. Shares no code
 * with the daemon it checks. */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vu_test.h"

#define TIMEOUT_MS 5000

/* ------------------------------------------------------------ connection */

void fe_connect(struct vuf_conn *f, const char *path)
{
	assert_int_equal(vuf_connect(f, path, 0, NULL), 0);
}

bool fe_closed_by_peer(struct vuf_conn *f, int timeout_ms)
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

uint64_t fe_get_u64(struct vuf_conn *f, uint32_t req)
{
	struct vhost_user_hdr h;
	uint64_t v = 0;

	assert_int_equal(vuf_send(f, req, VHOST_USER_VERSION, NULL, 0, NULL, 0),
			 0);
	assert_int_equal(vuf_recv(f, &h, &v, sizeof(v), NULL, TIMEOUT_MS), 8);
	assert_int_equal(h.request, req);
	assert_int_equal(h.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	return v;
}

uint64_t fe_acked(struct vuf_conn *f, uint32_t req, const void *payload,
		  uint32_t size, const int *fds, unsigned n_fds)
{
	uint64_t v = 0;

	assert_int_equal(
		vuf_request_acked(f, req, payload, size, fds, n_fds, &v), 0);
	return v;
}

void fe_set_u64(struct vuf_conn *f, uint32_t req, uint64_t v)
{
	/* With REPLY_ACK every request is confirmed, so a refusal shows up
	 * here and not three requests later. */
	assert_int_equal(vuf_set_u64(f, req, v), 0);
}

void fe_handshake(struct vuf_conn *f)
{
	uint64_t feat = fe_get_u64(f, VHOST_USER_GET_FEATURES), pf;

	assert_true(feat & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	f->dev_features = feat;
	pf = fe_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
	assert_int_equal(pf, EXPECTED_PROTOCOL_FEATURES);
	fe_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, pf);
	f->protocol = pf;
	assert_int_equal(fe_acked(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0),
			 0);
}

void fe_set_features(struct vuf_conn *f, uint64_t virtio_features)
{
	fe_set_u64(f, VHOST_USER_SET_FEATURES,
		   virtio_features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
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

void gmem_new(struct vuf_mem *m, size_t size, uint64_t gpa)
{
	assert_int_equal(vuf_mem_new(m, "vu-test-guest", size, gpa, 0), 0);
}

void gmem_free(struct vuf_mem *m)
{
	vuf_mem_free(m);
}

uint64_t gmem_alloc(struct vuf_mem *m, size_t size, size_t align)
{
	uint64_t gpa = 0;

	assert_int_equal(vuf_mem_alloc(m, size, align, &gpa), 0);
	return gpa;
}

void *gmem_hva(struct vuf_mem *m, uint64_t gpa)
{
	void *p = vuf_mem_hva(m, gpa, 1);

	assert_non_null(p);
	return p;
}

struct vhost_user_memory_region gmem_region(const struct vuf_mem *m)
{
	struct vuf_region r = vuf_mem_region(m);

	return vuf_region_wire(&r);
}

void fe_set_mem_table(struct vuf_conn *f, struct vuf_mem *const *mems,
		      unsigned n)
{
	struct vuf_region r[VHOST_USER_MAX_REGIONS];

	assert_true(n <= VHOST_USER_MAX_REGIONS);
	for (unsigned i = 0; i < n; i++)
		r[i] = vuf_mem_region(mems[i]);
	assert_int_equal(vuf_set_mem_table(f, r, n), 0);
}

/* ----------------------------------------------------------------- rings */

void ring_init(struct ring *r, struct vuf_mem *m, unsigned index, uint16_t num,
	       bool packed)
{
	size_t dl, al, ul;

	assert_true(num <= RING_MAX);
	memset(r, 0, sizeof(*r));
	r->m = m;
	r->index = index;
	/* Each ring part on its own pages: dirty-log tests tell them apart. */
	vuf_vq_sizes(packed, num, &dl, &al, &ul);
	r->desc_gpa = gmem_alloc(m, dl, 4096);
	r->avail_gpa = gmem_alloc(m, al, 4096); /* packed: driver event area */
	r->used_gpa = gmem_alloc(m, ul, 4096);	/* packed: device event area */
	assert_int_equal(vuf_vq_init(&r->vq, packed, num,
				     gmem_hva(m, r->desc_gpa),
				     gmem_hva(m, r->avail_gpa),
				     gmem_hva(m, r->used_gpa), false, true),
			 0);
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
	vuf_vq_free(&r->vq);
}

void fe_setup_ring(struct vuf_conn *f, struct ring *r, uint32_t base, bool log,
		   bool enable)
{
	struct vhost_vring_addr a = {
		.index = r->index,
		.flags = log ? 1u << VHOST_VRING_F_LOG : 0,
		.desc_user_addr = (uintptr_t)r->vq.desc,
		.used_user_addr = (uintptr_t)r->vq.used,
		.avail_user_addr = (uintptr_t)r->vq.avail,
		.log_guest_addr = r->used_gpa,
	};

	assert_int_equal(vuf_set_vring_state(f, VHOST_USER_SET_VRING_NUM,
					     r->index, r->vq.num),
			 0);
	assert_int_equal(vuf_set_vring_state(f, VHOST_USER_SET_VRING_BASE,
					     r->index, base),
			 0);
	assert_int_equal(vuf_set_vring_addr(f, &a), 0);
	assert_int_equal(vuf_set_vring_fd(f, VHOST_USER_SET_VRING_KICK,
					  r->index, r->kick),
			 0);
	assert_int_equal(vuf_set_vring_fd(f, VHOST_USER_SET_VRING_CALL,
					  r->index, r->call),
			 0);
	if (enable)
		assert_int_equal(
			vuf_set_vring_state(f, VHOST_USER_SET_VRING_ENABLE,
					    r->index, 1),
			0);
}

int ring_add(struct ring *r, const struct buf *bufs, unsigned n)
{
	struct vuf_buf vb[8];
	int token;

	assert_true(n && n <= 8);
	for (unsigned i = 0; i < n; i++)
		vb[i] = (struct vuf_buf){bufs[i].gpa, bufs[i].len,
					 bufs[i].write};
	token = vuf_vq_add(&r->vq, vb, n);
	assert_true(token >= 0);
	vuf_vq_publish(&r->vq); /* the tests kick themselves */
	return token;
}

void ring_kick(struct ring *r)
{
	uint64_t one = 1;

	assert_int_equal(write(r->kick, &one, sizeof(one)), sizeof(one));
}

uint16_t ring_used_idx(const struct ring *r)
{
	return vuf_vq_used_idx(&r->vq);
}

bool ring_peek_used(const struct ring *r)
{
	return vuf_vq_pending(&r->vq);
}

bool ring_get_used(struct ring *r, uint16_t *token, uint32_t *len,
		   int timeout_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {r->call, POLLIN, 0};
		uint32_t tok;
		uint64_t cnt;
		int rc = vuf_vq_reap(&r->vq, &tok, len);

		assert_true(rc >= 0); /* a token the device does not hold */
		if (rc) {
			*token = (uint16_t)tok;
			return true;
		}
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
