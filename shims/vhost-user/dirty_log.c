/* Dirty-page logging for live migration ("Migration"): with LOG_ALL each
 * guest page the device writes is marked, atomically, never outside the
 * bitmap; a replaced log is unmapped only once no queue thread uses it. */
#include <errno.h>
#include <inttypes.h>
#include <linux/vhost_types.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "connection.h"
#include "dirty_log.h"
#include "vring.h"

bool vu_log_active(const struct vu_backend *b)
{
	return (b->features & (1ull << VHOST_F_LOG_ALL)) &&
	       atomic_load(&((struct vu_backend *)b)->log) != NULL;
}

/* After the log pointer was swapped: wait until no queue thread is inside
 * vu_log_write with the old one. A thread inside has an odd log_seq; one
 * that enters later sees the new pointer. */
static void log_quiesce(struct vu_backend *b)
{
	for (unsigned i = 0; i < b->num_queues; i++) {
		uint64_t s = atomic_load(&b->vrings[i].log_seq);

		while ((s & 1) && atomic_load(&b->vrings[i].log_seq) == s)
			sched_yield();
	}
}

static void log_free(struct vu_log_map *l)
{
	if (!l)
		return;
	munmap(l->map_base, l->map_len);
	free(l);
}

void vu_log_unmap(struct vu_backend *b)
{
	struct vu_log_map *old = atomic_exchange(&b->log, NULL);

	log_quiesce(b);
	log_free(old);
}

int vu_set_log_base(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen)
{
	const struct vu_log_wire *w = &m->p.log;
	struct vu_log_map *l, *old;
	char detail[160];
	struct stat st;

	if (vu_fd_check_range(b, "dirty log", m->fds[0], w->mmap_offset,
			      w->mmap_size, detail, sizeof(detail), &st) < 0) {
		snprintf(why, whylen, "log %s", detail);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	l->bits = vu_map_fd(m->fds[0], w->mmap_offset, w->mmap_size, &st,
			    &l->map_base, &l->map_len, detail, sizeof(detail));
	if (!l->bits) {
		free(l);
		snprintf(why, whylen, "log: %s", detail);
		return -EINVAL;
	}
	l->size = w->mmap_size;
	old = atomic_exchange(&b->log, l);
	log_quiesce(b);
	log_free(old);
	vd_debug(b->who,
		 "dirty log: %" PRIu64 " bytes (guest memory up to "
		 "0x%" PRIx64 ")",
		 l->size, l->size * 8 * VU_LOG_PAGE);
	vu_rings_update_logging(b);
	/* QEMU waits for this reply when LOG_SHMFD is negotiated. */
	r->hdr.size = sizeof(uint64_t);
	r->p.u64 = 0;
	return 0;
}

/* The core's log_write hook, on a queue thread: the device wrote guest
 * range [gpa, gpa+len). "page = addr / VHOST_LOG_PAGE; log[page / 8] |= 1
 * << page % 8", atomically since other writers share the bitmap. */
void vu_log_write(void *ctx, uint64_t gpa, uint64_t len)
{
	struct vu_vring *vr = ctx;
	struct vu_backend *b = vr->b;
	struct vu_log_map *l;
	uint64_t first, last, end;

	if (!len)
		return;
	atomic_fetch_add(&vr->log_seq, 1); /* odd: inside */
	l = atomic_load(&b->log);
	if (!l)
		goto out;
	if (__builtin_add_overflow(gpa, len - 1, &end))
		end = UINT64_MAX;
	first = gpa / VU_LOG_PAGE;
	last = end / VU_LOG_PAGE;
	if (last / 8 >= l->size) {
		vd_log_ratelimited(&vr->rl, VD_LOG_WARN, vr->who,
				   "write at 0x%" PRIx64 "+0x%" PRIx64
				   " beyond the %" PRIu64 "-byte dirty log",
				   gpa, len, l->size);
		if (first / 8 >= l->size)
			goto out;
		last = l->size * 8 - 1;
	}
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&l->bits[p / 8], (uint8_t)(1u << (p % 8)),
				  __ATOMIC_RELAXED);
out:
	atomic_fetch_add_explicit(&vr->log_seq, 1, memory_order_release);
}
