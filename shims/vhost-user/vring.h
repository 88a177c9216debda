/* SET_VRING_* / GET_VRING_BASE and starting and stopping each ring's queue
 * thread (vring.c). */
#ifndef VIRTIOD_SHIM_VU_VRING_H
#define VIRTIOD_SHIM_VU_VRING_H

#include <stdbool.h>
#include <stddef.h>

#include "virtiod/device.h"

#include "messages.h"
#include "vu_state.h"

vu_handler vu_set_vring_num, vu_set_vring_addr, vu_set_vring_base,
	vu_get_vring_base, vu_set_vring_kick, vu_set_vring_call,
	vu_set_vring_err, vu_set_vring_enable;

int vu_vrings_new(struct vu_backend *b);
void vu_vrings_free(struct vu_backend *b);
/* Stop a running ring, keeping where it stands as its base. */
void vu_ring_stop(struct vu_backend *b, struct vu_vring *vr);
/* Stop every ring; with `forget`, also drop its configuration and fds. */
void vu_rings_stop_all(struct vu_backend *b, bool forget);
/* Start a ring that should run and does not; 0 if nothing to do. */
int vu_ring_try_start(struct vu_backend *b, struct vu_vring *vr, char *why,
		      size_t whylen);
/* Memory-table changes: stop rings inside [hva, hva+len) (all running
 * rings if len is 0), then restart what should run. */
void vu_rings_suspend(struct vu_backend *b, const void *hva, size_t len);
void vu_rings_resume(struct vu_backend *b);
/* The core's notify_queue: the ring's call eventfd. */
void vu_notify_queue(void *shim, struct vd_queue *q);
/* Apply dirty logging on/off (LOG_ALL and a log mapped) to every queue. */
void vu_rings_update_logging(struct vu_backend *b);
bool vu_ring_enabled(const struct vu_backend *b, const struct vu_vring *vr);

#endif
