/* Readiness: a shim says once its device can be reached (the socket
 * listens, the IOREQ server is enabled, the watcher watches); the
 * composition root passes it on (systemd's sd_notify READY=1), so that
 * units ordered after this one start only then. */
#ifndef VIRTIOD_READY_H
#define VIRTIOD_READY_H

/* status: what is ready, for the service manager ("listening on ..."). */
void vd_ready(const char *status);
/* Who hears it; NULL: nobody (the default, and in device processes of the
 * multi-device modes, whose parent speaks for them). */
void vd_ready_set_hook(void (*hook)(const char *status));

#endif
