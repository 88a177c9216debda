/* `virtiod xen-watch`: watches the toolstack's virtio backend nodes (Xen
 * 4.17 backend/virtio_disk, 4.18+ backend/virtio), describes each device
 * for the composition root's launcher (one process each) and stops it when
 * its nodes go. Everything read from xenstore is checked: a node it cannot
 * use is refused with a reason. It names no device type: a node's keys
 * are mapped by the type's backend_keys table. */
#include <errno.h>
#include <getopt.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtiod/ready.h"

#include "xen_priv.h"

enum layout {
	LAYOUT_417, /* backend/virtio_disk: params, mode, base/irq decimal */
	LAYOUT_418, /* backend/virtio: type virtio,deviceN, base hex */
};

static const struct {
	const char *dir;
	enum layout layout;
	uint32_t device_id; /* the one virtio device such a node is, or 0 */
} kinds[] = {
	{"virtio_disk", LAYOUT_417, VIRTIO_ID_BLOCK},
	{"virtio", LAYOUT_418, 0},
};

struct watcher {
	struct xs_handle *xs;
	uint32_t self;
	struct vd_xen_device_spec *map; /* --config lines */
	unsigned nmap;
	const char *state_dir;
	unsigned map_cache_size;
	bool arm; /* the hypervisor is Xen for Arm */
	struct vd_launcher *l;
	const char *who;
};

static char *xs_get(struct watcher *w, const char *dir, const char *key)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return xs_read(w->xs, XBT_NULL, path, NULL);
}

static const struct vd_xen_device_spec *
mapping(struct watcher *w, uint32_t domid, uint32_t devid, const char *name)
{
	for (unsigned i = 0; i < w->nmap; i++) {
		const struct vd_xen_device_spec *m = &w->map[i];

		if (m->devid != devid)
			continue;
		if ((m->domain[0] && name && !strcmp(m->domain, name)) ||
		    (m->xen.have_domid && m->xen.cfg.domid == domid))
			return m;
	}
	return NULL;
}

/* A node that is always one virtio device (4.17's virtio_disk): the device
 * type with that id, and its options read from the node through the type's
 * backend_keys. Options of the mapping line stay unless the node names
 * them. 0, or -EINVAL with the reason in why. */
static int node_options(struct watcher *w, const char *path, uint32_t device_id,
			struct vd_device_spec *d, char *why, size_t wl)
{
	const struct vd_device_type *t = NULL;

	for (const struct vd_device_type *const *p = w->l->types; p && *p; p++)
		if ((*p)->device_id == device_id && (*p)->backend_keys) {
			t = *p;
			break;
		}
	if (!t) {
		snprintf(why, wl, "no device type serves virtio device %u",
			 device_id);
		return -EINVAL;
	}
	snprintf(d->type, sizeof(d->type), "%s", t->name);
	d->expect_device_id = device_id;
	for (const struct vd_device_backend_key *k = t->backend_keys; k->key;
	     k++) {
		char *v = xs_get(w, path, k->key);
		int rc = 0;

		if (!v || !*v) {
			free(v);
			if (!k->required)
				continue;
			snprintf(why, wl, "no %s (%s)", k->key, k->required);
			return -EINVAL;
		}
		if (!k->match)
			rc = vd_xen_spec_set_opt(d, k->option, v);
		else if (!strcmp(v, k->match))
			rc = vd_xen_spec_set_opt(d, k->option, NULL);
		free(v);
		if (rc < 0) {
			snprintf(why, wl, "%s too long", k->key);
			return -EINVAL;
		}
	}
	return 0;
}

/* The device at `path` as the toolstack describes it, completed by the
 * mapping file. 0, or -EINVAL with the reason in why. */
static int describe(struct watcher *w, const char *path, unsigned kind,
		    uint32_t domid, uint32_t devid,
		    struct vd_xen_device_spec *s, char *why, size_t wl)
{
	const struct vd_xen_device_spec *m;
	char dompath[64], *name, *v;
	uint64_t x;
	int rc = -EINVAL;

