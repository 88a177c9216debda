/* The restart record: a file under /run/virtiod, mapped shared for the life
 * of the server, naming the IOREQ server and holding the device's registers
 * and each queue's in-flight chains (a core inflight region, split or
 * packed), so a successor can take the device over after a crash. Queue
 * threads only store to their own queue's region; no system call is made
 * on the data path. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtiod/inflight.h"

#include "state.h"

#define MAGIC "VDXENST1"
/* 2: each queue's in-flight chains are a core inflight region
 * (virtiod/inflight.h), packed rings included. */
#define VERSION 2u

struct file_hdr {
	char magic[8];
	uint32_t version;
	int32_t server_id;
	uint8_t dom_handle[16];
	uint32_t have_device; /* the registers below are meaningful */
	uint32_t clean; /* a handover drained every queue: positions exact */
	uint32_t nq, qmax;
	struct vd_mmio_state st;
};

#define ALIGN64(n) (((n) + 63) & ~(size_t)63)
#define HDR_SIZE   ALIGN64(sizeof(struct file_hdr))
#define QS_SIZE	   ALIGN64(sizeof(struct vd_mmio_queue_state))

/* Per queue: its registers (and positions at start), then its inflight
 * region, written by the queue's thread only. Room for a packed region,
 * the larger: the layout is chosen at FEATURES_OK, after the file is. */
static size_t region_size(unsigned qmax)
{
	return vd_inflight_region_size(VD_VQ_PACKED, (uint16_t)qmax);
}

static size_t area_size(unsigned qmax)
{
	return QS_SIZE + region_size(qmax);
}

static size_t file_size(unsigned nq, unsigned qmax)
{
	return HDR_SIZE + (size_t)nq * area_size(qmax);
}

static struct vd_mmio_queue_state *area_qs(uint8_t *map, unsigned qmax,
					   unsigned i)
{
	return (struct vd_mmio_queue_state *)(map + HDR_SIZE +
					      (size_t)i * area_size(qmax));
}

static void *area_region(uint8_t *map, unsigned qmax, unsigned i)
{
	return (uint8_t *)area_qs(map, qmax, i) + QS_SIZE;
}

/* Per queue, private to its thread once it runs. */
struct vd_xen_qtrack {
	struct vd_inflight *inflight;
	uint16_t *requeue; /* qmax: heads to serve again, till started */
	char who[24];
};

struct vd_xen_state {
	char path[512];
	int fd;
	uint8_t *map;
	size_t len;
	unsigned nq, qmax;
	struct vd_xen_qtrack *tr; /* nq */
};

void vd_xen_state_path(char *buf, size_t len, const char *dir, uint32_t domid,
		       uint64_t base)
{
	snprintf(buf, len, "%s/xen-%u-%" PRIx64 ".state",
		 dir ? dir : VD_XEN_STATE_DIR, domid, base);
}

/* Only root or we may have written it: anyone else could plant a record
 * that steers a restart, or a symlink that aims our writes elsewhere. */
static bool trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

