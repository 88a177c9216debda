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

/* 0, -ENOENT, or -EINVAL for a file that is not a whole record. */
int vd_xen_prev_load(const char *path, struct vd_xen_prev *p);
void vd_xen_prev_free(struct vd_xen_prev *p);
/* Queue i's registers and where to restart it. */
void vd_xen_prev_queue(const struct vd_xen_prev *p, unsigned i,
		       struct vd_mmio_queue_state *qs);
/* Split queue i's chains in flight at the crash, in submission order, into
 * heads (room for the queue size); `ring_used` is used->idx read from the
 * ring. -EOPNOTSUPP for a packed queue with chains in flight. */
int vd_xen_prev_requeue(const struct vd_xen_prev *p, unsigned i,
			uint16_t ring_used, uint16_t *heads, unsigned *n);

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
/* Queue i starts at `vq`'s position with n_requeue chains to serve first:
 * reset its in-flight record and hook its thread to it. */
void vd_xen_state_queue_start(struct vd_xen_state *s, unsigned i,
			      const struct vd_vq_config *vq, unsigned n_requeue,
			      struct vd_vq_hooks *hooks);

#endif
