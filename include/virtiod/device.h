/* Device models and the device lifecycle: the virtio status state machine,
 * feature negotiation, config space with a generation counter, and one
 * thread per virtqueue. A device model sees only this header, virtqueue.h,
 * guest_mem.h, event_loop.h and log.h: it knows no hypervisor. */
#ifndef VIRTIOD_DEVICE_H
#define VIRTIOD_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtiod/event_loop.h"
#include "virtiod/guest_mem.h"
#include "virtiod/virtqueue.h"

struct vd_dev;
struct vd_queue;

/* ---------------------------------------------------------------- models */

/* What a device model implements. Queue callbacks run on that queue's own
 * thread; config callbacks on the shim's control thread. */
struct vd_device_ops {
	/* Config space: copy `len` bytes at `off` (the core has checked
	 * off+len <= config_size). */
	void (*get_config)(void *model, uint32_t off, void *buf, uint32_t len);
	/* Driver write to config space; return 0, or -EPERM for a read-only
	 * field (ignored and logged by the caller). */
	int (*set_config)(void *model, uint32_t off, const void *buf,
			  uint32_t len);
	/* FEATURES_OK accepted with these features. */
	void (*set_features)(void *model, uint64_t features);
	/* A queue is about to run: register fds on the queue's loop (I/O
	 * completions), allocate per-queue state. Return 0 or -errno. */
	int (*queue_start)(void *model, struct vd_queue *q);
	/* The driver kicked (or requeued chains wait): pop, submit. The
	 * core has turned driver notifications off (vd_vq_disable_notify)
	 * and turns them on again, re-checking the ring, before the queue
	 * sleeps; so pop until vd_vq_pop returns 0, or stop early and call
	 * vd_queue_rekick. Chains left in the ring otherwise wait for the
	 * driver's next kick. vd_vq_pop gives nothing while a guest-memory
	 * writer waits; the core kicks again once it is done. What the
	 * model pushed (here, in its fd callbacks, in queue_poll and
	 * queue_stop) the core publishes and notifies once per round. */
	void (*queue_kick)(void *model, struct vd_queue *q);
	/* Optional, for busy polling (vd_queue_setup.poll_us): deliver the
	 * completions that are ready, without blocking and preferably
	 * without a system call. Returns true if it delivered any. Without
	 * it, completions wait for the end of the polling window. */
	bool (*queue_poll)(void *model, struct vd_queue *q);
	/* Stop: finish every in-flight request and push its completion,
	 * release per-queue state. The queue's loop is still usable. */
	void (*queue_stop)(void *model, struct vd_queue *q);
	/* Optional: the backing store may have changed size, or the operator
	 * asks for `bytes` (0: only look at the store again). Runs on the
	 * composition root's control thread, never a queue's. Returns 1 if
	 * the config space changed (the core then tells the driver), 0 if
	 * not, -errno with the reason in err. */
	int (*resize)(void *model, uint64_t bytes, char *err, size_t errlen);
	/* Device reset (all queues already stopped). */
	void (*reset)(void *model);
	void (*destroy)(void *model);
};

/* Common part of every device model, embedded in the model's struct. */
struct vd_model {
	const struct vd_device_ops *ops;
	const char *type_name; /* "blk" */
	uint32_t device_id;    /* VIRTIO_ID_* */
	uint64_t features;     /* offered, including VIRTIO_F_VERSION_1 etc. */
	uint16_t num_queues;
	uint16_t max_queue_size;
	uint32_t config_size;
	/* The largest chain the model serves: descriptors, and bytes per
	 * descriptor (virtio-blk: seg_max data segments plus header and
	 * status, size_max). The core sizes each element's iovecs from these
	 * and from how guest memory splits a range (vd_mem_max_pieces); the
	 * model learns the result from vd_queue_max_iov. */
	unsigned max_descs;
	uint32_t max_desc_len;
};

/* A device type for the command line and the registry
 * (src/main/registry.c). Options are parsed into an opaque struct. */
struct vd_device_option {
	const char *name;     /* long option, without "--" */
	const char *arg_name; /* NULL: a flag without argument */
	const char *help;
};

/* A key a toolstack writes in the device's backend node, and the option it
 * stands for (Xen 4.17's libxl, virtio disk: params is the image, mode=r
 * read-only). Data for a discovery source that serves a node without a
 * configuration line; the model never sees it. */
struct vd_device_backend_key {
	const char *key;      /* "params" */
	const char *match;    /* NULL: the key's value is the option's value;
				 else the option, a flag, when it holds this */
	const char *option;   /* "disk" */
	const char *required; /* what a node without the key lacks ("disk
				 image"): refused; NULL: optional */
};

