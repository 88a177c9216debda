/* The composition root's two lists: the device types virtiod can serve and
 * the shims it can serve them through. */
#ifndef VIRTIOD_MAIN_REGISTRY_H
#define VIRTIOD_MAIN_REGISTRY_H

#include "virtiod/device.h"
#include "virtiod/shim.h"

/* NULL-terminated, in registry order. */
const struct vd_device_type *const *vd_device_types(void);
const struct vd_device_type *vd_device_type_find(const char *name);
const struct vd_shim *const *vd_shims(void);

#endif
