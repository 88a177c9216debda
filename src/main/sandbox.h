/* The daemon's sandbox (docs/security.md): after start-up a libseccomp
 * filter per thread role, capabilities dropped, no new privileges, and
 * optionally another user and group. The table of what each role may call
 * is sandbox_table.c; the mechanism is sandbox.c. */
#ifndef VIRTIOD_MAIN_SANDBOX_H
#define VIRTIOD_MAIN_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "virtiod/sandbox.h"

enum sandbox_mode {
	SANDBOX_SECCOMP, /* the default */
	SANDBOX_NONE,	 /* no filter; capabilities are still dropped */
};

struct sandbox_config {
	enum sandbox_mode mode;
	const char *shim;   /* profiles: the shim's name */
	const char *device; /* and the device type's (NULL: any, per slot) */
	bool set_user, set_group;
	uid_t uid;
	gid_t gid;
	const char *user; /* as given, for messages */
};

/* --sandbox's value; 0 or -EINVAL. */
int sandbox_parse_mode(const char *s, enum sandbox_mode *out);
/* --user and --group: a name or a number; 0, or -ENOENT with err set. */
int sandbox_parse_user(const char *s, struct sandbox_config *c, char *err,
		       size_t errlen);
int sandbox_parse_group(const char *s, struct sandbox_config *c, char *err,
			size_t errlen);
/* Installs the hooks of virtiod/sandbox.h for this process (and the
 * device processes it forks); c is copied. */
void sandbox_setup(const struct sandbox_config *c);
/* The device type of this process, once known (a device process of
 * --config or xen-watch learns it from its record). */
void sandbox_set_device(const char *type);

/* ------------------------------------------------ sandbox_table.c */

/* One row: what a role may call when profile is in use (NULL: always). A
 * profile is a shim's name, a device type's, or one a store asked for
 * (vd_sandbox_need). */
struct sandbox_row {
	const char *profile;
	const char *const *calls;	  /* NULL-terminated syscall names */
	const unsigned char *ioctl_types; /* ioctl by _IOC_TYPE, 0-ended */
	const unsigned long *ioctls;	  /* ioctl by request, 0-ended */
	enum vd_sandbox_role role;
	bool loose; /* a library's threads: see the table */
};

extern const struct sandbox_row sandbox_table[];
extern const unsigned sandbox_table_len;
/* Roles whose threads a role starts (they inherit its filter, so it must
 * allow what they do): a bit per role. */
extern const unsigned sandbox_spawns[VD_SANDBOX_ROLES];
extern const char *const sandbox_role_name[VD_SANDBOX_ROLES];

#endif
