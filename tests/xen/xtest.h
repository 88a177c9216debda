/* Helpers shared by the Xen stand-in tests: a disk image, a blk model from
 * the registry, and vd_xen_serve on a thread. Test-only. */
#ifndef VIRTIOD_TESTS_XEN_XTEST_H
#define VIRTIOD_TESTS_XEN_XTEST_H

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "standin.h"
#include "virtiod/device.h"
#include "virtiod/log.h"
#include "xen.h"

#define XT_BASE	    0xfe000000ULL
#define XT_IRQ_X86  7
#define XT_IRQ_ARM  33
#define XT_IMG_SIZE (4u << 20)

struct xt_server {
	pthread_t thread;
	struct vd_xen_config cfg;
	struct vd_model *model;
	volatile int stop;
	int rc;
	int done;
	bool started, joined;
	char who[32];
};

static inline uint8_t xt_pattern(uint32_t seed, size_t i)
{
	uint32_t x = seed * 2654435761u + (uint32_t)i * 40503u;

	return (uint8_t)(x ^ (x >> 13) ^ (x >> 24));
}

/* A temp image filled with pattern(seed=sector) per 512-byte sector. */
static inline int xt_image(char *path, size_t len)
{
	uint8_t sec[512];
	int fd;

	snprintf(path, len, "/tmp/vd-xen-test-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	for (uint32_t s = 0; s < XT_IMG_SIZE / 512; s++) {
		for (size_t i = 0; i < 512; i++)
			sec[i] = xt_pattern(s, i);
		if (pwrite(fd, sec, 512, (off_t)s * 512) != 512) {
			close(fd);
			return -EIO;
		}
	}
	return fd;
}

static inline struct vd_model *xt_blk_model(const char *disk, bool readonly)
{
	const struct vd_device_type *t = vd_device_type_find("blk");
	struct vd_model *m = NULL;
	char err[256];
	void *o;

	if (!t)
		return NULL;
	o = t->opts_new();
	if (!o || t->opts_set(o, "disk", disk, err, sizeof(err)) < 0 ||
	    (readonly &&
	     t->opts_set(o, "readonly", NULL, err, sizeof(err)) < 0) ||
	    t->create(o, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "blk model: %s\n", err);
		m = NULL;
	}
	t->opts_free(o);
	return m;
}

static inline void *xt_serve_thread(void *arg)
{
	struct xt_server *s = arg;

	s->rc = vd_xen_serve(&s->cfg, s->model, &s->stop);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Starts serving; waits until the window is claimed (or serve failed). */
static inline int xt_serve_start(struct xt_server *s, uint32_t domid,
				 unsigned irq, enum vd_xen_mem_mode mode,
				 unsigned cache_mib, const char *state_dir,
				 struct vd_model *model)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->who, sizeof(s->who), "blk dom%u", domid);
	s->cfg = (struct vd_xen_config){.domid = domid,
					.mmio_base = XT_BASE,
					.irq = irq,
					.mem_mode = mode,
					.map_cache_size = cache_mib,
					.who = s->who,
					.state_dir = state_dir};
	s->model = model;
	if (pthread_create(&s->thread, NULL, xt_serve_thread, s))
		return -errno;
	s->started = true;
	for (int i = 0; i < 2000; i++) {
		if (__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			return s->rc ? s->rc : -EIO;
		if (sx_server_for(domid, XT_BASE) >= 0)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static inline int xt_serve_stop(struct xt_server *s, int how)
{
	if (!s->started || s->joined)
		return s->rc;
	s->stop = how;
	pthread_join(s->thread, NULL);
	s->joined = true;
	return s->rc;
}

static inline char *xt_tmpdir(void)
{
	char tmpl[] = "/tmp/vd-xen-state-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

#endif
