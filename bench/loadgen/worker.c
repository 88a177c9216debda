/* One worker thread per queue: keeps iodepth requests in flight, reaps
 * completions in batches, resubmits, and kicks once per batch, the way a
 * guest's blk-mq driver does. Nothing here allocates or locks. */
#include "loadgen.h"
#include "pattern.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LG_STALL_MS   10000 /* no completion for this long: give up */
#define LG_MAX_REPORT 3	    /* detailed messages per queue and kind */

uint64_t lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64*: fast, and per-queue state needs no lock */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static struct virtio_blk_outhdr *slot_hdr(struct lg_queue *q, unsigned s)
{
	return (struct virtio_blk_outhdr *)(q->hdrs + s * 64u);
}

static volatile uint8_t *slot_status(struct lg_queue *q, unsigned s)
{
	return q->hdrs + s * 64u + sizeof(struct virtio_blk_outhdr);
}

static uint8_t *slot_data(struct lg_queue *q, unsigned s)
{
	uint64_t stride = ((uint64_t)q->job->bs + 4095) & ~4095ull;
	return q->data + s * stride;
}

/* Fill slot s with the next request and queue its head. False when a
 * --once range is used up. */
static bool prepare(struct lg_queue *q, unsigned s, uint64_t now)
{
	const struct lg_job *job = q->job;
	uint64_t block;
	if (job->random) {
		if (job->once)
			return false; /* --once is sequential (checked in main)
				       */
		block = next_rand(&q->rng) % q->nblocks;
	} else {
		if (q->seq_next >= (job->once ? q->seq_end : q->nblocks)) {
			if (job->once)
				return false;
			q->seq_next = 0;
		}
		block = q->seq_next++;
	}
	bool is_read =
		job->read_pct == 100 ||
		(job->read_pct > 0 && next_rand(&q->rng) % 100 < job->read_pct);
	struct lg_req *r = &q->reqs[s];
	r->off = block * job->bs;
	r->is_read = is_read;
	r->t_submit = now;
	struct virtio_blk_outhdr *h = slot_hdr(q, s);
	h->type = is_read ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	h->ioprio = 0;
	h->sector = r->off / LG_SECTOR;
	*slot_status(q, s) = 0xff; /* a backend that never answers shows */
	struct vring_desc *d = &q->vq.desc[s * LG_CHAIN_LEN + 1];
	d->flags = VRING_DESC_F_NEXT | (is_read ? VRING_DESC_F_WRITE : 0);
	if (!is_read)
		lg_pattern_fill(slot_data(q, s), r->off, job->bs, job->seed);
	vuf_vq_add_head(&q->vq, (uint16_t)(s * LG_CHAIN_LEN));
	return true;
}

static void kick(struct lg_queue *q)
{
	if (vuf_vq_publish(&q->vq)) {
		uint64_t one = 1;
		if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one)) {
			q->fatal = -errno;
			fprintf(stderr, "vd-loadgen: q%u: kick: %s\n", q->index,
				strerror(errno));
		}
	}
}

static void complete(struct lg_queue *q, unsigned s, uint32_t len, uint64_t now,
		     bool counted)
{
	const struct lg_job *job = q->job;
	struct lg_req *r = &q->reqs[s];
	uint8_t status = *slot_status(q, s);
	/* virtio 1.2 §2.7.8: len is what the device wrote: data + status. */
	uint32_t want_len = r->is_read ? job->bs + 1 : 1;
	if (len != want_len && q->bad_len++ < LG_MAX_REPORT)
		fprintf(stderr,
			"vd-loadgen: q%u: %s at %" PRIu64 ": used len "
			"%u, expected %u\n",
			q->index, r->is_read ? "read" : "write", r->off, len,
			want_len);
	if (status != VIRTIO_BLK_S_OK) {
		if (q->io_errors++ < LG_MAX_REPORT)
			fprintf(stderr,
				"vd-loadgen: q%u: %s at %" PRIu64
				": status %u\n",
				q->index, r->is_read ? "read" : "write", r->off,
				status);
	} else if (r->is_read && job->verify_every &&
		   ++q->read_seen % job->verify_every == 0) {
		uint64_t bad;
		q->verified++;
		if (lg_pattern_check(slot_data(q, s), r->off, job->bs,
				     job->seed, &bad) < 0 &&
		    q->verify_errors++ < LG_MAX_REPORT) {
			const uint64_t *w = (const uint64_t *)(slot_data(q, s) +
							       (bad - r->off));
			fprintf(stderr,
				"vd-loadgen: q%u: read of %u bytes at "
				"%" PRIu64 ": wrong data at byte %" PRIu64
				": got %016" PRIx64 ", expected "
				"%016" PRIx64 "\n",
				q->index, job->bs, r->off, bad, *w,
				lg_pattern_word(bad, job->seed));
		}
	}
	if (!counted) {
		q->drained++;
		return;
	}
	lg_hist_add(&q->hist, now - r->t_submit);
	q->ops++;
	if (r->is_read)
		q->reads++;
	else
		q->writes++;
}

