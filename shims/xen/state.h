/* The restart record (state.c): which IOREQ server serves a window, and
 * the device and queue state a successor process needs to carry on. */
#ifndef VIRTIOD_SHIM_XEN_STATE_H
#define VIRTIOD_SHIM_XEN_STATE_H

#include "xen_priv.h"

struct vd_xen_state;

/* <dir>/xen-<domid>-<base>.state */
void vd_xen_state_path(char *buf, size_t len, const char *dir, uint32_t domid,
		       uint64_t base);

/* ---- a predecessor's record, read once at start */
struct vd_xen_prev {
	int server_id; /* -1: none */
	uint8_t dom_handle[16];
	bool have_device;
	bool clean; /* handover: positions exact, nothing in flight */
	unsigned nq, qmax;
	struct vd_mmio_state st;
	uint8_t *data;
	size_t len;
};

/* May the record at path be trusted and written? Its directory must be
 * owned by root or us and not writable by group or others unless sticky;
 * the path must not be a symlink or another user's file. 0, or -errno
 * with the reason, naming what is wrong and what to do, in why. */
int vd_xen_state_check(const char *path, char *why, size_t len);

/* 0, -ENOENT, -ELOOP (a symlink), -EPERM (not a regular file of root's
 * or ours), or -EINVAL for a file that is not a whole record. */
int vd_xen_prev_load(const char *path, struct vd_xen_prev *p);
void vd_xen_prev_free(struct vd_xen_prev *p);
/* Queue i's registers, with its positions: exact after a handover; after a
 * crash, where it started (its inflight region says where it goes on). */
void vd_xen_prev_queue(const struct vd_xen_prev *p, unsigned i,
		       struct vd_mmio_queue_state *qs);
/* Queue i's inflight region after a crash, for vd_xen_state_queue_start;
 * NULL after a handover (nothing in flight) or for a queue not ready. */
const void *vd_xen_prev_inflight(const struct vd_xen_prev *p, unsigned i);

/* ---- our own record, mapped shared while we serve */
int vd_xen_state_create(const char *path, unsigned nq, unsigned qmax,
			struct vd_xen_state **out);
/* remove: delete the file (the device is gone, nobody takes over). */
void vd_xen_state_close(struct vd_xen_state *s, bool remove);
void vd_xen_state_set_server(struct vd_xen_state *s, int id,
			     const uint8_t handle[16]);
/* Registers after a driver write; clean: a handover with exact positions. */
void vd_xen_state_set_device(struct vd_xen_state *s,
			     const struct vd_mmio_state *st,
			     const struct vd_mmio_queue_state *qs, bool clean);
/* Queue i starts with `setup` (rings mapped): its inflight region starts
 * empty at setup's positions or, with `prev` (vd_xen_prev_inflight), takes
 * the predecessor's record over and recovers it: setup's positions move and
 * setup->requeue names the chains to serve again (kept till the next
 * start). Hooks the queue's thread to the region. 0 or -errno. */
int vd_xen_state_queue_start(struct vd_xen_state *s, unsigned i,
			     struct vd_queue_setup *setup, const void *prev);

#endif