struct vd_device_type {
	const char *name;
	const char *summary;
	uint32_t device_id; /* VIRTIO_ID_*: how a toolstack names the type */
	const struct vd_device_option *options; /* terminated by {NULL} */
	/* Terminated by {NULL}; NULL: a toolstack's node alone cannot
	 * describe this device. */
	const struct vd_device_backend_key *backend_keys;
	/* NULL for a type without options (then opts_set and opts_free may
	 * be NULL too, and create gets NULL): callers go through
	 * vd_device_type_opts_new/_set/_free below. */
	void *(*opts_new)(void);
	/* Returns 0, or -EINVAL with a message naming the option in err. */
	int (*opts_set)(void *opts, const char *name, const char *value,
			char *err, size_t errlen);
	/* Opens backing stores; errors name the thing and what to do. */
	int (*create)(void *opts, struct vd_model **out, char *err,
		      size_t errlen);
	void (*opts_free)(void *opts);
	/* vhost-user --print-capabilities "type" (e.g. "blk-fs"?), or "" */
	const char *vhost_user_type;
};

/* A type's options, whether it has any or not (src/core/device_type.c).
 * opts_new: 0 with *opts NULL for a type without options, or -ENOMEM.
 * opts_set: -EINVAL naming the option in err if the type has none.
 * opts_free: NULL is fine. */
int vd_device_type_opts_new(const struct vd_device_type *t, void **opts);
int vd_device_type_opts_set(const struct vd_device_type *t, void *opts,
			    const char *name, const char *value, char *err,
			    size_t errlen);
void vd_device_type_opts_free(const struct vd_device_type *t, void *opts);

/* ---------------------------------------------------------------- device */

/* How the core reaches back into the shim. Called from queue threads and
 * the control thread; must be thread-safe and must not wait for the control
 * thread (it may be joining the calling queue thread). */
struct vd_dev_shim_ops {
	/* Used buffers are published and the driver wants an interrupt. */
	void (*notify_queue)(void *shim, struct vd_queue *q);
	/* Config changed (or NEEDS_RESET was set): config interrupt. */
	void (*notify_config)(void *shim);
};

struct vd_dev *vd_dev_new(struct vd_model *model, struct vd_mem *mem,
			  const struct vd_dev_shim_ops *shim_ops, void *shim,
			  const char *who);
/* Stops every queue, destroys the model, frees the device. */
void vd_dev_free(struct vd_dev *dev);

struct vd_model *vd_dev_model(struct vd_dev *dev);
struct vd_mem *vd_dev_mem(struct vd_dev *dev);
const char *vd_dev_who(const struct vd_dev *dev);

/* Status (virtio 1.2 §2.1, §3.1). Writing 0 resets the device (queues
 * stopped, features cleared). Other writes must keep every bit already set
 * (bits are only cleared by reset); FEATURES_OK is accepted only if the
 * driver features are a subset of the offered ones (and VERSION_1 is
 * among them), otherwise the bit stays clear; DRIVER_OK requires
 * FEATURES_OK. Returns 0, or -EINVAL if the write was refused (logged). */
int vd_dev_set_status(struct vd_dev *dev, uint8_t status);
uint8_t vd_dev_status(const struct vd_dev *dev);
/* The device broke (bad chain, ...): sets NEEDS_RESET, logs the reason
 * once, sends a config notification. */
