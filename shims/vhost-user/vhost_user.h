/* vhost-user shim: the backend side of QEMU's docs/interop/vhost-user.rst
 * for any device model. The daemon's main calls in here; nothing here knows
 * which device it serves. */
#ifndef VIRTIOD_SHIM_VHOST_USER_H
#define VIRTIOD_SHIM_VHOST_USER_H

#include <stdbool.h>
#include <sys/types.h>

#include "virtiod/device.h"

struct vd_vu_config {
	const char *socket_path; /* listen here (unlinked first), or */
	int listen_fd;		 /* an already listening socket (--fd), or -1 */
	const char *who;	 /* log subject, e.g. "blk0" */
	bool group_set;		 /* --socket-group: */
	gid_t socket_group;	 /* may connect too (0660) */
};

/* Serve one frontend at a time on the socket until *stop becomes true or a
 * fatal error. After each disconnect the device is reset and the socket
 * listens again. Returns 0 on a requested stop, -errno otherwise (logged).
 *
 * The model is taken over: it is destroyed before this returns, also on
 * failure. Call it from the thread that should see SIGTERM/SIGINT: that
 * thread takes asynchronous signals only while it waits, so a handler that
 * sets *stop ends the loop promptly; in-flight requests complete first. A
 * socket created at socket_path is removed on return. */
int vd_vu_serve(const struct vd_vu_config *cfg, struct vd_model *model,
		volatile int *stop);

/* --print-capabilities JSON for a device type, on stdout. */
void vd_vu_print_capabilities(const struct vd_device_type *type);

#endif
