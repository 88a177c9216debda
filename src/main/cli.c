/* Command-line parsing for the daemon: the options every mode shares, the
 * Xen placement options, and each device type's own options from its table.
 * Every refusal names the option; nothing here opens a file or exits. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum opt_id {
	OPT_SOCKET_PATH,
	OPT_FD,
	OPT_XEN_DOMID,
	OPT_MMIO_BASE,
	OPT_MMIO_SIZE,
	OPT_IRQ,
	OPT_GRANT,
	OPT_MAP_CACHE_SIZE,
	OPT_CONFIG,
	OPT_PRINT_CAPABILITIES,
	OPT_POLL_US,
	OPT_LOG_LEVEL,
	OPT_SYSLOG,
	OPT_HELP,
	OPT_VERSION,
};

struct opt {
	enum opt_id id;
	const char *name;
	const char *arg; /* NULL: a flag */
	const char *help;
};

static const struct opt vhost_user_opts[] = {
	{OPT_SOCKET_PATH, "socket-path", "PATH",
	 "listen on this unix socket (a stale socket there is replaced)"},
	{OPT_FD, "fd", "N",
	 "serve the listening unix socket inherited as fd N"},
};

static const struct opt xen_opts[] = {
	{OPT_XEN_DOMID, "xen-domid", "N", "serve this guest domain"},
	{OPT_MMIO_BASE, "mmio-base", "ADDR",
	 "guest-physical base of the virtio-mmio window"},
	{OPT_MMIO_SIZE, "mmio-size", "N",
	 "size of the virtio-mmio window (default 0x200)"},
	{OPT_IRQ, "irq", "N", "interrupt line (Arm SPI or x86 ISA IRQ)"},
	{OPT_GRANT, "grant", NULL,
	 "the guest uses grant-based DMA (grant references on the rings)"},
	{OPT_MAP_CACHE_SIZE, "map-cache-size", "MiB",
	 "foreign mapping cache size (default 64; 0 maps per request)"},
};

