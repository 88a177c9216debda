/* GET/SET_INFLIGHT_FD and each ring's inflight tracking (inflight.c). */
#ifndef VIRTIOD_SHIM_VU_INFLIGHT_H
#define VIRTIOD_SHIM_VU_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtiod/virtqueue.h"

#include "messages.h"
#include "vu_state.h"

vu_handler vu_get_inflight_fd, vu_set_inflight_fd;

void vu_inflight_unmap(struct vu_backend *b);
/* Before a ring starts: attach its inflight region, recover what was in
 * flight and adjust the start position; may fill vr->requeue. Returns the
 * number of heads to requeue (split), or <0 with why. */
int vu_inflight_prepare(struct vu_backend *b, struct vu_vring *vr,
			struct vd_vq_config *cfg, char *why, size_t whylen);
void vu_inflight_release(struct vu_vring *vr);
/* The queue thread's hooks while the ring runs (struct vd_vq_hooks). */
void vu_inflight_on_pop(void *ctx, const struct vd_vq_elem *e);
void vu_inflight_on_unpop(void *ctx, const struct vd_vq_elem *e);
void vu_inflight_on_push(void *ctx, const struct vd_vq_elem *e);
void vu_inflight_on_publish(void *ctx, uint16_t used_idx, bool used_wrap);
/* Bytes one queue's region takes (header and entries, aligned). */
size_t vu_inflight_queue_size(bool packed, uint16_t queue_size);

#endif