/* Sleep until the backend signals the call fd. Returns 0, or -ETIMEDOUT
 * after LG_STALL_MS without any signal. */
static int wait_call(struct lg_queue *q)
{
	if (!vuf_vq_arm(&q->vq))
		return 0;
	struct pollfd p = {.fd = q->call_fd, .events = POLLIN};
	for (int waited = 0; waited < LG_STALL_MS; waited += 1000) {
		int n = poll(&p, 1, 1000);
		if (n > 0) {
			uint64_t v;
			if (read(q->call_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				return -errno;
			return 0;
		}
		if (n < 0 && errno != EINTR)
			return -errno;
		/* Guards against a lost interrupt being mistaken for a
		 * stall: a used entry without a signal still ends the wait
		 * here, though a 1 s latency will show it. */
		if (!vuf_vq_arm(&q->vq))
			return 0;
	}
	return -ETIMEDOUT;
}

void *lg_queue_run(void *arg)
{
	struct lg_queue *q = arg;
	const struct lg_job *job = q->job;
	unsigned inflight = 0;
	bool stop = false;
	uint32_t slots[LG_MAX_QSIZE], lens[LG_MAX_QSIZE];
	uint64_t now = lg_now_ns();

	for (unsigned s = 0; s < job->iodepth && !stop; s++) {
		if (prepare(q, s, now)) {
			q->reqs[s].in_flight = true;
			inflight++;
		} else {
			stop = true;
		}
	}
	kick(q);
	while (inflight && !q->fatal) {
		unsigned n = 0;
		uint32_t id, len;
		while (n < job->iodepth && vuf_vq_reap(&q->vq, &id, &len) > 0) {
			unsigned s = id / LG_CHAIN_LEN;
			if (id % LG_CHAIN_LEN || s >= job->iodepth ||
			    !q->reqs[s].in_flight) {
				fprintf(stderr,
					"vd-loadgen: q%u: backend "
					"returned head %u, which is not "
					"in flight\n",
					q->index, id);
				q->fatal = -EPROTO;
				break;
			}
			q->reqs[s].in_flight = false;
			slots[n] = s;
			lens[n++] = len;
		}
		if (q->fatal)
			break;
		if (n == 0) {
			int rc = wait_call(q);
			if (rc < 0) {
				fprintf(stderr,
					"vd-loadgen: q%u: %u requests "
					"in flight and no completion "
					"for %d s\n",
					q->index, inflight, LG_STALL_MS / 1000);
				q->fatal = rc;
			}
			continue;
		}
		now = lg_now_ns();
		bool counted = job->once || now < q->deadline_ns;
		for (unsigned i = 0; i < n; i++)
			complete(q, slots[i], lens[i], now, counted);
		inflight -= n;
		if (!job->once && now >= q->deadline_ns)
			stop = true;
		for (unsigned i = 0; i < n && !stop; i++) {
			if (prepare(q, slots[i], now)) {
				q->reqs[slots[i]].in_flight = true;
				inflight++;
			} else {
				stop = true;
			}
		}
		kick(q);
	}
	q->end_ns = now;
	return NULL;
}
