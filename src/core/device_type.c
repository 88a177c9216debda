/* Option handling shared by every caller of a device type (the command
 * line, the Xen launcher, tests): a type without options leaves opts_new,
 * opts_set and opts_free NULL, and its create gets NULL options. */
#include <errno.h>
#include <stdio.h>

#include "virtiod/device.h"

int vd_device_type_opts_new(const struct vd_device_type *t, void **out)
{
	*out = NULL;
	if (!t->opts_new)
		return 0;
	*out = t->opts_new();
	return *out ? 0 : -ENOMEM;
}

int vd_device_type_opts_set(const struct vd_device_type *t, void *opts,
			    const char *name, const char *value, char *err,
			    size_t errlen)
{
	if (!t->opts_set || (t->opts_new && !opts)) {
		snprintf(err, errlen, "--%s: not a %s option", name, t->name);
		return -EINVAL;
	}
	return t->opts_set(opts, name, value, err, errlen);
}

void vd_device_type_opts_free(const struct vd_device_type *t, void *opts)
{
	if (opts && t->opts_free)
		t->opts_free(opts);
}
