/* Command-line parsing for the daemon: the options every mode shares, and
 * each shim's and each device type's own options from their tables. The
 * shim whose options are given serves the device. Every refusal names the
 * option; nothing here opens a file or exits. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "registry.h"
#include "stat_cmd.h"

enum opt_id {
	OPT_CONTROL,
	OPT_POLL_US,
	OPT_LOG_LEVEL,
	OPT_SYSLOG,
	OPT_SANDBOX,
	OPT_USER,
	OPT_GROUP,
	OPT_HELP,
	OPT_VERSION,
};

struct opt {
	enum opt_id id;
	struct vd_device_option o;
};

static const struct opt common_opts[] = {
	{OPT_CONTROL,
	 {"control", "PATH",
	  "control socket for virtiod stat and virtiod resize; with --config "
	  "or xen-watch a directory, one socket per device in it"}},
	{OPT_POLL_US,
	 {"poll-us", "N",
	  "busy-poll each queue N microseconds after work before sleeping "
	  "(default 0: off)"}},
	{OPT_LOG_LEVEL,
	 {"log-level", "err|warn|info|debug", "log verbosity (default info)"}},
	{OPT_SYSLOG, {"syslog", NULL, "log to syslog instead of stderr"}},
	{OPT_SANDBOX,
	 {"sandbox", "seccomp|none",
	  "after start-up, a system call filter per thread (default "
	  "seccomp; a forbidden call kills the process); none: no filter. "
	  "Capabilities are dropped either way"}},
	{OPT_USER,
	 {"user", "USER",
	  "after start-up, run as USER (name or number; vhost-user only)"}},
	{OPT_GROUP,
	 {"group", "GROUP",
	  "after start-up, run as GROUP (default: USER's group; "
	  "vhost-user only)"}},
	{OPT_HELP, {"help", NULL, "show this help and exit"}},
	{OPT_VERSION, {"version", NULL, "show the version and exit"}},
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

static bool name_is(const char *opt, const char *name, size_t len)
{
	return strlen(opt) == len && strncmp(opt, name, len) == 0;
}

static const struct opt *find_common(const char *name, size_t len)
{
	for (size_t i = 0; i < N(common_opts); i++)
		if (name_is(common_opts[i].o.name, name, len))
			return &common_opts[i];
	return NULL;
}

/* In a {NULL}-terminated table (a shim's or a device type's). */
static const struct vd_device_option *find_in(const struct vd_device_option *t,
					      const char *name, size_t len)
{
	for (; t && t->name; t++)
		if (name_is(t->name, name, len))
			return t;
	return NULL;
}

