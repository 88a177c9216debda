/* The daemon's command line: parsed into a struct, usage text. Every option
 * comes from a table: the common ones here, each shim's and each device
 * type's own, so a new shim or device type needs no change here. Never
 * exits: main decides. */
#ifndef VIRTIOD_MAIN_CLI_H
#define VIRTIOD_MAIN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "virtiod/device.h"
#include "virtiod/log.h"
#include "virtiod/shim.h"

#include "sandbox.h"

enum cli_mode {
	CLI_HELP,
	CLI_VERSION,
	CLI_INFO,	/* a shim's info option (--print-capabilities) */
	CLI_COMMAND,	/* virtiod COMMAND [ARGS] (xen-watch) */
	CLI_SERVE,	/* one device of type, through shim */
	CLI_SERVE_MANY, /* the devices shim's options describe (--config) */
};

struct cli {
	enum cli_mode mode;
	const struct vd_device_type *type; /* CLI_SERVE; CLI_INFO if named */
	void *opts;			   /* type->opts_new() */
	const struct vd_shim *shim;	   /* every mode but HELP, VERSION */
	void *shim_opts;		   /* shim->opts_new(), or NULL */
	const struct vd_shim_command *command; /* CLI_COMMAND */
	enum vd_log_level log_level;
	bool syslog;
	unsigned poll_us;    /* --poll-us: vd_queue_set_default_poll_us */
	const char *control; /* --control: socket, or directory (many) */
	struct sandbox_config sandbox; /* --sandbox, --user, --group */
	/* While parsing: per shim of the registry, its options and the
	 * argument that named its first option (0: none). */
	unsigned nshims;
	void **all_shim_opts;
	int *shim_first_arg;
};

/* Fills c. 0, or -EINVAL with a message naming the option in err (a usage
 * error: exit status 2). c must be released with cli_free either way. */
int cli_parse(int argc, char **argv, struct cli *c, char *err, size_t errlen);
void cli_free(struct cli *c);
/* Every option of the daemon, of every shim and of every device type. */
void cli_usage(FILE *f);

#endif
