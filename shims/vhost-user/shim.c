/* The vhost-user shim as the composition root sees it (struct vd_shim): its
 * command-line options (the socket, "Backend program conventions"),
 * --print-capabilities, and one device served by vd_vu_serve. Parses options
 * only; opens nothing. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtiod/shim.h"

#include "vhost_user.h"

struct vu_opts {
	const char *socket_path;
	int fd; /* --fd, or -1 */
	bool group_set;
	gid_t group; /* --socket-group */
};

static const struct vd_device_option vu_options[] = {
	{"socket-path", "PATH",
	 "listen on this unix socket, mode 0600 (a stale socket there is "
	 "replaced, one in use refused)"},
	{"socket-group", "GROUP",
	 "let this group (name or number) connect too: the socket is made "
	 "0660 and given to it"},
	{"fd", "N", "serve the listening unix socket inherited as fd N"},
	{NULL, NULL, NULL},
};

static void *vu_opts_new(void)
{
	struct vu_opts *o = calloc(1, sizeof(*o));

	if (o)
		o->fd = -1;
	return o;
}

static void vu_opts_free(void *opts)
{
	free(opts);
}

static int parse_group(struct vu_opts *o, const char *v, char *err,
		       size_t errlen)
{
	const struct group *g;
	unsigned long n;
	char *end;

	if (!v || !*v) {
		snprintf(err, errlen,
			 "--socket-group needs a group name or "
			 "number");
		return -EINVAL;
	}
	g = getgrnam(v);
	if (g) {
		o->group = g->gr_gid;
	} else {
		errno = 0;
		n = strtoul(v, &end, 10);
		if (*v == '-' || *v == '+' || errno || *end || n >= (gid_t)-1) {
			snprintf(err, errlen,
				 "--socket-group %s: no such group", v);
			return -EINVAL;
		}
		o->group = (gid_t)n;
	}
	o->group_set = true;
	return 0;
}

static int vu_opts_set(void *opts, const char *name, const char *v, char *err,
		       size_t errlen)
{
	struct vu_opts *o = opts;

	if (!strcmp(name, "socket-path")) {
		if (!v || !*v) {
			snprintf(err, errlen, "--socket-path: empty path");
			return -EINVAL;
		}
		o->socket_path = v;
	} else if (!strcmp(name, "socket-group")) {
		return parse_group(o, v, err, errlen);
	} else if (!strcmp(name, "fd")) {
		unsigned long long n;
		char *end;

		if (!v || !*v || *v == '-' || *v == '+') {
			snprintf(err, errlen, "--fd %s: not a number",
				 v ? v : "");
			return -EINVAL;
		}
		errno = 0;
		n = strtoull(v, &end, 0);
		if (errno || *end) {
			snprintf(err, errlen, "--fd %s: not a number", v);
			return -EINVAL;
		}
		if (n > INT_MAX) {
			snprintf(err, errlen, "--fd %s: at most %d", v,
				 INT_MAX);
			return -EINVAL;
		}
		o->fd = (int)n;
	} else {
		snprintf(err, errlen, "--%s: unknown option", name);
		return -EINVAL;
	}
	return 0;
}

static int vu_opts_check(void *opts, const struct vd_device_type *type,
			 char *err, size_t errlen)
{
	struct vu_opts *o = opts;

	if (!type)
		return 0; /* the composition root asks for one */
	if (o->group_set && !o->socket_path) {
		snprintf(err, errlen,
			 "--socket-group needs --socket-path (with --fd the "
			 "socket is not ours to change)");
		return -EINVAL;
	}
	if (o->socket_path && o->fd >= 0) {
		snprintf(err, errlen,
			 "--socket-path and --fd exclude each other");
		return -EINVAL;
	}
	/* Before any model opens its backing store: a wrong --fd is a
	 * usage error. */
	if (o->fd >= 0 && fcntl(o->fd, F_GETFD) < 0) {
		snprintf(err, errlen, "--fd %d: %s", o->fd, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

static int vu_serve_one(void *opts, struct vd_model *model, const char *who,
			volatile int *stop)
{
	const struct vu_opts *o = opts;
	struct vd_vu_config cfg = {
		.socket_path = o->socket_path,
		.listen_fd = o->fd,
		.who = who,
		.group_set = o->group_set,
		.socket_group = o->group,
	};

	return vd_vu_serve(&cfg, model, stop);
}

/* Without a TYPE: the one type with a vhost-user backend type. */
static int vu_print_info(const struct vd_device_type *type,
			 const struct vd_device_type *const *types, char *err,
			 size_t errlen)
{
	const struct vd_device_type *only = NULL;
	unsigned n = 0;

	for (; !type && types && *types; types++)
		if ((*types)->vhost_user_type && *(*types)->vhost_user_type &&
		    n++ == 0)
			only = *types;
	if (!type && n == 1)
		type = only;
	if (!type) {
		snprintf(err, errlen,
			 "--print-capabilities: name the device type "
			 "(virtiod TYPE --print-capabilities)");
		return -EINVAL;
	}
	vd_vu_print_capabilities(type);
	return 0;
}

const struct vd_shim vd_vu_shim = {
	.name = "vhost-user",
	.title = "vhost-user",
	.usage = "--socket-path PATH | --fd N",
	.needs = "--socket-path PATH or --fd N",
	.options = vu_options,
	.opts_size = sizeof(struct vu_opts),
	.opts_new = vu_opts_new,
	.opts_set = vu_opts_set,
	.opts_check = vu_opts_check,
	.opts_free = vu_opts_free,
	.serve = vu_serve_one,
	.info_option = "print-capabilities",
	.info_help = "print the vhost-user backend capabilities as JSON and "
		     "exit",
	.print_info = vu_print_info,
};