	snprintf(dompath, sizeof(dompath), "/local/domain/%u", domid);
	name = xs_get(w, dompath, "name");
	m = mapping(w, domid, devid, name);
	if (m)
		*s = *m;
	else
		memset(s, 0, sizeof(*s));
	s->xen.cfg.domid = domid;
	s->xen.have_domid = true;
	s->devid = devid;
	if (kinds[kind].layout == LAYOUT_417) {
		/* A 4.17 "specification=virtio" disk: always a block device. */
		if (node_options(w, path, kinds[kind].device_id, &s->dev, why,
				 wl) < 0)
			goto out;
		/* libxl 4.17 on Arm links the device to "xen,grant-dma" in the
		 * guest's device tree exactly when the backend is not dom0
		 * (libxl_arm.c, make_virtio_mmio_node): that guest puts grant
		 * references on the ring, never guest-physical addresses. */
		if (!s->xen.have_grant && w->arm && w->self != 0)
			s->xen.cfg.mem_mode = VD_XEN_MEM_GRANT;
	} else {
		unsigned n;

		v = xs_get(w, path, "type");
		if (!v || sscanf(v, "virtio,device%u", &n) != 1) {
			snprintf(why, wl, "type \"%s\" is not virtio,deviceN",
				 v ? v : "");
			free(v);
			goto out;
		}
		free(v);
		if (!m) {
			snprintf(why, wl,
				 "virtio device %u of domain %s: no line for "
				 "it in the --config file (it names the device "
				 "type and its backing store)",
				 n, name ? name : "?");
			goto out;
		}
		s->dev.expect_device_id = n;
		v = xs_get(w, path, "grant_usage");
		if (v && !s->xen.have_grant)
			s->xen.cfg.mem_mode = !strcmp(v, "1")
						      ? VD_XEN_MEM_GRANT
						      : VD_XEN_MEM_FOREIGN;
		free(v);
	}
	v = xs_get(w, path, "transport");
	if (v && strcmp(v, "mmio")) {
		snprintf(why, wl, "transport %s: only mmio is served", v);
		free(v);
		goto out;
	}
	free(v);
	/* Arm toolstacks write the window; x86 ones write none, and the
	 * mapping file supplies it. */
	v = xs_get(w, path, "base");
	if (v && vd_xen_parse_u64(v, ~0ULL, &x) == 0 && x) {
		uint64_t sz = s->xen.cfg.mmio_size ? s->xen.cfg.mmio_size
						   : VD_MMIO_WINDOW_SIZE;

		/* A window past the top of the address space cannot be
		 * claimed (found by fuzz_xen_config). */
		if (x + sz - 1 < x) {
			snprintf(why, wl,
				 "base %s: the MMIO window ends past 2^64", v);
			free(v);
			goto out;
		}
		s->xen.cfg.mmio_base = x;
		s->xen.have_base = true;
	}
	free(v);
	v = xs_get(w, path, "irq");
	if (v && vd_xen_parse_u64(v, 1019, &x) == 0 && x) {
		s->xen.cfg.irq = (uint32_t)x;
		s->xen.have_irq = true;
	}
	free(v);
	if (!s->xen.have_base || !s->xen.have_irq) {
		snprintf(why, wl,
			 "no MMIO window or IRQ (x86 toolstacks "
			 "allocate none): give base= and irq= on its "
			 "--config line");
		goto out;
	}
	if (!s->xen.cfg.map_cache_size)
		s->xen.cfg.map_cache_size = w->map_cache_size;
	snprintf(s->xen.xs_path, sizeof(s->xen.xs_path), "%s", path);
	if (w->state_dir)
		snprintf(s->xen.state_dir, sizeof(s->xen.state_dir), "%s",
			 w->state_dir);
	snprintf(s->dev.who, sizeof(s->dev.who), "%s dom%u dev%u", s->dev.type,
		 domid, devid);
	rc = 0;
out:
	free(name);
	return rc;
}

static bool node_exists(struct watcher *w, const char *path)
{
	unsigned n;
	char **d = xs_directory(w->xs, XBT_NULL, path, &n);

	free(d);
	return d != NULL;
}

static void scan_device(struct watcher *w, const char *path, unsigned kind,
			uint32_t domid, uint32_t devid)
{
	struct vd_launcher *l = w->l;
	struct vd_xen_device_spec spec;
	char why[256], *state;
	bool closing;

	if (l->ops->find(l, path) >= 0)
		return;
	/* The toolstack writes state with the rest of the device: until it
	 * is there the node may be half written. */
	state = xs_get(w, path, "state");
	closing = !state || !strcmp(state, "5") || !strcmp(state, "6");
	free(state);
	if (closing)
		return;
	/* A device refused is held, so it is not retried on every event. */
	if (describe(w, path, kind, domid, devid, &spec, why, sizeof(why)) <
	    0) {
		vd_err(w->who, "%s: %s; not served", path, why);
		l->ops->hold(l, path);
		return;
	}
	if (l->ops->start(l, path, &spec.dev, &spec.xen) < 0)
		l->ops->hold(l, path);
}

