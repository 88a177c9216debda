/* The Xen shim as the composition root sees it (struct vd_shim): its
 * command-line options, one device served by vd_xen_serve, the static
 * configuration and the xenstore watcher as multi-device modes. Parses
 * options only; opens nothing until serve. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xen_priv.h"

static const struct vd_device_option xen_options[] = {
	{"xen-domid", "N", "serve this guest domain"},
	{"mmio-base", "ADDR", "guest-physical base of the virtio-mmio window"},
	{"mmio-size", "N", "size of the virtio-mmio window (default 0x200)"},
	{"irq", "N", "interrupt line (Arm SPI or x86 ISA IRQ)"},
	{"grant", NULL,
	 "the guest uses grant-based DMA (grant references on the rings)"},
	{"map-cache-size", "MiB",
	 "foreign mapping cache size (default 64; 0 maps per request)"},
	{"config", "FILE", "serve the devices of a static configuration file"},
	{NULL, NULL, NULL},
};

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* --NAME VALUE: a number up to max. */
static int num(const char *name, const char *v, uint64_t max, uint64_t *out,
	       char *err, size_t errlen)
{
	if (!v || *v == '+' || vd_xen_parse_u64(v, UINT64_MAX, out) < 0)
		return bad(err, errlen, "--%s %s: not a number", name,
			   v ? v : "");
	if (*out > max)
		return bad(err, errlen, "--%s %s: at most %llu", name, v,
			   (unsigned long long)max);
	return 0;
}

static void *xen_opts_new(void)
{
	struct vd_xen_opts *o = calloc(1, sizeof(*o));

	if (o)
		o->cfg.mem_mode = VD_XEN_MEM_FOREIGN;
	return o;
}

static void xen_opts_free(void *opts)
{
	free(opts);
}

static int xen_opts_set(void *opts, const char *name, const char *v, char *err,
			size_t errlen)
{
	struct vd_xen_opts *o = opts;
	uint64_t n = 0;
	int r = 0;

	if (!strcmp(name, "config")) {
		if (!v || !*v)
			return bad(err, errlen, "--config: empty path");
		o->config = v;
		return 0;
	}
	o->placed = true;
	if (!strcmp(name, "xen-domid")) {
		/* DOMID_FIRST_RESERVED is 0x7ff0 */
		r = num(name, v, 0x7fef, &n, err, errlen);
		o->cfg.domid = (uint32_t)n;
		o->have_domid = true;
	} else if (!strcmp(name, "mmio-base")) {
		r = num(name, v, UINT64_MAX, &o->cfg.mmio_base, err, errlen);
	} else if (!strcmp(name, "mmio-size")) {
		r = num(name, v, UINT32_MAX, &o->cfg.mmio_size, err, errlen);
		if (!r && !o->cfg.mmio_size)
			return bad(err, errlen, "--mmio-size 0: must not be 0");
	} else if (!strcmp(name, "irq")) {
		r = num(name, v, UINT32_MAX, &n, err, errlen);
		o->cfg.irq = (uint32_t)n;
	} else if (!strcmp(name, "grant")) {
		o->cfg.mem_mode = VD_XEN_MEM_GRANT;
	} else if (!strcmp(name, "map-cache-size")) {
		r = num(name, v, UINT32_MAX - 1, &n, err, errlen);
		/* 0 means no cache, as map-cache-size=0 in a config file. */
		o->cfg.map_cache_size = n ? (unsigned)n : VD_XEN_MAP_CACHE_NONE;
	} else {
		return bad(err, errlen, "--%s: unknown option", name);
	}
	return r;
}

static int xen_opts_check(void *opts, const struct vd_device_type *type,
			  char *err, size_t errlen)
{
	struct vd_xen_opts *o = opts;

	if (o->config) {
		if (type || o->placed)
			return bad(err, errlen,
				   "--config %s: the file describes the "
				   "devices; no device type or other "
				   "placement options",
				   o->config);
		return 1;
	}
	if (!type)
		return 0; /* the composition root asks for one */
	if (!o->have_domid)
		return bad(err, errlen, "Xen options need --xen-domid");
	if (!o->cfg.mmio_base)
		return bad(err, errlen, "--xen-domid needs --mmio-base");
	if (!o->cfg.irq)
		return bad(err, errlen, "--xen-domid needs --irq");
	return 0;
}

static int xen_serve_one(void *opts, struct vd_model *model, const char *who,
			 volatile int *stop)
{
	const struct vd_xen_opts *o = opts;
	struct vd_xen_config cfg = o->cfg;

	cfg.who = who;
	cfg.xs_backend_path = o->xs_path[0] ? o->xs_path : NULL;
	cfg.state_dir = o->state_dir[0] ? o->state_dir : NULL;
	return vd_xen_serve(&cfg, model, stop);
}

static int xen_serve_many(void *opts, struct vd_launcher *l, volatile int *stop)
{
	return vd_xen_config_file_main(((struct vd_xen_opts *)opts)->config, l,
				       stop);
}

static const struct vd_shim_command xen_commands[] = {
	{"xen-watch", "[options]   (virtiod xen-watch --help)",
	 vd_xen_watch_main},
	{NULL, NULL, NULL},
};

const struct vd_shim vd_xen_shim = {
	.name = "xen",
	.title = "Xen",
	.usage = "--xen-domid N --mmio-base ADDR --irq N [Xen options]",
	.needs = "--xen-domid N",
	.options = xen_options,
	.opts_size = sizeof(struct vd_xen_opts),
	.opts_new = xen_opts_new,
	.opts_set = xen_opts_set,
	.opts_check = xen_opts_check,
	.opts_free = xen_opts_free,
	.serve = xen_serve_one,
	.serve_many = xen_serve_many,
	.many_usage = "--config FILE",
	.commands = xen_commands,
	.handover = true,
};