static bool any_type_has(const char *name, size_t len)
{
	for (const struct vd_device_type *const *t = vd_device_types(); *t; t++)
		if (find_in((*t)->options, name, len))
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

static int apply_common(struct cli *c, const struct opt *o, const char *v,
			char *err, size_t errlen)
{
	uint64_t n = 0;
	int r = 0;

	/* Only flags come without a value (the table was checked first);
	 * the cases that read one never see this. */
	if (!v)
		v = "";
	switch (o->id) {
	case OPT_CONTROL:
		if (!*v)
			return bad(err, errlen, "--control: empty path");
		c->control = v;
		break;
	case OPT_POLL_US:
		r = parse_num(o->o.name, v, VD_QUEUE_POLL_US_MAX, &n, err,
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
	case OPT_SANDBOX:
		if (sandbox_parse_mode(v, &c->sandbox.mode) < 0)
			return bad(err, errlen,
				   "--sandbox %s: expected seccomp or none", v);
		break;
	case OPT_USER:
		r = sandbox_parse_user(v, &c->sandbox, err, errlen) < 0
			    ? -EINVAL
			    : 0;
		break;
	case OPT_GROUP:
		r = sandbox_parse_group(v, &c->sandbox, err, errlen) < 0
			    ? -EINVAL
			    : 0;
		break;
	case OPT_HELP:
	case OPT_VERSION:
		break; /* handled before the parse */
	}
	return r;
}

/* The shim of the registry whose table has the option, or -1. */
static int find_shim_opt(const char *name, size_t len,
			 const struct vd_device_option **so)
{
	const struct vd_shim *const *s = vd_shims();

	for (unsigned i = 0; s[i]; i++) {
		*so = find_in(s[i]->options, name, len);
		if (*so)
			return (int)i;
	}
	return -1;
}

/* One option: a common one, a shim's or the device type's. */
static int parse_opt(int argc, char **argv, int *i, struct cli *c, char *err,
		     size_t errlen)
{
	const char *arg = argv[*i], *name, *eq, *val = NULL;
	const struct vd_device_option *so = NULL, *dopt = NULL;
	const struct opt *o;
	const char *arg_name;
	int shim = -1, at = *i;
	char oname[64];
	size_t len;

	if (arg[0] != '-' || arg[1] != '-' || !arg[2])
		return bad(err, errlen, "%s: unexpected argument", arg);
	name = arg + 2;
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	o = find_common(name, len);
	if (!o)
		shim = find_shim_opt(name, len, &so);
	if (!o && !so)
		dopt = find_in(c->type ? c->type->options : NULL, name, len);
	if (!o && !so && !dopt) {
		if (!c->type && any_type_has(name, len))
			return bad(err, errlen,
				   "--%.*s: a device option; name the device "
				   "type first (virtiod TYPE ...)",
				   (int)len, name);
		return bad(err, errlen, "--%.*s: unknown option", (int)len,
			   name);
	}
	arg_name = o ? o->o.arg_name : so ? so->arg_name : dopt->arg_name;
	if (arg_name) {
		if (eq)
			val = eq + 1;
		else if (*i + 1 < argc)
			val = argv[++*i];
		else
			return bad(err, errlen, "--%.*s needs a value",
				   (int)len, name);
	} else if (eq) {
		return bad(err, errlen, "--%.*s takes no value", (int)len,
			   name);
	}
	if (o)
		return apply_common(c, o, val, err, errlen);
	snprintf(oname, sizeof(oname), "%.*s", (int)len, name);
	if (so) {
		const struct vd_shim *s = vd_shims()[shim];

		if (!c->shim_first_arg[shim])
			c->shim_first_arg[shim] = at;
		return s->opts_set(c->all_shim_opts[shim], oname, val, err,
				   errlen) < 0
			       ? -EINVAL
			       : 0;
	}
	if (vd_device_type_opts_set(c->type, c->opts, oname, val, err, errlen) <
	    0)
		return -EINVAL;
	return 0;
}

/* Each shim's options, made before the parse (opts_new may be NULL). */
static int new_shim_opts(struct cli *c, char *err, size_t errlen)
{
	const struct vd_shim *const *s = vd_shims();

	while (s[c->nshims])
		c->nshims++;
	c->all_shim_opts = calloc(c->nshims, sizeof(*c->all_shim_opts));
	c->shim_first_arg = calloc(c->nshims, sizeof(*c->shim_first_arg));
	if (!c->all_shim_opts || !c->shim_first_arg)
		return bad(err, errlen, "out of memory");
	for (unsigned i = 0; i < c->nshims; i++) {
		if (!s[i]->opts_new)
			continue;
		c->all_shim_opts[i] = s[i]->opts_new();
		if (!c->all_shim_opts[i])
			return bad(err, errlen, "out of memory");
	}
	return 0;
}

/* The shim whose option came first; another shim's options are refused. */
static int choose_shim(struct cli *c, char **argv, char *err, size_t errlen)
{
	const struct vd_shim *const *s = vd_shims();
	int first = -1, other = -1;

	for (unsigned i = 0; i < c->nshims; i++) {
		int at = c->shim_first_arg[i];

		if (!at)
			continue;
		if (first < 0 || at < c->shim_first_arg[first]) {
			other = first;
			first = (int)i;
		} else if (other < 0 || at < c->shim_first_arg[other]) {
			other = (int)i;
		}
	}
	if (other >= 0) {
		const char *a = argv[c->shim_first_arg[other]];
		const char *b = argv[c->shim_first_arg[first]];

		return bad(err, errlen,
			   "%.*s and the other %s options exclude %.*s and "
			   "the other %s options",
			   (int)strcspn(a, "="), a, s[other]->title,
			   (int)strcspn(b, "="), b, s[first]->title);
	}
	if (first >= 0) {
		c->shim = s[first];
		c->shim_opts = c->all_shim_opts[first];
	}
	return 0;
}

/* "need --socket-path PATH or --fd N (vhost-user), or --xen-domid N
 * (Xen)" */
static int need_shim(char *err, size_t errlen)
{
	const struct vd_shim *const *s = vd_shims();
	size_t at = 0;

	for (unsigned i = 0; s[i] && at < errlen; i++)
		at += (size_t)snprintf(err + at, errlen - at, "%s %s (%s)",
				       i ? ", or" : "need", s[i]->needs,
				       s[i]->title);
	return -EINVAL;
}

int cli_parse(int argc, char **argv, struct cli *c, char *err, size_t errlen)
{
	int i = 1, r;

	memset(c, 0, sizeof(*c));
	c->log_level = VD_LOG_INFO;

	/* virtiod COMMAND: it parses its own options. */
	for (const struct vd_shim *const *s = vd_shims(); argc > 1 && *s; s++)
		for (const struct vd_shim_command *k = (*s)->commands;
		     k && k->name; k++)
			if (strcmp(argv[1], k->name) == 0) {
				c->mode = CLI_COMMAND;
				c->shim = *s;
				c->command = k;
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
	for (const struct vd_shim *const *s = vd_shims(); *s; s++)
		if ((*s)->info_option &&
		    any_opt(argc, argv, (*s)->info_option, 0)) {
			c->mode = CLI_INFO;
			c->shim = *s;
			return 0;
		}
	if (c->type && vd_device_type_opts_new(c->type, &c->opts) < 0)
		return bad(err, errlen, "out of memory");
	r = new_shim_opts(c, err, errlen);
	for (; r == 0 && i < argc; i++)
		r = parse_opt(argc, argv, &i, c, err, errlen);
	if (r == 0)
		r = choose_shim(c, argv, err, errlen);
	if (r)
		return r;

	/* A Xen device keeps root's state directory and xenstore nodes to
	 * the end (docs/security.md). */
	if (c->shim && (c->sandbox.set_user || c->sandbox.set_group) &&
	    strcmp(c->shim->name, "vhost-user"))
		return bad(err, errlen,
			   "--user/--group: the %s shim runs as root (its "
			   "state file and xenstore nodes need it); drop them "
			   "or use vhost-user",
			   c->shim->title);
	if (c->shim) {
		r = c->shim->opts_check(c->shim_opts, c->type, err, errlen);
		if (r < 0)
			return r;
		if (r == 1 && c->shim->serve_many) {
			c->mode = CLI_SERVE_MANY;
			return 0;
		}
	}
	if (!c->type)
		return bad(err, errlen,
			   "no device type given (virtiod TYPE ...; "
			   "see --help)");
	if (!c->shim)
		return need_shim(err, errlen);
	c->mode = CLI_SERVE;
	return 0;
}

void cli_free(struct cli *c)
{
	const struct vd_shim *const *s = vd_shims();

	if (c->type)
		vd_device_type_opts_free(c->type, c->opts);
	c->opts = NULL;
	for (unsigned i = 0; c->all_shim_opts && i < c->nshims; i++)
		if (c->all_shim_opts[i] && s[i]->opts_free)
			s[i]->opts_free(c->all_shim_opts[i]);
	free(c->all_shim_opts);
	free(c->shim_first_arg);
	c->all_shim_opts = NULL;
	c->shim_first_arg = NULL;
	c->shim_opts = NULL;
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

static void print_table(FILE *f, const struct vd_device_option *o)
{
	for (; o && o->name; o++)
		print_opt(f, o->name, o->arg_name, o->help);
}

void cli_usage(FILE *f)
{
	const struct vd_shim *const *shims = vd_shims();
	const struct vd_shim *const *s;

	fputs("Usage:\n", f);
	for (s = shims; *s; s++)
		fprintf(f, "  virtiod TYPE %s [TYPE options]\n", (*s)->usage);
	for (s = shims; *s; s++) {
		for (const struct vd_shim_command *k = (*s)->commands;
		     k && k->name; k++)
			fprintf(f, "  virtiod %s %s\n", k->name, k->usage);
		if ((*s)->many_usage)
			fprintf(f, "  virtiod %s\n", (*s)->many_usage);
	}
	for (s = shims; *s; s++)
		if ((*s)->info_option)
			fprintf(f, "  virtiod [TYPE] --%s\n",
				(*s)->info_option);
	for (const struct root_command *k = root_commands; k->name; k++)
		fprintf(f, "  virtiod %s %s\n", k->name, k->usage);
	fputs("\n"
	      "A virtio device backend: serves one device of TYPE to a "
	      "vhost-user\nfrontend (QEMU, cloud-hypervisor, ...) or to a Xen "
	      "guest. It does not\ndaemonize; SIGTERM or SIGINT stop it once "
	      "requests in flight are done.\n",
	      f);
	for (s = shims; *s; s++) {
		fprintf(f, "\n%s:\n", (*s)->title);
		print_table(f, (*s)->options);
		if ((*s)->info_option)
			print_opt(f, (*s)->info_option, NULL, (*s)->info_help);
	}
	fputs("\nCommands:\n", f);
	for (const struct root_command *k = root_commands; k->name; k++)
		fprintf(f, "  %-26s %s\n", k->name, k->help);
	fputs("\nCommon:\n", f);
	for (size_t i = 0; i < N(common_opts); i++)
		print_opt(f, common_opts[i].o.name, common_opts[i].o.arg_name,
			  common_opts[i].o.help);
	for (const struct vd_device_type *const *t = vd_device_types(); *t;
	     t++) {
		fprintf(f, "\nTYPE %s: %s\n", (*t)->name, (*t)->summary);
		print_table(f, (*t)->options);
	}
	fputs("\nExit status: 0 after a requested stop, 1 on a runtime "
	      "failure,\n2 on a usage error.\n",
	      f);
}
