/* The device list file (docs/xen.md): one device a line, "TYPE key=value
 * flag ...". It serves dom0less systems on its own (`virtiod --config`) and
 * gives the xenstore watcher what the toolstack does not write. A bad line
 * is reported with its number and refused, never half-applied. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtiod/ready.h"

#include "xen_priv.h"

int vd_xen_spec_set_opt(struct vd_device_spec *s, const char *name,
			const char *val)
{
	unsigned i;

	if (strlen(name) >= sizeof(s->opt_name[0]) ||
	    (val && strlen(val) >= sizeof(s->opt_val[0])))
		return -E2BIG;
	for (i = 0; i < s->nopt; i++)
		if (!strcmp(s->opt_name[i], name))
			break;
	if (i == s->nopt) {
		if (s->nopt == VD_DEVICE_SPEC_MAX_OPTS)
			return -ENOSPC;
		s->nopt++;
	}
	snprintf(s->opt_name[i], sizeof(s->opt_name[i]), "%s", name);
	snprintf(s->opt_val[i], sizeof(s->opt_val[i]), "%s", val ? val : "");
	s->opt_has_val[i] = val != NULL;
	return 0;
}

int vd_xen_parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (!v || !*v || *v == '-')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 0); /* decimal, or 0x hex (4.18 writes hex) */
	if (errno || *end || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

/* One "key=value" or "flag" word. */
static int apply_word(struct vd_xen_device_spec *s, char *w, char *err,
		      size_t errlen)
{
	char *eq = strchr(w, '=');
	const char *val = NULL;
	uint64_t x;

	if (eq) {
		*eq = '\0';
		val = eq + 1;
	}
	/* "=value": an option of no name the device would refuse only once
	 * it is launched; refuse the line now (found by fuzz_xen_config). */
	if (!*w) {
		snprintf(err, errlen, "=%s: an option needs a name before '='",
			 val ? val : "");
		return -EINVAL;
	}
#define NEED_NUM(max)                                                          \
	do {                                                                   \
		if (vd_xen_parse_u64(val, (max), &x) < 0) {                    \
			snprintf(err, errlen,                                  \
				 "%s: expected a number up to "                \
				 "%llu",                                       \
				 w, (unsigned long long)(max));                \
			return -EINVAL;                                        \
		}                                                              \
	} while (0)
	if (!strcmp(w, "domid")) {
		NEED_NUM(0x7fefULL);
		s->xen.cfg.domid = (uint32_t)x;
		s->xen.have_domid = true;
	} else if (!strcmp(w, "domain")) {
		if (!val || !*val || strlen(val) >= sizeof(s->domain)) {
			snprintf(err, errlen, "domain: expected a guest name");
			return -EINVAL;
		}
		snprintf(s->domain, sizeof(s->domain), "%s", val);
	} else if (!strcmp(w, "devid")) {
		NEED_NUM(0xffffULL);
		s->devid = (uint32_t)x;
	} else if (!strcmp(w, "base")) {
		NEED_NUM(~0ULL);
		s->xen.cfg.mmio_base = x;
		s->xen.have_base = true;
	} else if (!strcmp(w, "size")) {
		NEED_NUM(1ULL << 32);
		s->xen.cfg.mmio_size = x;
	} else if (!strcmp(w, "irq")) {
		NEED_NUM(1019ULL);
		s->xen.cfg.irq = (uint32_t)x;
		s->xen.have_irq = true;
	} else if (!strcmp(w, "map-cache-size")) {
		NEED_NUM(65536ULL);
		s->xen.cfg.map_cache_size =
			x ? (unsigned)x : VD_XEN_MAP_CACHE_NONE;
	} else if (!strcmp(w, "grant") && !val) {
		s->xen.cfg.mem_mode = VD_XEN_MEM_GRANT;
		s->xen.have_grant = true;
	} else if (!strcmp(w, "foreign") && !val) {
		s->xen.cfg.mem_mode = VD_XEN_MEM_FOREIGN;
		s->xen.have_grant = true;
	} else if (vd_xen_spec_set_opt(&s->dev, w, val) < 0) {
		/* Anything else belongs to the device (disk=, readonly...). */
		snprintf(err, errlen, "%s: too many or too long options", w);
		return -EINVAL;
	}
#undef NEED_NUM
	return 0;
}

int vd_xen_config_parse_line(const char *line, struct vd_xen_device_spec *s,
			     char *err, size_t errlen)
{
	char buf[2048], *save = NULL, *w;
	int rc;

	memset(s, 0, sizeof(*s));
	if (strlen(line) >= sizeof(buf)) {
		snprintf(err, errlen, "line too long");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", line);
	w = strchr(buf, '#');
	if (w)
		*w = '\0';
	w = strtok_r(buf, " \t\r\n", &save);
	if (!w)
		return 1;
	if (strlen(w) >= sizeof(s->dev.type)) {
		snprintf(err, errlen, "%s: not a device type", w);
		return -EINVAL;
	}
	snprintf(s->dev.type, sizeof(s->dev.type), "%s", w);
	while ((w = strtok_r(NULL, " \t\r\n", &save))) {
		rc = apply_word(s, w, err, errlen);
		if (rc < 0)
			return rc;
	}
	if (!s->xen.have_domid && !s->domain[0]) {
		snprintf(err, errlen, "%s: needs domid=N or domain=NAME",
			 s->dev.type);
		return -EINVAL;
	}
	/* A window at 0 is what the xenstore nodes mean by none, and one
	 * past the top of the address space cannot be claimed: refused here
	 * rather than when the device starts (found by fuzz_xen_config). */
	if (s->xen.have_base) {
		uint64_t b = s->xen.cfg.mmio_base,
			 sz = s->xen.cfg.mmio_size ? s->xen.cfg.mmio_size
						   : VD_MMIO_WINDOW_SIZE;

		if (b == 0 || b + sz - 1 < b) {
			snprintf(
				err, errlen,
				"base=0x%llx size=0x%llx: the MMIO window must "
				"start above 0 and end below 2^64",
				(unsigned long long)b, (unsigned long long)sz);
			return -EINVAL;
		}
	}
	return 0;
}

int vd_xen_config_load(const char *path, struct vd_xen_device_spec **specs,
		       unsigned *n, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct vd_xen_device_spec *v = NULL, s;
	char line[2048], why[256];
	unsigned cnt = 0, lineno = 0;
	int rc = 0;

	*specs = NULL;
	*n = 0;
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	while (fgets(line, sizeof(line), f)) {
		struct vd_xen_device_spec *nv;

		lineno++;
		rc = vd_xen_config_parse_line(line, &s, why, sizeof(why));
		if (rc == 1)
			continue;
		if (rc < 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
			goto fail;
		}
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		v = nv;
		v[cnt++] = s;
	}
	fclose(f);
	*specs = v;
	*n = cnt;
	return 0;
fail:
	fclose(f);
	free(v);
	return rc;
}

/* `virtiod --config FILE`: every device of the file in its own process,
 * restarted (taking its server over) if it dies while its guest lives. */
int vd_xen_config_file_main(const char *path, struct vd_launcher *l,
			    volatile int *stop)
{
	struct vd_xen_device_spec *specs = NULL;
	unsigned n = 0;
	char err[512];
	int rc;

	l->who = "xen-config";
	rc = vd_xen_config_load(path, &specs, &n, err, sizeof(err));
	if (rc < 0 || n == 0) {
		vd_err(l->who, "%s", rc < 0 ? err : "no device in the file");
		free(specs);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct vd_xen_device_spec *s = &specs[i];

		if (!s->xen.have_domid || !s->xen.have_base ||
		    !s->xen.have_irq) {
			vd_err(l->who,
			       "%s: device %u (%s) needs domid=, base= "
			       "and irq= (dom0less has no toolstack)",
			       path, i + 1, s->dev.type);
			rc = -EINVAL;
		}
		snprintf(s->dev.who, sizeof(s->dev.who), "%s dom%u dev%u",
			 s->dev.type, s->xen.cfg.domid, s->devid);
	}
	for (unsigned i = 0; rc == 0 && i < n; i++)
		if (l->ops->start(l, NULL, &specs[i].dev, &specs[i].xen) < 0)
			rc = -EIO;
	if (rc == 0) {
		vd_ready("devices started");
		l->ops->supervise(l, stop);
	}
	l->ops->stop_all(l, *stop ? *stop : VD_STOP, 10000);
	free(specs);
	return rc == 0 ? 0 : 1;
}