void vd_dev_needs_reset(struct vd_dev *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

uint64_t vd_dev_device_features(const struct vd_dev *dev);
/* Before FEATURES_OK only; -EBUSY after. Checked at FEATURES_OK. */
int vd_dev_set_driver_features(struct vd_dev *dev, uint64_t features);
uint64_t vd_dev_driver_features(const struct vd_dev *dev);
/* vhost-user sets features directly (no status handshake): refuses bits
 * not offered (-EINVAL) and applies them to the model. */
int vd_dev_negotiate(struct vd_dev *dev, uint64_t features);

/* Config space: bounds-checked against config_size; -EINVAL outside. */
int vd_dev_config_read(struct vd_dev *dev, uint32_t off, void *buf,
		       uint32_t len);
int vd_dev_config_write(struct vd_dev *dev, uint32_t off, const void *buf,
			uint32_t len);
uint32_t vd_dev_config_generation(const struct vd_dev *dev);
/* A model changed its config (resize, WCE): bump generation, notify. */
void vd_dev_config_changed(struct vd_dev *dev);
/* model->resize, and a config change notification if the config space
 * changed: 1 changed, 0 not, -EOPNOTSUPP (a model without a size) or the
 * model's -errno, with the reason in err. Not from a queue thread. */
int vd_dev_resize(struct vd_dev *dev, uint64_t bytes, char *err, size_t errlen);

/* Every device of the process, oldest first, for the composition root's
 * control socket: fn runs under the registry's lock, so the device is not
 * freed meanwhile (vd_dev_free waits). fn must not create or free a
 * device. */
void vd_dev_for_each(void (*fn)(struct vd_dev *dev, void *arg), void *arg);

/* ---------------------------------------------------------------- queues */

unsigned vd_dev_num_queues(const struct vd_dev *dev);
struct vd_queue *vd_dev_queue(struct vd_dev *dev, unsigned idx);

/* Queue configuration by the shim, while the queue is stopped. */
struct vd_queue_setup {
	struct vd_vq_config vq;	  /* max_iov may be 0: from the model's
				     limits (vd_queue_max_iov) */
	struct vd_vq_hooks hooks; /* shim hooks (inflight, logging); on_broken
				     is wrapped by the core */
	int kick_fd; /* eventfd the driver's kicks arrive on (not owned; set
			non-blocking), or -1 for none yet */
	/* Chains in flight before a reconnect (vhost-user INFLIGHT_SHMFD):
	 * passed to vd_vq_requeue before the first kick; read only during
	 * vd_queue_start. */
	const uint16_t *requeue;
	unsigned n_requeue;
	/* Busy polling: after serving, the queue thread watches the ring
	 * (driver notifications off) and the model's completions for up to
	 * this many microseconds before it sleeps; 0: the process default
	 * (vd_queue_set_default_poll_us, itself 0 = never poll). */
	unsigned poll_us;
};

/* Largest polling window, in microseconds. */
#define VD_QUEUE_POLL_US_MAX 1000000u

/* The polling window of queues started later whose setup leaves poll_us
 * at 0 (the daemon's --poll-us). 0 turns polling off. Values above
 * VD_QUEUE_POLL_US_MAX are capped. */
void vd_queue_set_default_poll_us(unsigned us);

/* Starts the queue's thread, which creates the vd_vq, calls
 * model->queue_start and then serves kicks until stopped. Returns once the
 * thread has started (or failed): -EINVAL bad setup (size above the
 * model's max_queue_size, or refused by vd_vq_new), -EBUSY already
 * running, or what vd_mem_reader_register / queue_start returned. */
int vd_queue_start(struct vd_queue *q, const struct vd_queue_setup *setup);
/* Stops the thread after model->queue_stop has drained in-flight requests;
 * reports where the ring stands (any output may be NULL). No-op (returns
 * 0) if not running; -EDEADLK from the queue's own thread. */
int vd_queue_stop(struct vd_queue *q, uint16_t *avail_idx, bool *avail_wrap,
		  uint16_t *used_idx, bool *used_wrap);
bool vd_queue_running(const struct vd_queue *q);
/* Replace the kick fd of a running queue (vhost-user SET_VRING_KICK), -1
 * for none. Returns once the thread watches the new fd, so the caller may
 * close the old one then. -ESRCH if the queue is not running. */
int vd_queue_set_kick_fd(struct vd_queue *q, int kick_fd);
/* Dirty logging on/off (from any thread; takes effect before it returns).
 * Remembered across stop and start, cleared by device reset; needs
 * hooks.log_write. */
void vd_queue_set_logging(struct vd_queue *q, bool on);

/* For device models, on the queue's thread. */
unsigned vd_queue_index(const struct vd_queue *q);
struct vd_vq *vd_queue_vq(struct vd_queue *q);
/* Iovecs per element of the running queue: the setup's, or what the
 * model's largest chain can translate into (max_descs descriptors of
 * max_desc_len bytes, each split as guest memory may split it, plus
 * VD_QUEUE_IOV_SLACK), at most VD_VQ_MAX_IOV. */
unsigned vd_queue_max_iov(struct vd_queue *q);
/* Iovecs an element has beyond the model's limits: descriptors split
 * further than the model expects, ranges across region boundaries. */
#define VD_QUEUE_IOV_SLACK 16
struct vd_loop *vd_queue_loop(struct vd_queue *q);
struct vd_dev *vd_queue_dev(struct vd_queue *q);
const char *vd_queue_who(const struct vd_queue *q); /* "blk0 q1" */
void *vd_queue_model_data(struct vd_queue *q);
void vd_queue_set_model_data(struct vd_queue *q, void *data);
/* Publish the completions pushed so far and, if the driver wants it,
 * notify through the shim. The core does this after every round on the
 * queue's thread (a queue_kick, a queue_poll that delivered, the event
 * loop's callbacks, queue_stop), so a model only pushes; this is for a
 * model that wants its completions seen before its round ends. */
void vd_queue_complete_batch(struct vd_queue *q);
/* The queue's counters (any thread, while the device exists): kept
 * across stops and resets, from the device's creation on. */
void vd_queue_stats_read(const struct vd_queue *q, struct vd_vq_stats *out);
/* Ask the queue thread to run queue_kick again soon (from its own thread,
 * e.g. after I/O freed capacity). */
void vd_queue_rekick(struct vd_queue *q);
/* A queue the device fills (a receive queue), from queue_start on: the
 * driver posts buffers ahead of any data, so buffers in the ring are not
 * work and their kicks are not wanted. While the device has buffers it
 * takes them when its data comes (its own fd on the queue's loop), and
 * the core leaves driver notifications off. */
void vd_queue_set_device_filled(struct vd_queue *q);
/* The device has data and no buffer left (vd_vq_pop gave nothing): it
 * stops taking data in (a tap stays unread, its own queue holds the
 * packets) and calls this; the core asks the driver for a kick and calls
 * queue_kick once buffers are there, at once if some came meanwhile.
 * Once: queue_kick calls it again if it is still short. */
void vd_queue_wait_buffers(struct vd_queue *q);

#endif
