/* Brings up a vhost-user-blk device the way QEMU's vhost_dev_start does:
 * negotiate, read the capacity from config space, share one memfd of guest
 * memory, build each queue's ring and fixed descriptor chains, start it. */
#include "loadgen.h"
#include "pattern.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Guest memory starts at 1 GiB, not 0, so a backend that confuses guest
 * addresses with offsets into the region fails loudly. */
#define LG_GPA_BASE (1ull << 30)
#define LG_HDR_SLOT 64u /* outhdr (16) + status (1), one cache line */
#define LG_PAGE	    4096u
/* Protocol features asked for: queues, acks, the capacity in config. */
#define LG_PROTOCOL_FEATURES                                                   \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) |                                  \
	 (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |                           \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIG))

static uint64_t align_page(uint64_t v)
{
	return (v + LG_PAGE - 1) & ~(uint64_t)(LG_PAGE - 1);
}

static unsigned pick_queue_size(const struct lg_job *job)
{
	if (job->queue_size)
		return job->queue_size;
	unsigned n = 128;
	while (n < job->iodepth * LG_CHAIN_LEN)
		n *= 2;
	return n;
}

/* Per-queue layout inside guest memory: ring, header records, data. */
struct q_layout {
	uint64_t ring, hdrs, data, end;
};

static struct q_layout layout(const struct lg_job *job, unsigned qsz,
			      uint64_t at)
{
	struct q_layout l;
	l.ring = at;
	l.hdrs = l.ring + vuf_vq_layout(false, qsz, LG_PAGE).bytes;
	l.data = l.hdrs + align_page((uint64_t)job->iodepth * LG_HDR_SLOT);
	l.end = l.data + (uint64_t)job->iodepth * align_page(job->bs);
	return l;
}

static void build_chains(struct lg_queue *q, unsigned iodepth, uint32_t bs)
{
	uint64_t stride = align_page(bs);
	for (unsigned s = 0; s < iodepth; s++) {
		struct vring_desc *d = &q->vq.desc[s * LG_CHAIN_LEN];
		uint16_t head = (uint16_t)(s * LG_CHAIN_LEN);
		d[0] = (struct vring_desc){
			.addr = q->hdrs_gpa + s * LG_HDR_SLOT,
			.len = sizeof(struct virtio_blk_outhdr),
			.flags = VRING_DESC_F_NEXT,
			.next = (uint16_t)(head + 1)};
		/* Direction (VRING_DESC_F_WRITE) is set per request. */
		d[1] = (struct vring_desc){.addr = q->data_gpa + s * stride,
					   .len = bs,
					   .flags = VRING_DESC_F_NEXT,
					   .next = (uint16_t)(head + 2)};
		d[2] = (struct vring_desc){
			.addr = q->hdrs_gpa + s * LG_HDR_SLOT +
				sizeof(struct virtio_blk_outhdr),
			.len = 1,
			.flags = VRING_DESC_F_WRITE};
	}
}

static int setup_queue(struct lg_dev *d, const struct lg_job *job, unsigned i,
		       unsigned qsz, struct q_layout l)
{
	struct lg_queue *q = &d->q[i];
	q->index = i;
	q->job = job;
	q->kick_fd = eventfd(0, EFD_CLOEXEC);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->reqs = calloc(job->iodepth, sizeof(*q->reqs));
	if (q->kick_fd < 0 || q->call_fd < 0 || !q->reqs) {
		perror("vd-loadgen: queue set-up");
		return -ENOMEM;
	}
	bool event_idx = d->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	/* Desc, avail and used on pages of their own, so the device's used
	 * writes do not share a line with our avail ring. */
	struct vuf_vq_layout vl = vuf_vq_layout(false, qsz, LG_PAGE);
	uint8_t *ring = d->mem.hva + l.ring;
	int rc = vuf_vq_init(&q->vq, false, qsz, ring + vl.desc,
			     ring + vl.driver, ring + vl.device, event_idx,
			     false);
	if (rc < 0)
		return rc;
	q->hdrs = d->mem.hva + l.hdrs;
	q->data = d->mem.hva + l.data;
	q->hdrs_gpa = LG_GPA_BASE + l.hdrs;
	q->data_gpa = LG_GPA_BASE + l.data;
	build_chains(q, job->iodepth, job->bs);
	/* Each queue starts at its own share of the region so sequential
	 * streams do not overlap; --once ends each at the next share. */
	q->seq_next = q->nblocks * i / d->nq;
	q->seq_end = q->nblocks * (i + 1) / d->nq;
	q->rng = (job->seed ^ 0x5851f42d4c957f2dull) * (i + 1) | 1;

	struct vuf_vring_setup s = {
		.index = i,
		.num = qsz,
		.base = 0,
		.desc_uaddr = (uintptr_t)(ring + vl.desc),
		.avail_uaddr = (uintptr_t)(ring + vl.driver),
		.used_uaddr = (uintptr_t)(ring + vl.device),
		.kick_fd = q->kick_fd,
		.call_fd = q->call_fd,
	};
	rc = vuf_setup_vring(&d->conn, &s);
	q->started = rc == 0;
	return rc;
}

