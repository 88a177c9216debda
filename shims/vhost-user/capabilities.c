/* --print-capabilities ("Backend program conventions"): vhost-user.json's
 * VHostUserBackendCapabilities. A feature is reported only when the device
 * type really has the command-line option it names. */
#include <stdio.h>
#include <string.h>

#include "vhost_user.h"

/* vhost-user.json: per backend type, the features and the option each one
 * stands for ("@read-only: The --read-only command line option is
 * supported", ...). */
static const struct {
	const char *type;
	const char *feature;
	const char *option;
} known[] = {
	{"block", "read-only", "read-only"},
	{"block", "blk-file", "blk-file"},
	{"gpu", "render-node", "render-node"},
	{"gpu", "virgl", "virgl"},
	{"input", "evdev-path", "evdev-path"},
	{"input", "no-grab", "no-grab"},
};

static bool has_option(const struct vd_device_type *type, const char *name)
{
	for (const struct vd_device_option *o = type->options; o && o->name;
	     o++)
		if (strcmp(o->name, name) == 0)
			return true;
	return false;
}

void vd_vu_print_capabilities(const struct vd_device_type *type)
{
	const char *sep = "";

	printf("{\n  \"type\": \"%s\",\n  \"features\": [",
	       type->vhost_user_type && *type->vhost_user_type
		       ? type->vhost_user_type
		       : type->name);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (!type->vhost_user_type ||
		    strcmp(known[i].type, type->vhost_user_type) != 0 ||
		    !has_option(type, known[i].option))
			continue;
		printf("%s\n    \"%s\"", sep, known[i].feature);
		sep = ",";
	}
	printf("%s]\n}\n", *sep ? "\n  " : "");
}