static void scan(struct watcher *w)
{
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char base[128];
		unsigned nd = 0;
		char **doms;

		snprintf(base, sizeof(base), "/local/domain/%u/backend/%s",
			 w->self, kinds[k].dir);
		doms = xs_directory(w->xs, XBT_NULL, base, &nd);
		for (unsigned i = 0; doms && i < nd; i++) {
			char dpath[192];
			unsigned nv = 0;
			uint64_t domid, devid;
			char **devs;

			if (vd_xen_parse_u64(doms[i], 0x7fef, &domid) < 0)
				continue;
			snprintf(dpath, sizeof(dpath), "%s/%s", base, doms[i]);
			devs = xs_directory(w->xs, XBT_NULL, dpath, &nv);
			for (unsigned j = 0; devs && j < nv; j++) {
				char path[256];

				if (vd_xen_parse_u64(devs[j], 0xffff, &devid) <
				    0)
					continue;
				snprintf(path, sizeof(path), "%s/%s", dpath,
					 devs[j]);
				scan_device(w, path, k, (uint32_t)domid,
					    (uint32_t)devid);
			}
			free(devs);
		}
		free(doms);
	}
	/* Nodes gone (device removed or guest destroyed): stop the device,
	 * forget the slot once its process ended. */
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++) {
		const struct vd_launch_slot *c = &w->l->slot[i];

		if (!c->used || node_exists(w, c->key))
			continue;
		if (c->running)
			w->l->ops->signal(w->l, i, VD_STOP);
		else
			w->l->ops->forget(w->l, i);
	}
}

static int parse_args(struct watcher *w, int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"backend-domid", required_argument, NULL, 'b'},
		{"state-dir", required_argument, NULL, 's'},
		{"map-cache-size", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char err[512];
	uint64_t x;
	int c;

	w->self = UINT32_MAX;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (vd_xen_config_load(optarg, &w->map, &w->nmap, err,
					       sizeof(err)) < 0) {
				vd_err(w->who, "%s", err);
				return -EINVAL;
			}
			break;
		case 'b':
			if (vd_xen_parse_u64(optarg, 0x7fef, &x) < 0)
				goto bad;
			w->self = (uint32_t)x;
			break;
		case 's':
			w->state_dir = optarg;
			break;
		case 'm':
			if (vd_xen_parse_u64(optarg, 65536, &x) < 0)
				goto bad;
			w->map_cache_size =
				x ? (unsigned)x : VD_XEN_MAP_CACHE_NONE;
			break;
		case 'h':
			printf("usage: virtiod xen-watch [--config FILE] "
			       "[--backend-domid N] [--state-dir DIR] "
			       "[--map-cache-size MIB]\n"
			       "Serves the virtio devices the Xen toolstack "
			       "puts under this domain's backend/virtio_disk "
			       "(4.17) and backend/virtio (4.18+) nodes. See "
			       "docs/xen.md.\n");
			return 1;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	return 0;
bad:
	vd_err(w->who, "xen-watch: bad arguments (see --help)");
	return -EINVAL;
}

int vd_xen_watch_main(int argc, char **argv, struct vd_launcher *l,
		      volatile int *stop)
{
	struct watcher *w = calloc(1, sizeof(*w));
	char path[128];
	int rc = 1;

	if (!w)
		return 1;
	w->l = l;
	w->who = l->who = "xen-watch";
	rc = parse_args(w, argc, argv);
	if (rc) {
		free(w->map);
		free(w);
		return rc < 0 ? 2 : 0;
	}
	w->xs = xs_open(0);
	if (!w->xs) {
		vd_err(w->who, "cannot connect to xenstore: %s",
		       strerror(errno));
		free(w->map);
		free(w);
		return 1;
	}
	if (w->self == UINT32_MAX) {
		/* Relative "domid" is this domain's own key. */
		char *v = xs_read(w->xs, XBT_NULL, "domid", NULL);
		uint64_t x = 0;

		w->self = v && vd_xen_parse_u64(v, 0x7fef, &x) == 0
				  ? (uint32_t)x
				  : 0;
		free(v);
	}
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		snprintf(path, sizeof(path), "/local/domain/%u/backend/%s",
			 w->self, kinds[k].dir);
		if (!xs_watch(w->xs, path, kinds[k].dir))
			vd_warn(w->who, "cannot watch %s: %s", path,
				strerror(errno));
	}
	{
		xc_interface *xch = xc_interface_open(NULL, NULL, 0);

		w->arm = vd_xen_arch(xch) == VD_XEN_ARCH_ARM;
		if (xch)
			xc_interface_close(xch);
	}
	xs_watch(w->xs, "@releaseDomain", "release");
	vd_info(w->who, "watching the virtio backends of domain %u", w->self);
	vd_ready("watching xenstore");
	rc = 0;
	while (!*stop) {
		struct pollfd p = {.fd = xs_fileno(w->xs), .events = POLLIN};
		bool changed = false;
		char **ev;

		if (poll(&p, 1, 500) < 0 && errno != EINTR) {
			rc = 1;
			break;
		}
		while ((ev = xs_check_watch(w->xs))) {
			changed = true;
			free(ev);
		}
		/* A device process that crashed takes its server over again
		 * (its node is still there, so the guest still has the
		 * device); the scan below stops it if the node went. */
		if (l->ops->reap(l)) {
			l->ops->restart_crashed(l);
			changed = true;
		}
		if (changed)
			scan(w);
	}
	l->ops->stop_all(l, *stop ? *stop : VD_STOP, 10000);
	xs_close(w->xs);
	free(w->map);
	free(w);
	return rc;
}
