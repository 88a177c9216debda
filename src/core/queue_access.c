/* The queue's plain accessors and its array, apart from the thread and
 * the control side (queue.c). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "queue_priv.h"

struct vd_queue *vd_queues_new(struct vd_dev *dev, unsigned n)
{
	struct vd_queue *qs = calloc(n, sizeof(*qs));

	if (!qs)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		struct vd_queue *q = &qs[i];

		q->dev = dev;
		q->index = i;
		snprintf(q->who, sizeof(q->who), "%s q%u", vd_dev_who(dev), i);
		if (pthread_mutex_init(&q->ctl_lock, NULL) != 0) {
			vd_queues_free(qs, i);
			return NULL;
		}
		q->kick_fd = -1;
		q->mem_slot = -1;
	}
	return qs;
}

void vd_queues_free(struct vd_queue *queues, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_mutex_destroy(&queues[i].ctl_lock);
	free(queues);
}

struct vd_queue *vd_queues_at(struct vd_queue *queues, unsigned idx)
{
	return &queues[idx];
}

unsigned vd_queue_index(const struct vd_queue *q)
{
	return q->index;
}

unsigned vd_queue_max_iov(struct vd_queue *q)
{
	return q->vq ? vd_vq_max_iov(q->vq) : 0;
}

struct vd_vq *vd_queue_vq(struct vd_queue *q)
{
	return q->vq;
}

struct vd_loop *vd_queue_loop(struct vd_queue *q)
{
	return q->loop;
}

struct vd_dev *vd_queue_dev(struct vd_queue *q)
{
	return q->dev;
}

const char *vd_queue_who(const struct vd_queue *q)
{
	return q->who;
}

void *vd_queue_model_data(struct vd_queue *q)
{
	return q->model_data;
}

void vd_queue_set_model_data(struct vd_queue *q, void *data)
{
	q->model_data = data;
}

bool vd_queue_running(const struct vd_queue *q)
{
	return atomic_load(&q->running);
}

void vd_queue_stats_read(const struct vd_queue *q, struct vd_vq_stats *out)
{
	vd_vq_stats_read(&q->stats, out);
}

void vd_queue_rekick(struct vd_queue *q)
{
	q->kick_pending = true;
}

void vd_queue_set_device_filled(struct vd_queue *q)
{
	q->device_filled = true;
}

void vd_queue_wait_buffers(struct vd_queue *q)
{
	q->wait_buffers = true;
}