static const struct opt common_opts[] = {
	{OPT_CONFIG, "config", "FILE",
	 "Xen: serve the devices of a static configuration file"},
	{OPT_PRINT_CAPABILITIES, "print-capabilities", NULL,
	 "print the vhost-user backend capabilities as JSON and exit"},
	{OPT_POLL_US, "poll-us", "N",
	 "busy-poll each queue N microseconds after work before sleeping "
	 "(default 0: off)"},
	{OPT_LOG_LEVEL, "log-level", "err|warn|info|debug",
	 "log verbosity (default info)"},
	{OPT_SYSLOG, "syslog", NULL, "log to syslog instead of stderr"},
	{OPT_HELP, "help", NULL, "show this help and exit"},
	{OPT_VERSION, "version", NULL, "show the version and exit"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

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

static const struct opt *find_opt(const char *name, size_t len)
{
	static const struct {
		const struct opt *v;
		size_t n;
	} tables[] = {{vhost_user_opts, N(vhost_user_opts)},
		      {xen_opts, N(xen_opts)},
		      {common_opts, N(common_opts)}};

	for (size_t t = 0; t < N(tables); t++)
		for (size_t i = 0; i < tables[t].n; i++)
			if (strlen(tables[t].v[i].name) == len &&
			    strncmp(tables[t].v[i].name, name, len) == 0)
				return &tables[t].v[i];
	return NULL;
}

static const struct vd_device_option *
find_dev_opt(const struct vd_device_type *type, const char *name, size_t len)
{
	for (const struct vd_device_option *o = type ? type->options : NULL;
	     o && o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static bool any_type_has(const char *name, size_t len)
{
	for (const struct vd_device_type *const *t = vd_device_types(); *t; t++)
		if (find_dev_opt(*t, name, len))
			return true;
	return false;
}

/* An unsigned number, decimal or 0x-hex, at most max. */
static int parse_num(const char *opt, const char *s, uint64_t max,
		     uint64_t *out, char *err, size_t errlen)
{
	unsigned long long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return bad(err, errlen, "--%s %s: not a number", opt, s);
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return bad(err, errlen, "--%s %s: not a number", opt, s);
	if (v > max)
		return bad(err, errlen, "--%s %s: at most %llu", opt, s,
			   (unsigned long long)max);
	*out = v;
	return 0;
}

static bool is_opt(const char *arg, const char *name)
{
	return arg[0] == '-' && arg[1] == '-' && strcmp(arg + 2, name) == 0;
}

static bool any_opt(int argc, char **argv, const char *name, char alias)
{
	for (int i = 1; i < argc; i++)
		if (is_opt(argv[i], name) ||
		    (alias && argv[i][0] == '-' && argv[i][1] == alias &&
		     !argv[i][2]))
			return true;
	return false;
}

/* --print-capabilities without a type: the one type vhost-user can serve. */
static const struct vd_device_type *only_vhost_user_type(void)
{
	const struct vd_device_type *const *t = vd_device_types();
	const struct vd_device_type *found = NULL;

	for (; *t; t++) {
		if (!(*t)->vhost_user_type || !*(*t)->vhost_user_type)
			continue;
		if (found)
			return NULL;
		found = *t;
	}
	return found;
}

static int apply(struct cli *c, const struct opt *o, const char *v,
		 bool *xen_set, char *err, size_t errlen)
{
	uint64_t n;
	int r = 0;

	switch (o->id) {
	case OPT_SOCKET_PATH:
		if (!*v)
			return bad(err, errlen, "--socket-path: empty path");
		c->socket_path = v;
		break;
	case OPT_FD:
		r = parse_num(o->name, v, INT_MAX, &n, err, errlen);
		c->fd = (int)n;
		break;
	case OPT_XEN_DOMID:
		/* DOMID_FIRST_RESERVED is 0x7ff0 */
		r = parse_num(o->name, v, 0x7fef, &n, err, errlen);
		c->xen.domid = (uint32_t)n;
		break;
	case OPT_MMIO_BASE:
		r = parse_num(o->name, v, UINT64_MAX, &c->xen.mmio_base, err,
			      errlen);
		break;
	case OPT_MMIO_SIZE:
		r = parse_num(o->name, v, UINT32_MAX, &c->xen.mmio_size, err,
			      errlen);
		if (!r && !c->xen.mmio_size)
			return bad(err, errlen, "--mmio-size 0: must not be 0");
		break;
	case OPT_IRQ:
		r = parse_num(o->name, v, UINT32_MAX, &n, err, errlen);
		c->xen.irq = (uint32_t)n;
		break;
	case OPT_GRANT:
		c->xen.mem_mode = VD_XEN_MEM_GRANT;
		break;
	case OPT_MAP_CACHE_SIZE:
		r = parse_num(o->name, v, UINT32_MAX - 1, &n, err, errlen);
		/* 0 means no cache, as map-cache-size=0 in a config file. */
		c->xen.map_cache_size = n ? (unsigned)n : VD_XEN_MAP_CACHE_NONE;
		break;
	case OPT_CONFIG:
		if (!*v)
			return bad(err, errlen, "--config: empty path");
		c->config_path = v;
		break;
	case OPT_POLL_US:
		r = parse_num(o->name, v, VD_QUEUE_POLL_US_MAX, &n, err,
			      errlen);
		c->poll_us = (unsigned)n;
		break;
	case OPT_LOG_LEVEL:
		if (vd_log_level_parse(v, &c->log_level) < 0)
			return bad(
				err, errlen,
				"--log-level %s: expected err, warn, info or "
				"debug",
				v);
		break;
	case OPT_SYSLOG:
		c->syslog = true;
		break;
	case OPT_PRINT_CAPABILITIES:
	case OPT_HELP:
	case OPT_VERSION:
		break; /* handled before the parse */
	}
	if (o->id >= OPT_XEN_DOMID && o->id <= OPT_MAP_CACHE_SIZE)
		*xen_set = true;
	return r;
}

/* The options after the device type (or after argv[0]). */
static int parse_opts(int argc, char **argv, int i, struct cli *c,
		      bool *xen_set, bool *domid_set, char *err, size_t errlen)
{
	for (; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *val = NULL;
		const struct vd_device_option *dopt;
		const struct opt *o;
		bool takes_arg;
		size_t len;
		int r;

		if (arg[0] != '-' || arg[1] != '-' || !arg[2])
			return bad(err, errlen, "%s: unexpected argument", arg);
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		o = find_opt(name, len);
		dopt = o ? NULL : find_dev_opt(c->type, name, len);
		if (!o && !dopt) {
			if (!c->type && any_type_has(name, len))
				return bad(err, errlen,
					   "--%.*s: a device option; name the "
					   "device type first (virtiod TYPE "
					   "...)",
					   (int)len, name);
			return bad(err, errlen, "--%.*s: unknown option",
				   (int)len, name);
		}
		takes_arg = o ? o->arg != NULL : dopt->arg_name != NULL;
		if (takes_arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return bad(err, errlen, "--%.*s needs a value",
					   (int)len, name);
		} else if (eq) {
			return bad(err, errlen, "--%.*s takes no value",
				   (int)len, name);
		}
		if (o) {
			r = apply(c, o, val, xen_set, err, errlen);
			if (o->id == OPT_XEN_DOMID)
				*domid_set = true;
		} else {
			char oname[64];

			snprintf(oname, sizeof(oname), "%.*s", (int)len, name);
			r = c->type->opts_set(c->opts, oname, val, err, errlen);
		}
		if (r)
			return -EINVAL;
	}
	return 0;
}

int cli_parse(int argc, char **argv, struct cli *c, char *err, size_t errlen)
{
	bool xen_set = false, domid_set = false;
	int i = 1, r;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->log_level = VD_LOG_INFO;
	c->xen.mem_mode = VD_XEN_MEM_FOREIGN;

	if (argc > 1 && strcmp(argv[1], "xen-watch") == 0) {
		c->mode = CLI_XEN_WATCH; /* it parses its own options */
		return 0;
	}
	if (any_opt(argc, argv, "help", 'h')) {
		c->mode = CLI_HELP;
		return 0;
	}
	if (any_opt(argc, argv, "version", 'V')) {
		c->mode = CLI_VERSION;
		return 0;
	}
	if (argc > 1 && argv[1][0] != '-') {
		c->type = vd_device_type_find(argv[1]);
		if (!c->type)
			return bad(err, errlen, "%s: unknown device type",
				   argv[1]);
		i = 2;
	}
	/* "Other options and arguments should be ignored" (vhost-user.rst,
	 * backend program conventions). */
	if (any_opt(argc, argv, "print-capabilities", 0)) {
		c->mode = CLI_CAPABILITIES;
		if (!c->type)
			c->type = only_vhost_user_type();
		if (!c->type)
			return bad(err, errlen,
				   "--print-capabilities: name the device "
				   "type (virtiod TYPE --print-capabilities)");
		return 0;
	}
	if (c->type) {
		c->opts = c->type->opts_new();
		if (!c->opts)
			return bad(err, errlen, "out of memory");
	}
	r = parse_opts(argc, argv, i, c, &xen_set, &domid_set, err, errlen);
	if (r)
		return r;

	if (c->config_path) {
		if (c->type || c->socket_path || c->fd >= 0 || xen_set)
			return bad(
				err, errlen,
				"--config %s: the file describes the devices; "
				"no device type or other placement options",
				c->config_path);
		c->mode = CLI_CONFIG_FILE;
		return 0;
	}
	if (!c->type)
		return bad(err, errlen,
			   "no device type given (virtiod TYPE ...; "
			   "see --help)");
	if (c->socket_path && c->fd >= 0)
		return bad(err, errlen,
			   "--socket-path and --fd exclude each "
			   "other");
	if (xen_set) {
		if (c->socket_path || c->fd >= 0)
			return bad(err, errlen,
				   "--xen-domid and the other Xen options "
				   "exclude --socket-path and --fd");
		if (!domid_set)
			return bad(err, errlen, "Xen options need --xen-domid");
		if (!c->xen.mmio_base)
			return bad(err, errlen,
				   "--xen-domid needs --mmio-base");
		if (!c->xen.irq)
			return bad(err, errlen, "--xen-domid needs --irq");
		c->mode = CLI_XEN;
		return 0;
	}
	if (!c->socket_path && c->fd < 0)
		return bad(err, errlen,
			   "need --socket-path PATH or --fd N (vhost-user), or "
			   "--xen-domid N (Xen)");
	c->mode = CLI_VHOST_USER;
	return 0;
}

void cli_free(struct cli *c)
{
	if (c->type && c->opts)
		c->type->opts_free(c->opts);
	c->opts = NULL;
}

/* "  --name ARG   help", the help on its own line under a long name. */
static void print_opt(FILE *f, const char *name, const char *arg,
		      const char *help)
{
	char head[80];

	snprintf(head, sizeof(head), "--%s%s%s", name, arg ? " " : "",
		 arg ? arg : "");
	if (strlen(head) > 26)
		fprintf(f, "  %s\n  %-26s %s\n", head, "", help);
	else
		fprintf(f, "  %-26s %s\n", head, help);
}

static void print_opts(FILE *f, const struct opt *o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		print_opt(f, o[i].name, o[i].arg, o[i].help);
}

void cli_usage(FILE *f)
{
	fputs("Usage:\n"
	      "  virtiod TYPE --socket-path PATH | --fd N [TYPE options]\n"
	      "  virtiod TYPE --xen-domid N --mmio-base ADDR --irq N "
	      "[Xen options] [TYPE options]\n"
	      "  virtiod xen-watch [options]   (virtiod xen-watch --help)\n"
	      "  virtiod --config FILE\n"
	      "  virtiod [TYPE] --print-capabilities\n"
	      "\n"
	      "A virtio device backend: serves one device of TYPE to a "
	      "vhost-user\nfrontend (QEMU, cloud-hypervisor, ...) or to a Xen "
	      "guest. It does not\ndaemonize; SIGTERM or SIGINT stop it once "
	      "requests in flight are done.\n"
	      "\nvhost-user:\n",
	      f);
	print_opts(f, vhost_user_opts, N(vhost_user_opts));
	fputs("\nXen:\n", f);
	print_opts(f, xen_opts, N(xen_opts));
	fputs("\nCommon:\n", f);
	print_opts(f, common_opts, N(common_opts));
	for (const struct vd_device_type *const *t = vd_device_types(); *t;
	     t++) {
		fprintf(f, "\nTYPE %s: %s\n", (*t)->name, (*t)->summary);
		for (const struct vd_device_option *o = (*t)->options;
		     o && o->name; o++)
			print_opt(f, o->name, o->arg_name, o->help);
	}
	fputs("\nExit status: 0 after a requested stop, 1 on a runtime "
	      "failure,\n2 on a usage error.\n",
	      f);
}
