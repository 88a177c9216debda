/* The control socket of a device process (docs/operations.md): one
 * listening unix socket, served by one thread of the composition root for
 * every device and shim. A line in ("stats json", "stats table", "stats
 * prometheus", "resize BYTES"), a reply out ("ok" or "error: why", then
 * the body), the connection closed. The same thread looks at each device's
 * backing store once a second, so a grown or shrunk image reaches the
 * guest. It needs only accept, read, write, poll and close besides what a
 * model's resize does (fstat or an ioctl, ftruncate): a seccomp filter
 * stays short. */
#ifndef VIRTIOD_MAIN_CONTROL_H
#define VIRTIOD_MAIN_CONTROL_H

#include <stddef.h>

struct vd_control;

/* How often the backing stores are looked at, in milliseconds. */
#define VD_CONTROL_RESCAN_MS 1000

/* Starts the thread; path NULL: no socket, the size watch only. 0, or
 * -errno with the reason in err (the path is named). */
int vd_control_start(const char *path, struct vd_control **out, char *err,
		     size_t errlen);
/* Stops the thread, removes the socket it made. NULL is fine. */
void vd_control_stop(struct vd_control *c);

/* The client side of the protocol, for `virtiod stat` and `virtiod
 * resize`: sends line, reads the whole reply. 0 with *body (malloc'ed,
 * after the "ok" line), or -errno with the reason in err (the daemon's
 * own "error: ..." included). */
int vd_control_call(const char *path, const char *line, char **body, char *err,
		    size_t errlen);

#endif
