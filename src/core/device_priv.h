/* What device.c and queue.c share: the queue array a device owns and the
 * shim call a queue makes. Nothing outside src/core includes this. */
#ifndef VIRTIOD_CORE_DEVICE_PRIV_H
#define VIRTIOD_CORE_DEVICE_PRIV_H

#include "virtiod/device.h"

/* Room for "<device who> q<index>". */
#define VD_WHO_MAX 64

/* n stopped queues for dev; NULL on allocation failure. */
struct vd_queue *vd_queues_new(struct vd_dev *dev, unsigned n);
/* The queues must be stopped. */
void vd_queues_free(struct vd_queue *queues, unsigned n);
struct vd_queue *vd_queues_at(struct vd_queue *queues, unsigned idx);

/* The shim's notify_queue, for vd_queue_complete_batch. */
void vd_dev_notify_queue(struct vd_dev *dev, struct vd_queue *q);

#endif
