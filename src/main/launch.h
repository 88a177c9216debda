/* The process launcher of the multi-device modes (struct vd_launcher in
 * virtiod/shim.h): one process per device, the model built here from the
 * device's record. */
#ifndef VIRTIOD_MAIN_LAUNCH_H
#define VIRTIOD_MAIN_LAUNCH_H

#include "virtiod/shim.h"

/* A launcher whose devices are served by shim, their models built from
 * types (NULL-terminated). NULL when out of memory. */
struct vd_launcher *vd_launcher_new(const struct vd_shim *shim,
				    const struct vd_device_type *const *types);
/* Frees the slots; the processes must have been stopped (stop_all). */
void vd_launcher_free(struct vd_launcher *l);
/* Each device process then has a control socket in dir, named after the
 * device ("blk dom7 dev0" -> blk-dom7-dev0.ctl); NULL: none (the size
 * watch still runs). dir is kept, not copied. */
void vd_launch_set_control_dir(const char *dir);

#endif