int vd_xen_state_check(const char *path, char *why, size_t len)
{
	char dir[512];
	struct stat sb;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (lstat(dir, &sb) < 0) {
		snprintf(why, len, "state directory %s: %s", dir,
			 strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(why, len,
			 "state directory %s is not a directory (a symlink?); "
			 "use a real directory owned by root",
			 dir);
		return -ENOTDIR;
	}
	if (!trusted_owner(sb.st_uid)) {
		snprintf(why, len,
			 "state directory %s is owned by uid %u, not root or "
			 "uid %u; chown it or choose another --state-dir",
			 dir, (unsigned)sb.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	/* Others may create names in a sticky directory but not replace
	 * ours; O_EXCL and O_NOFOLLOW below handle what they can create. */
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) && !(sb.st_mode & S_ISVTX)) {
		snprintf(why, len,
			 "state directory %s is writable by group or others "
			 "(mode %04o); chmod go-w it or choose another "
			 "--state-dir",
			 dir, (unsigned)(sb.st_mode & 07777));
		return -EPERM;
	}
	if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		snprintf(why, len,
			 "%s is not a regular file (a symlink?); remove it",
			 path);
		return -ELOOP;
	}
	if (lstat(path, &sb) == 0 && !trusted_owner(sb.st_uid)) {
		snprintf(why, len,
			 "%s is owned by uid %u, not root or uid %u; remove it",
			 path, (unsigned)sb.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

int vd_xen_prev_load(const char *path, struct vd_xen_prev *p)
{
	struct file_hdr *h;
	struct stat sb;
	int fd;

	memset(p, 0, sizeof(*p));
	p->server_id = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    !trusted_owner(sb.st_uid)) {
		close(fd);
		return -EPERM;
	}
	if ((size_t)sb.st_size < sizeof(*h) || sb.st_size > (64 << 20)) {
		close(fd);
		return -EINVAL;
	}
	p->len = (size_t)sb.st_size;
	p->data = malloc(p->len);
	if (!p->data || pread(fd, p->data, p->len, 0) != (ssize_t)p->len) {
		close(fd);
		vd_xen_prev_free(p);
		return -EINVAL;
	}
	close(fd);
	h = (struct file_hdr *)p->data;
	/* Our own file, but check it as if it were not: a torn or foreign
	 * file must not steer the restart. */
	if (memcmp(h->magic, MAGIC, 8) || h->version != VERSION ||
	    h->nq > 4096 || h->qmax > VD_VQ_MAX_SIZE ||
	    file_size(h->nq, h->qmax) != p->len || h->server_id < -1 ||
	    h->server_id > 0xffff) {
		vd_xen_prev_free(p);
		return -EINVAL;
	}
	p->server_id = h->server_id;
	memcpy(p->dom_handle, h->dom_handle, 16);
	p->have_device = h->have_device;
	p->clean = h->clean;
	p->nq = h->nq;
	p->qmax = h->qmax;
	p->st = h->st;
	return 0;
}

void vd_xen_prev_free(struct vd_xen_prev *p)
{
	free(p->data);
	p->data = NULL;
	p->server_id = -1;
}

void vd_xen_prev_queue(const struct vd_xen_prev *p, unsigned i,
		       struct vd_mmio_queue_state *qs)
{
	*qs = *area_qs(p->data, p->qmax, i);
}

const void *vd_xen_prev_inflight(const struct vd_xen_prev *p, unsigned i)
{
	if (p->clean || i >= p->nq || !area_qs(p->data, p->qmax, i)->ready)
		return NULL;
	return area_region(p->data, p->qmax, i);
}

int vd_xen_state_create(const char *path, unsigned nq, unsigned qmax,
			struct vd_xen_state **out)
{
	struct vd_xen_state *s = calloc(1, sizeof(*s));
	struct file_hdr *h;
	char tmp[600];
	int rc;

	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->nq = nq;
	s->qmax = qmax;
	s->len = file_size(nq, qmax);
	s->tr = calloc(nq ? nq : 1, sizeof(*s->tr));
	if (!s->tr) {
		free(s);
		return -ENOMEM;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	/* Written beside under a fresh name (mkostemp: O_CREAT | O_EXCL, so
	 * never through a planted symlink) and renamed over, which replaces
	 * a name and never follows one: the predecessor's file stays whole
	 * until ours is. */
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	s->fd = mkostemp(tmp, O_CLOEXEC);
	if (s->fd < 0) {
		rc = -errno;
		tmp[0] = '\0';
		goto fail;
	}
	if (ftruncate(s->fd, (off_t)s->len) < 0) {
		rc = -errno;
		goto fail;
	}
	s->map = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
		      0);
	if (s->map == MAP_FAILED) {
		rc = -errno;
		s->map = NULL;
		goto fail;
	}
	h = (struct file_hdr *)s->map;
	memcpy(h->magic, MAGIC, 8);
	h->version = VERSION;
	h->server_id = -1;
	h->nq = nq;
	h->qmax = qmax;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	for (unsigned i = 0; i < nq; i++) {
		snprintf(s->tr[i].who, sizeof(s->tr[i].who), "restart q%u", i);
		s->tr[i].requeue = calloc(qmax ? qmax : 1, sizeof(uint16_t));
		if (!s->tr[i].requeue) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	if (tmp[0])
		unlink(tmp);
	s->path[0] = '\0';
	vd_xen_state_close(s, false);
	return rc;
}

void vd_xen_state_close(struct vd_xen_state *s, bool remove)
{
	if (!s)
		return;
	if (s->map)
		munmap(s->map, s->len);
	if (s->fd >= 0)
		close(s->fd);
	if (remove && s->path[0])
		unlink(s->path);
	for (unsigned i = 0; i < s->nq; i++) {
		vd_inflight_free(s->tr[i].inflight);
		free(s->tr[i].requeue);
	}
	free(s->tr);
	free(s);
}

void vd_xen_state_set_server(struct vd_xen_state *s, int id,
			     const uint8_t handle[16])
{
	struct file_hdr *h = (struct file_hdr *)s->map;

	h->server_id = id;
	memcpy(h->dom_handle, handle, 16);
}

void vd_xen_state_set_device(struct vd_xen_state *s,
			     const struct vd_mmio_state *st,
			     const struct vd_mmio_queue_state *qs, bool clean)
{
	struct file_hdr *h = (struct file_hdr *)s->map;

	h->st = *st;
	for (unsigned i = 0; i < s->nq; i++) {
		struct vd_mmio_queue_state *a = area_qs(s->map, s->qmax, i);
		uint16_t avail = a->avail_idx, used = a->used_idx;
		uint8_t aw = a->avail_wrap, uw = a->used_wrap;
		uint8_t valid = a->used_idx_valid;

		*a = qs[i];
		if (!clean) {
			/* Keep the start position of a running queue. */
			a->avail_idx = avail;
			a->used_idx = used;
			a->avail_wrap = aw;
			a->used_wrap = uw;
			a->used_idx_valid = valid;
		}
	}
	h->clean = clean;
	h->have_device = 1;
}

int vd_xen_state_queue_start(struct vd_xen_state *s, unsigned i,
			     struct vd_queue_setup *setup, const void *prev)
{
	struct vd_mmio_queue_state *a = area_qs(s->map, s->qmax, i);
	struct vd_xen_qtrack *t = &s->tr[i];
	struct vd_vq_config *vq = &setup->vq;
	void *region = area_region(s->map, s->qmax, i);
	unsigned n = 0;
	int rc;

	/* The queue's previous run has stopped. */
	vd_inflight_free(t->inflight);
	t->inflight = NULL;
	if (prev)
		memcpy(region, prev, region_size(s->qmax));
	rc = vd_inflight_attach(region, (uint16_t)s->qmax, prev != NULL, vq,
				t->requeue, &n, t->who, &t->inflight);
	if (rc < 0)
		return rc;
	setup->requeue = n ? t->requeue : NULL;
	setup->n_requeue = n;
	/* Where it starts, for a successor whose record has no chain in
	 * flight on this queue. */
	a->avail_idx = vq->avail_idx;
	a->avail_wrap = vq->avail_wrap;
	a->used_idx = vq->used_idx;
	a->used_wrap = vq->used_wrap;
	a->used_idx_valid = vq->used_idx_valid;
	vd_inflight_set_hooks(t->inflight, &setup->hooks);
	return 0;
}
