/* libFuzzer target for what the Xen shim parses from outside: the static
 * configuration file (vd_xen_config_parse_line, vd_xen_config_load) and
 * the toolstack's backend nodes, read by the unmodified `virtiod
 * xen-watch` loop from the stand-in xenstore, with a launcher that records
 * what it is asked to start and hands each option to the device type's
 * own parser (what the composition root does next). Nothing may crash;
 * every device described must carry a window, an IRQ Xen accepts and
 * terminated strings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fz_input.h"
#include "standin.h"
#include "virtiod/device.h"
#include "virtiod/log.h"
#include "xen_priv.h"

extern const struct vd_device_type vd_blk_type, vd_net_type, vd_rng_type;
static const struct vd_device_type *const types[] = {&vd_blk_type, &vd_net_type,
						     &vd_rng_type, NULL};

static int cfg_fd = -1;
static char cfg_path[64];
static volatile int *stop_flag;
static unsigned started, refused;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_xen_config: %s\n", what);
	abort();
}

static bool terminated(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

/* A device record, whoever made it: strings end inside their arrays,
 * numbers are in the ranges the parsers promise. */
static void check_spec(const struct vd_device_spec *d,
		       const struct vd_xen_opts *x)
{
	if (!terminated(d->type, sizeof(d->type)) ||
	    !terminated(d->who, sizeof(d->who)) ||
	    d->nopt > VD_DEVICE_SPEC_MAX_OPTS)
		die("device record: unterminated type/who or too many options");
	for (unsigned i = 0; i < d->nopt; i++)
		if (!terminated(d->opt_name[i], sizeof(d->opt_name[i])) ||
		    !terminated(d->opt_val[i], sizeof(d->opt_val[i])) ||
		    !d->opt_name[i][0])
			die("device record: bad option");
	if (x->have_irq && x->cfg.irq > 1019)
		die("IRQ past 1019 accepted");
	if (x->have_domid && x->cfg.domid > 0x7fef)
		die("domid past DOMID_FIRST_RESERVED accepted");
	if (x->cfg.mmio_size > (1ULL << 32))
		die("window larger than 4 GiB accepted");
	if (x->have_base &&
	    x->cfg.mmio_base + (x->cfg.mmio_size ? x->cfg.mmio_size : 0x200) -
			    1 <
		    x->cfg.mmio_base)
		die("a window past the top of the address space accepted");
	if (!terminated(x->xs_path, sizeof(x->xs_path)) ||
	    !terminated(x->state_dir, sizeof(x->state_dir)))
		die("unterminated xenstore path or state dir");
}

/* What the composition root does with a record: the type's option parser
 * (the model itself is not built: it would open the backing store). */
static void parse_options(const struct vd_device_spec *d)
{
	for (const struct vd_device_type *const *t = types; *t; t++) {
		char err[256];
		void *o = NULL;

		if (strcmp((*t)->name, d->type))
			continue;
		if (vd_device_type_opts_new(*t, &o) < 0)
			die("opts_new");
		for (unsigned i = 0; i < d->nopt; i++) {
			err[0] = '\0';
			if (vd_device_type_opts_set(
				    *t, o, d->opt_name[i],
				    d->opt_has_val[i] ? d->opt_val[i] : NULL,
				    err, sizeof(err)) < 0 &&
			    !terminated(err, sizeof(err)))
				die("option error unterminated");
		}
		vd_device_type_opts_free(*t, o);
	}
}

/* ---- the launcher the watcher is lent: records, never forks */

static int l_find(const struct vd_launcher *l, const char *key)
{
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
		if (l->slot[i].used && !strcmp(l->slot[i].key, key))
			return (int)i;
	return -1;
}

static int take_slot(struct vd_launcher *l, const char *key)
{
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
		if (!l->slot[i].used) {
			l->slot[i].used = true;
			snprintf(l->slot[i].key, sizeof(l->slot[i].key), "%s",
				 key ? key : "");
			return (int)i;
		}
	return -ENOSPC;
}

static int l_start(struct vd_launcher *l, const char *key,
		   const struct vd_device_spec *dev, const void *opts)
{
	const struct vd_xen_opts *x = opts;
	int i;

	check_spec(dev, x);
	if (!x->have_base || !x->have_irq || !x->cfg.mmio_base)
		die("xen-watch started a device without window or IRQ");
	if (key && strcmp(key, x->xs_path))
		die("started under a key that is not its node");
	parse_options(dev);
	started++;
	i = take_slot(l, key);
	if (i >= 0)
		l->slot[i].dev = *dev;
	return i;
}

static void l_hold(struct vd_launcher *l, const char *key)
{
	refused++;
	take_slot(l, key);
}

static void l_forget(struct vd_launcher *l, unsigned slot)
{
	l->slot[slot].used = false;
}

static void l_signal(struct vd_launcher *l, unsigned slot, int how)
{
	(void)how;
	l->slot[slot].used = false;
}

/* Called once per loop round before the scan: one round is enough. */
static unsigned l_reap(struct vd_launcher *l)
{
	(void)l;
	*stop_flag = VD_STOP;
	return 0;
}

static unsigned l_restart(struct vd_launcher *l)
{
	(void)l;
	return 0;
}

static void l_supervise(struct vd_launcher *l, volatile int *stop)
{
	(void)l;
	(void)stop;
}

