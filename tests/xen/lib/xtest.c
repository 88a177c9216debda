/* Xen stand-in test helpers: images with known content, blk models from
 * the registry, and vd_xen_serve on a thread. Test-only. */
#include "xtest.h"

uint8_t xt_pattern(uint32_t seed, size_t i)
{
	uint32_t x = seed * 2654435761u + (uint32_t)i * 40503u;

	return (uint8_t)(x ^ (x >> 13) ^ (x >> 24));
}

int xt_image(char *path, size_t len)
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

extern const struct vd_device_type vd_blk_type;

struct vd_model *xt_blk_model_opts(const char *disk, const char *const *opts)
{
	const struct vd_device_type *t = &vd_blk_type;
	struct vd_model *m = NULL;
	char err[256] = "";
	void *o = NULL;
	int rc;

	if (!t)
		return NULL;
	rc = vd_device_type_opts_new(t, &o);
	if (!rc)
		rc = vd_device_type_opts_set(t, o, "disk", disk, err,
					     sizeof(err));
	for (unsigned i = 0; !rc && opts && opts[i]; i++) {
		char name[64];
		const char *eq = strchr(opts[i], '=');
		size_t n = eq ? (size_t)(eq - opts[i]) : strlen(opts[i]);

		snprintf(name, sizeof(name), "%.*s", (int)n, opts[i]);
		rc = vd_device_type_opts_set(t, o, name, eq ? eq + 1 : NULL,
					     err, sizeof(err));
	}
	if (rc || t->create(o, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "blk model: %s\n", err);
		m = NULL;
	}
	vd_device_type_opts_free(t, o);
	return m;
}

struct vd_model *xt_blk_model(const char *disk, bool readonly)
{
	static const char *const ro[] = {"readonly", NULL};

	return xt_blk_model_opts(disk, readonly ? ro : NULL);
}

static void *serve_thread(void *arg)
{
	struct xt_server *s = arg;

	s->rc = vd_xen_serve(&s->cfg, s->model, &s->stop);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

int xt_serve_start(struct xt_server *s, uint32_t domid, unsigned irq,
		   enum vd_xen_mem_mode mode, unsigned cache_mib,
		   const char *state_dir, struct vd_model *model)
{
	struct vd_xen_config cfg = {.domid = domid,
				    .mmio_base = XT_BASE,
				    .irq = irq,
				    .mem_mode = mode,
				    .map_cache_size = cache_mib,
				    .state_dir = state_dir};

	return xt_serve_start_cfg(s, &cfg, model);
}

int xt_serve_start_cfg(struct xt_server *s, const struct vd_xen_config *cfg,
		       struct vd_model *model)
{
	uint32_t domid = cfg->domid;

	memset(s, 0, sizeof(*s));
	snprintf(s->who, sizeof(s->who), "blk dom%u", domid);
	s->cfg = *cfg;
	s->cfg.who = s->who;
	s->model = model;
	if (pthread_create(&s->thread, NULL, serve_thread, s))
		return -errno;
	s->started = true;
	for (int i = 0; i < 20000; i++) {
		if (__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			return s->rc ? s->rc : -EIO;
		if (sx_server_for(domid, XT_BASE) >= 0)
			return 0;
		usleep(100);
	}
	return -ETIMEDOUT;
}

int xt_serve_stop(struct xt_server *s, int how)
{
	int id;

	if (!s->started || s->joined)
		return s->rc;
	s->stop = how;
	/* The serve loop looks at the flag between events (a signal
	 * interrupts its poll in the daemon): an event wakes it now. */
	id = sx_server_for(s->cfg.domid, s->cfg.mmio_base);
	if (id >= 0)
		sx_spurious_event(s->cfg.domid, id, 0);
	pthread_join(s->thread, NULL);
	s->joined = true;
	return s->rc;
}

void xt_case_end(struct xt_server *s, struct sx_vdev **dev, uint32_t domid,
		 char **state_dir)
{
	xt_serve_stop(s, VD_STOP);
	memset(s, 0, sizeof(*s));
	sx_vdev_free(*dev);
	*dev = NULL;
	sx_domain_destroy(domid);
	if (*state_dir)
		rmdir(*state_dir);
	free(*state_dir);
	*state_dir = NULL;
}

char *xt_tmpdir(void)
{
	char tmpl[] = "/tmp/vd-xen-state-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}
