/* Device lifecycle: the virtio status state machine (virtio 1.2 §2.1, §3.1),
 * feature negotiation and config space. Driver writes are checked here and
 * refused with a logged reason; nothing a driver writes can abort the
 * daemon or clear a status bit other than by reset. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "device_priv.h"

#define STATUS_KNOWN                                                           \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |                \
	 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK |             \
	 VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)

struct vd_dev {
	/* fixed at vd_dev_new */
	struct vd_model *model;
	struct vd_mem *mem;
	const struct vd_dev_shim_ops *shim_ops;
	void *shim;
	char who[VD_WHO_MAX];
	struct vd_queue *queues;

	/* Written by the control thread; queue threads OR in NEEDS_RESET,
	 * hence atomic (never on a per-request path). */
	_Atomic uint8_t status;
	_Atomic uint64_t driver_features;
	/* Bumped by the model from any thread; never rewinds, also across
	 * reset, so a driver's before/after comparison stays valid. */
	atomic_uint config_generation;

	/* control thread: refused driver accesses (config, status,
	 * features). A driver can repeat them as fast as it can trap, so
	 * every such line goes through this limit. */
	struct vd_ratelimit driver_rl;

	/* NEEDS_RESET lines, from any thread: a driver that breaks a queue,
	 * resets and breaks it again must not flood the host's log. */
	pthread_mutex_t broken_lock;
	struct vd_ratelimit broken_rl;

	/* the process's device list (registry_lock) */
	struct vd_dev *next;
};

/* Every live device, for vd_dev_for_each; taken at creation and free,
 * never on a request's path. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vd_dev *registry;

static void registry_add(struct vd_dev *dev)
{
	struct vd_dev **p;

	pthread_mutex_lock(&registry_lock);
	for (p = &registry; *p; p = &(*p)->next)
		;
	*p = dev;
	pthread_mutex_unlock(&registry_lock);
}

static void registry_del(struct vd_dev *dev)
{
	pthread_mutex_lock(&registry_lock);
	for (struct vd_dev **p = &registry; *p; p = &(*p)->next)
		if (*p == dev) {
			*p = dev->next;
			break;
		}
	pthread_mutex_unlock(&registry_lock);
}

void vd_dev_for_each(void (*fn)(struct vd_dev *dev, void *arg), void *arg)
{
	pthread_mutex_lock(&registry_lock);
	for (struct vd_dev *d = registry; d; d = d->next)
		fn(d, arg);
	pthread_mutex_unlock(&registry_lock);
}

/* A refused or odd driver access, rate-limited (control thread). */
#define driver_warn(dev, ...)                                                  \
	vd_log_ratelimited(&(dev)->driver_rl, VD_LOG_WARN, (dev)->who,         \
			   __VA_ARGS__)

struct vd_dev *vd_dev_new(struct vd_model *model, struct vd_mem *mem,
			  const struct vd_dev_shim_ops *shim_ops, void *shim,
			  const char *who)
{
	const struct vd_device_ops *ops = model ? model->ops : NULL;
	struct vd_dev *dev;

	if (!ops || !ops->queue_kick || !mem || !shim_ops ||
	    model->num_queues == 0 || (model->config_size && !ops->get_config))
		return NULL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->model = model;
	dev->mem = mem;
	dev->shim_ops = shim_ops;
	dev->shim = shim;
	if (!who)
		who = model->type_name ? model->type_name : "dev";
	snprintf(dev->who, sizeof(dev->who), "%s", who);
	dev->driver_rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	dev->broken_rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	if (pthread_mutex_init(&dev->broken_lock, NULL) != 0) {
		free(dev);
		return NULL;
	}
	dev->queues = vd_queues_new(dev, model->num_queues);
	if (!dev->queues) {
		pthread_mutex_destroy(&dev->broken_lock);
		free(dev);
		return NULL;
	}
	registry_add(dev);
	return dev;
}

static void stop_queues(struct vd_dev *dev)
{
	for (unsigned i = 0; i < dev->model->num_queues; i++)
		vd_queue_stop(vd_queues_at(dev->queues, i), NULL, NULL, NULL,
			      NULL);
}

void vd_dev_free(struct vd_dev *dev)
{
	if (!dev)
		return;
	registry_del(dev);
	stop_queues(dev);
	vd_queues_free(dev->queues, dev->model->num_queues);
	if (dev->model->ops->destroy)
		dev->model->ops->destroy(dev->model);
	pthread_mutex_destroy(&dev->broken_lock);
	free(dev);
}

struct vd_model *vd_dev_model(struct vd_dev *dev)
{
	return dev->model;
}

struct vd_mem *vd_dev_mem(struct vd_dev *dev)
{
	return dev->mem;
}