static void l_stop_all(struct vd_launcher *l, int how, int ms)
{
	(void)how;
	(void)ms;
	memset(l->slot, 0, sizeof(l->slot));
}

static const struct vd_launcher_ops lops = {
	.start = l_start,
	.find = l_find,
	.hold = l_hold,
	.forget = l_forget,
	.signal = l_signal,
	.reap = l_reap,
	.restart_crashed = l_restart,
	.supervise = l_supervise,
	.stop_all = l_stop_all,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vd_log_set_level(VD_LOG_ERR);
	sx_init(SX_X86);
	sx_set_backend_domid(0);
	cfg_fd = memfd_create("fuzz-xen-config", MFD_CLOEXEC);
	if (cfg_fd < 0)
		die("memfd");
	snprintf(cfg_path, sizeof(cfg_path), "/proc/self/fd/%d", cfg_fd);
	return 0;
}

/* Each line on its own, then the whole text as a file. */
static void config_text(const char *text, size_t len)
{
	struct vd_xen_device_spec s, *specs = NULL;
	unsigned n = 0, good = 0;
	char err[256], line[4096];
	bool bad = false;
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		int rc;

		/* fgets's view: lines of at most 2047 bytes. */
		if (l >= sizeof(line))
			l = sizeof(line) - 1;
		memcpy(line, p, l);
		line[l] = '\0';
		p += l;
		err[0] = '\0';
		rc = vd_xen_config_parse_line(line, &s, err, sizeof(err));
		if (rc != 0 && rc != 1 && rc != -EINVAL)
			die("parse_line: unexpected return");
		if (rc == -EINVAL && (!err[0] || !terminated(err, sizeof(err))))
			die("parse_line refused without a reason");
		if (rc == 0) {
			check_spec(&s.dev, &s.xen);
			if (!s.dev.type[0])
				die("a device line without a type");
			if (!s.xen.have_domid && !s.domain[0])
				die("a device line without domid or domain");
			good++;
		}
		bad |= rc < 0;
	}
	if (ftruncate(cfg_fd, 0) < 0 || pwrite(cfg_fd, text, len, 0) < 0)
		die("config memfd");
	if (vd_xen_config_load(cfg_path, &specs, &n, err, sizeof(err)) == 0) {
		for (unsigned i = 0; i < n; i++)
			check_spec(&specs[i].dev, &specs[i].xen);
		/* Lines longer than fgets's buffer split differently; only a
		 * text of short lines must agree line by line. */
		if (!bad && len < 2000 && n != good)
			die("load and parse_line disagree on the device count");
	}
	free(specs);
}

static const char *const keys[] = {
	"params",    "mode",	   "type",  "grant_usage",
	"transport", "base",	   "irq",   "state",
	"frontend",  "backend-id", "devid", "specification",
};
static const char *const domids[] = {"7", "0x7", "32752", "x"};
static const char *const devids[] = {"0", "1", "0x10", "65536"};

/* Records: selector byte, domain byte, value up to a NUL. */
static void xenstore_nodes(struct input *in)
{
	while (in->n > 2) {
		uint8_t sel = fz_take8(in), db = fz_take8(in);
		const char *kind = sel & 0x80 ? "virtio" : "virtio_disk";
		const char *dom = domids[db & 3], *dev = devids[(db >> 2) & 3];
		char path[256], val[256];
		size_t n = 0;

		while (in->n && *in->p && n < sizeof(val) - 1) {
			val[n++] = (char)*in->p;
			in->p++;
			in->n--;
		}
		if (in->n) {
			in->p++;
			in->n--;
		}
		val[n] = '\0';
		if ((sel & 0x7f) >= sizeof(keys) / sizeof(keys[0]) + 1)
			snprintf(path, sizeof(path), "/local/domain/%s/name",
				 dom);
		else if ((sel & 0x7f) == sizeof(keys) / sizeof(keys[0]))
			snprintf(path, sizeof(path),
				 "/local/domain/0/backend/%s/%s/%s", kind, dom,
				 dev);
		else
			snprintf(path, sizeof(path),
				 "/local/domain/0/backend/%s/%s/%s/%s", kind,
				 dom, dev, keys[sel & 0x7f]);
		sx_xs_write(path, val);
	}
}

/* Input: a flags byte, the configuration text up to a NUL, then xenstore
 * records. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	uint8_t flags = fz_take8(&in);
	const uint8_t *nul = memchr(in.p, 0, in.n);
	size_t tlen = nul ? (size_t)(nul - in.p) : in.n;
	struct vd_launcher *l;
	volatile int stop = 0;
	char *argv[8];
	int argc = 0;

	config_text((const char *)in.p, tlen);
	in.p += tlen;
	in.n -= tlen;
	if (in.n) {
		in.p++;
		in.n--;
	}
	if (!(flags & 1))
		return 0;
	sx_xs_rm("/local/domain");
	sx_set_arch(flags & 2 ? SX_ARM : SX_X86);
	xenstore_nodes(&in);
	l = calloc(1, sizeof(*l));
	if (!l)
		die("calloc");
	l->ops = &lops;
	l->types = types;
	stop_flag = &stop;
	argv[argc++] = "xen-watch";
	argv[argc++] = "--config";
	argv[argc++] = cfg_path;
	if (flags & 4) {
		argv[argc++] = "--backend-domid";
		argv[argc++] = "0";
	}
	argv[argc] = NULL;
	vd_xen_watch_main(argc, argv, l, &stop);
	free(l);
	return 0;
}