static int negotiate(struct lg_dev *d, const struct lg_job *job)
{
	uint64_t offered = d->conn.dev_features;
	if (!(offered & (1ull << VIRTIO_F_VERSION_1))) {
		fprintf(stderr, "vd-loadgen: backend does not offer "
				"VIRTIO_F_VERSION_1 (legacy devices are not "
				"supported)\n");
		return -ENOTSUP;
	}
	if (job->read_pct < 100 && (offered & (1ull << VIRTIO_BLK_F_RO))) {
		fprintf(stderr, "vd-loadgen: the disk is read-only "
				"(VIRTIO_BLK_F_RO); use --rwmix 100\n");
		return -EROFS;
	}
	struct virtio_blk_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	/* Only up to num_queues: older backends know no later fields. */
	uint32_t cfg_len = offsetof(struct virtio_blk_config, num_queues) +
			   sizeof(cfg.num_queues);
	int rc = vuf_get_config(&d->conn, 0, &cfg, cfg_len);
	if (rc < 0)
		return rc;
	d->capacity = (uint64_t)cfg.capacity * LG_SECTOR;
	unsigned max_q = d->conn.max_queues;
	if (offered & (1ull << VIRTIO_BLK_F_MQ)) {
		if (cfg.num_queues && cfg.num_queues < max_q)
			max_q = cfg.num_queues;
	} else {
		max_q = 1;
	}
	if (job->queues > max_q) {
		fprintf(stderr,
			"vd-loadgen: %u queues asked, the backend has "
			"%u\n",
			job->queues, max_q);
		return -EINVAL;
	}
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) |
			(1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
			(1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_BLK_F_RO);
	if (!job->no_event_idx)
		want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	/* Linux acks FLUSH when offered and gets a writeback cache; without
	 * it a device must be writethrough (virtio 1.2 §5.2.5.1), which would
	 * time fdatasync instead of the backend. */
	if (!job->writethrough)
		want |= 1ull << VIRTIO_BLK_F_FLUSH;
	d->features = offered & want;
	return vuf_set_features(&d->conn, d->features);
}

int lg_dev_open(struct lg_dev *d, const struct lg_job *job)
{
	memset(d, 0, sizeof(*d));
	d->mem.fd = -1;
	d->conn.sock = -1;
	d->nq = job->queues;
	for (unsigned i = 0; i < LG_MAX_QUEUES; i++)
		d->q[i].kick_fd = d->q[i].call_fd = -1;
	int rc = vuf_connect(&d->conn, job->socket_path,
			     job->connect_timeout_ms, "vd-loadgen");
	if (rc == 0)
		rc = vuf_negotiate(&d->conn, LG_PROTOCOL_FEATURES);
	if (rc == 0)
		rc = negotiate(d, job);
	if (rc < 0)
		return rc;

	uint64_t region = job->region && job->region < d->capacity
				  ? job->region
				  : d->capacity;
	uint64_t nblocks = region / job->bs;
	if (nblocks == 0) {
		fprintf(stderr,
			"vd-loadgen: disk of %" PRIu64 " bytes holds "
			"no block of %u bytes\n",
			d->capacity, job->bs);
		return -EINVAL;
	}
	if (nblocks < d->nq) {
		fprintf(stderr,
			"vd-loadgen: %" PRIu64 " blocks for %u "
			"queues\n",
			nblocks, d->nq);
		return -EINVAL;
	}

	unsigned qsz = pick_queue_size(job);
	if (qsz > LG_MAX_QSIZE || (qsz & (qsz - 1)) ||
	    qsz < job->iodepth * LG_CHAIN_LEN) {
		fprintf(stderr,
			"vd-loadgen: queue size %u: need a power of two "
			">= 3 x iodepth and <= %u\n",
			qsz, LG_MAX_QSIZE);
		return -EINVAL;
	}
	struct q_layout l[LG_MAX_QUEUES];
	uint64_t at = 0;
	for (unsigned i = 0; i < d->nq; i++) {
		l[i] = layout(job, qsz, at);
		at = l[i].end;
	}
	uint64_t mem_size = (at + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
	rc = vuf_mem_new(&d->mem, "vd-loadgen-guest", mem_size, LG_GPA_BASE,
			 0);
	if (rc < 0) {
		perror("vd-loadgen: guest memory");
		return rc;
	}
	struct vuf_region r = vuf_mem_region(&d->mem);
	rc = vuf_set_mem_table(&d->conn, &r, 1);
	for (unsigned i = 0; rc == 0 && i < d->nq; i++) {
		d->q[i].nblocks = nblocks;
		rc = setup_queue(d, job, i, qsz, l[i]);
	}
	return rc;
}

void lg_dev_close(struct lg_dev *d)
{
	for (unsigned i = 0; i < d->nq; i++) {
		struct lg_queue *q = &d->q[i];
		uint32_t base;
		if (d->conn.sock >= 0 && q->started &&
		    vuf_get_vring_base(&d->conn, i, &base) < 0)
			break;
	}
	vuf_close(&d->conn);
	for (unsigned i = 0; i < d->nq; i++) {
		struct lg_queue *q = &d->q[i];
		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
		free(q->reqs);
	}
	vuf_mem_free(&d->mem);
}
