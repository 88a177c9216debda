/* The queue object, shared by queue.c (its thread and the control side)
 * and queue_access.c (the plain accessors models call). */
#ifndef VIRTIOD_CORE_QUEUE_PRIV_H
#define VIRTIOD_CORE_QUEUE_PRIV_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtiod/device.h"

#include "device_priv.h"

struct vd_queue {
	/* fixed at vd_dev_new */
	struct vd_dev *dev;
	unsigned index;
	char who[VD_WHO_MAX];

	/* control side: start, stop and the calls into a running thread are
	 * serialised by ctl_lock */
	pthread_mutex_t ctl_lock;
	pthread_t thread;
	atomic_bool running;
	atomic_bool logging;	     /* wanted; applied at every start */
	struct vd_queue_setup setup; /* read by the thread while starting */
	sem_t started;
	int start_err;
	/* written by the thread as it ends, read after the join */
	uint16_t base_avail_idx, base_used_idx;
	bool base_avail_wrap, base_used_wrap;

	/* queue thread (the loop is created and freed by the control side
	 * around the thread's life) */
	struct vd_loop *loop;
	struct vd_vq *vq;
	struct vd_vq_hooks hooks; /* forwarders to setup.hooks */
	void *model_data;
	int kick_fd; /* -1: none */
	bool kick_watched;
	bool kick_edge;	   /* an eventfd, watched edge-triggered, never read */
	bool kick_pending; /* a kick or a rekick waits for queue_kick */
	/* Driver notifications are off: the thread serves or polls, and
	 * turns them on (re-checking the ring) before it sleeps. */
	bool notify_off;
	/* queue_kicks in a row that left chains in the ring without taking
	 * one or asking for a rekick. One can be a race (a chain added just
	 * after the model's last pop); from two on, the model is waiting
	 * for something (a reset): chains found by the re-check or by
	 * polling then wait for the driver's next kick instead of making
	 * the thread spin. */
	unsigned stalls;
	/* A queue the device fills (vd_queue_set_device_filled): buffers
	 * in the ring are work only while the model waits for them. */
	bool device_filled;
	bool wait_buffers;
	uint64_t poll_ns;    /* busy-polling window, 0: off */
	uint64_t last_round; /* when the loop last ran (polling only) */
	bool broken;
	int mem_slot;
	bool mem_entered;

	/* Written by the queue thread (and its vq) only, from the device's
	 * creation on; read by anyone through vd_queue_stats_read. */
	struct vd_vq_stats stats;
};

#endif