const char *vd_dev_who(const struct vd_dev *dev)
{
	return dev->who;
}

unsigned vd_dev_num_queues(const struct vd_dev *dev)
{
	return dev->model->num_queues;
}

struct vd_queue *vd_dev_queue(struct vd_dev *dev, unsigned idx)
{
	if (idx >= dev->model->num_queues)
		return NULL;
	return vd_queues_at(dev->queues, idx);
}

void vd_dev_notify_queue(struct vd_dev *dev, struct vd_queue *q)
{
	if (dev->shim_ops->notify_queue)
		dev->shim_ops->notify_queue(dev->shim, q);
}

static void notify_config(struct vd_dev *dev)
{
	if (dev->shim_ops->notify_config)
		dev->shim_ops->notify_config(dev->shim);
}

/* ---------------------------------------------------------------- status */

/* virtio 1.2 §2.4: stop every queue, forget the negotiated features, let
 * the model return to its initial state. */
static void reset(struct vd_dev *dev)
{
	stop_queues(dev);
	/* Dirty logging is a negotiated feature too (vhost-user LOG_ALL). */
	for (unsigned i = 0; i < dev->model->num_queues; i++)
		vd_queue_set_logging(vd_queues_at(dev->queues, i), false);
	atomic_store(&dev->driver_features, 0);
	if (dev->model->ops->reset)
		dev->model->ops->reset(dev->model);
	atomic_store(&dev->status, 0);
	vd_debug(dev->who, "reset");
}

/* FEATURES_OK (virtio 1.2 §3.1.1 step 5): the driver accepted only what we
 * offered, and VERSION_1 (§6.1: a device refuses a legacy-only driver). */
static bool features_acceptable(struct vd_dev *dev)
{
	uint64_t drv = atomic_load(&dev->driver_features);
	uint64_t extra = drv & ~dev->model->features;

	if (extra) {
		driver_warn(dev,
			    "FEATURES_OK refused: driver features 0x%llx "
			    "include unoffered 0x%llx",
			    (unsigned long long)drv, (unsigned long long)extra);
		return false;
	}
	if (!(drv & (1ull << VIRTIO_F_VERSION_1))) {
		driver_warn(dev,
			    "FEATURES_OK refused: driver features 0x%llx lack "
			    "VERSION_1",
			    (unsigned long long)drv);
		return false;
	}
	return true;
}

int vd_dev_set_status(struct vd_dev *dev, uint8_t status)
{
	uint8_t old = atomic_load(&dev->status);
	uint8_t add, refused = 0;

	if (status == 0) {
		reset(dev);
		return 0;
	}
	/* NEEDS_RESET belongs to the device: a driver writing back what it
	 * read a moment ago must not clear it, nor can it set it. */
	status = (uint8_t)((status & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
			   (old & VIRTIO_CONFIG_S_NEEDS_RESET));
	/* virtio 1.2 §2.1.1: the driver MUST NOT clear a status bit. */
	if (old & ~status) {
		driver_warn(dev,
			    "status 0x%02x -> 0x%02x clears bits; refused "
			    "(only a write of 0 resets)",
			    old, status);
		return -EINVAL;
	}
	add = status & ~old;
	if (add & ~STATUS_KNOWN) {
		driver_warn(dev, "status bits 0x%02x are reserved; ignored",
			    add & ~STATUS_KNOWN);
		refused |= add & ~STATUS_KNOWN;
	}
	/* §3.1.1: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in this order;
	 * a refused bit stays clear so the driver reads back its failure. */
	if ((add & VIRTIO_CONFIG_S_DRIVER) &&
	    !(status & VIRTIO_CONFIG_S_ACKNOWLEDGE)) {
		driver_warn(dev, "DRIVER without ACKNOWLEDGE; refused");
		refused |= VIRTIO_CONFIG_S_DRIVER;
	}
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		if (!(status & VIRTIO_CONFIG_S_DRIVER) ||
		    (refused & VIRTIO_CONFIG_S_DRIVER)) {
			driver_warn(dev, "FEATURES_OK without DRIVER; refused");
			refused |= VIRTIO_CONFIG_S_FEATURES_OK;
		} else if (!features_acceptable(dev)) {
			refused |= VIRTIO_CONFIG_S_FEATURES_OK;
		}
	}
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    (!(status & VIRTIO_CONFIG_S_FEATURES_OK) ||
	     (refused & VIRTIO_CONFIG_S_FEATURES_OK))) {
		driver_warn(dev, "DRIVER_OK without FEATURES_OK; refused");
		refused |= VIRTIO_CONFIG_S_DRIVER_OK;
	}
	add &= (uint8_t)~refused;
	/* The model learns the features before the driver can see
	 * FEATURES_OK and go on to configure queues. */
	if ((add & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    dev->model->ops->set_features)
		dev->model->ops->set_features(
			dev->model, atomic_load(&dev->driver_features));
	/* fetch_or: a queue thread may set NEEDS_RESET meanwhile. */
	atomic_fetch_or(&dev->status, add);
	if (add & VIRTIO_CONFIG_S_FAILED)
		driver_warn(dev, "driver set FAILED");
	return refused ? -EINVAL : 0;
}

