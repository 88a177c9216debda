/* What virtiod is made of: every device type and every shim. Adding a
 * device model or a shim adds one line here and nothing else in src/main. */
#include <string.h>

#include "registry.h"

extern const struct vd_device_type vd_blk_type;
extern const struct vd_device_type vd_net_type;
extern const struct vd_device_type vd_rng_type;

static const struct vd_device_type *const types[] = {
	&vd_blk_type,
	&vd_net_type,
	&vd_rng_type,
	NULL,
};

extern const struct vd_shim vd_vu_shim;
extern const struct vd_shim vd_xen_shim;

/* --help lists them in this order. */
static const struct vd_shim *const shims[] = {
	&vd_vu_shim,
	&vd_xen_shim,
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

const struct vd_shim *const *vd_shims(void)
{
	return shims;
}
