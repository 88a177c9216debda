/* The daemon's command line: parsed into a struct, usage text. Device
 * options come from the device type's own table, so a new device type needs
 * no change here. Never exits: main decides. */
#ifndef VIRTIOD_MAIN_CLI_H
#define VIRTIOD_MAIN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "../../shims/xen/xen.h"

enum cli_mode {
	CLI_HELP,
	CLI_VERSION,
	CLI_CAPABILITIES,
	CLI_VHOST_USER,
	CLI_XEN,
	CLI_XEN_WATCH,
	CLI_CONFIG_FILE,
};

struct cli {
	enum cli_mode mode;
	const struct vd_device_type *type; /* CLI_CAPABILITIES/VHOST_USER/XEN */
	void *opts;			   /* type->opts_new() */
	const char *socket_path;
	int fd; /* --fd, or -1 */
	struct vd_xen_config xen;
	const char *config_path;
	enum vd_log_level log_level;
	bool syslog;
	unsigned poll_us; /* --poll-us: vd_queue_set_default_poll_us */
};

/* Fills c. 0, or -EINVAL with a message naming the option in err (a usage
 * error: exit status 2). c must be released with cli_free either way. */
int cli_parse(int argc, char **argv, struct cli *c, char *err, size_t errlen);
void cli_free(struct cli *c);
/* Every option of the daemon and of every device type. */
void cli_usage(FILE *f);

#endif