uint8_t vd_dev_status(const struct vd_dev *dev)
{
	return atomic_load(&dev->status);
}

void vd_dev_needs_reset(struct vd_dev *dev, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	if (atomic_fetch_or(&dev->status, VIRTIO_CONFIG_S_NEEDS_RESET) &
	    VIRTIO_CONFIG_S_NEEDS_RESET)
		return; /* already broken: reason logged, driver told */
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&dev->broken_lock);
	vd_log_ratelimited(&dev->broken_rl, VD_LOG_ERR, dev->who,
			   "device needs reset: %s", reason);
	pthread_mutex_unlock(&dev->broken_lock);
	/* §2.1.2: a config change notification tells the driver. */
	notify_config(dev);
}

/* -------------------------------------------------------------- features */

uint64_t vd_dev_device_features(const struct vd_dev *dev)
{
	return dev->model->features;
}

int vd_dev_set_driver_features(struct vd_dev *dev, uint64_t features)
{
	if (atomic_load(&dev->status) & VIRTIO_CONFIG_S_FEATURES_OK) {
		driver_warn(dev, "driver features written after FEATURES_OK; "
				 "ignored");
		return -EBUSY;
	}
	atomic_store(&dev->driver_features, features);
	return 0;
}

uint64_t vd_dev_driver_features(const struct vd_dev *dev)
{
	return atomic_load(&dev->driver_features);
}

int vd_dev_negotiate(struct vd_dev *dev, uint64_t features)
{
	uint64_t extra = features & ~dev->model->features;

	if (extra) {
		driver_warn(dev,
			    "features 0x%llx include unoffered 0x%llx; refused",
			    (unsigned long long)features,
			    (unsigned long long)extra);
		return -EINVAL;
	}
	atomic_store(&dev->driver_features, features);
	if (dev->model->ops->set_features)
		dev->model->ops->set_features(dev->model, features);
	return 0;
}

/* ---------------------------------------------------------------- config */

static int config_check(struct vd_dev *dev, const char *what, uint32_t off,
			uint32_t len)
{
	/* 64-bit sum: off + len cannot wrap. */
	if ((uint64_t)off + len <= dev->model->config_size)
		return 0;
	driver_warn(dev,
		    "config %s at %u+%u outside config space (%u bytes); "
		    "refused",
		    what, off, len, dev->model->config_size);
	return -EINVAL;
}

int vd_dev_config_read(struct vd_dev *dev, uint32_t off, void *buf,
		       uint32_t len)
{
	int r = config_check(dev, "read", off, len);

	if (r == 0 && len)
		dev->model->ops->get_config(dev->model, off, buf, len);
	return r;
}

int vd_dev_config_write(struct vd_dev *dev, uint32_t off, const void *buf,
			uint32_t len)
{
	int r = config_check(dev, "write", off, len);

	if (r < 0 || len == 0)
		return r;
	r = dev->model->ops->set_config
		    ? dev->model->ops->set_config(dev->model, off, buf, len)
		    : -EPERM;
	if (r == -EPERM)
		driver_warn(dev,
			    "config write at %u+%u to a read-only field; "
			    "ignored",
			    off, len);
	return r;
}

uint32_t vd_dev_config_generation(const struct vd_dev *dev)
{
	return atomic_load(&dev->config_generation);
}

void vd_dev_config_changed(struct vd_dev *dev)
{
	atomic_fetch_add(&dev->config_generation, 1);
	notify_config(dev);
}

int vd_dev_resize(struct vd_dev *dev, uint64_t bytes, char *err, size_t errlen)
{
	int r;

	if (!dev->model->ops->resize) {
		snprintf(err, errlen, "%s: a %s device has no size to change",
			 dev->who,
			 dev->model->type_name ? dev->model->type_name
					       : "virtio");
		return -EOPNOTSUPP;
	}
	r = dev->model->ops->resize(dev->model, bytes, err, errlen);
	if (r > 0) {
		/* virtio 1.2 §2.5.1: generation first, then the interrupt. */
		vd_dev_config_changed(dev);
		vd_info(dev->who, "config changed (resize)");
	}
	return r;
}
