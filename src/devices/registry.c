/* The device types virtiod can serve. Adding a device model adds one line. */
#include <string.h>

#include "virtiod/device.h"

extern const struct vd_device_type vd_blk_type;

static const struct vd_device_type *const types[] = {
	&vd_blk_type,
	NULL,
};

const struct vd_device_type *const *vd_device_types(void)
{
	return types;
}

const struct vd_device_type *vd_device_type_find(const char *name)
{
	for (unsigned i = 0; types[i]; i++)
		if (strcmp(types[i]->name, name) == 0)
			return types[i];
	return NULL;
}
