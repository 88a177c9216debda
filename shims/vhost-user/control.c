/* Device-level requests: features, protocol features, owner, config,
 * status, reset, and the backend channel for config-change notifications.
 * A running ring is only ever touched through vring.c. */
#include <errno.h>
#include <inttypes.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "dirty_log.h"
#include "inflight.h"
#include "mem_table.h"
#include "messages.h"
#include "vring.h"

/* Bits that belong to vhost-user, not to the virtio device. */
#define VHOST_ONLY_FEATURES                                                    \
	((1ull << VU_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL))

bool vu_has_protocol(const struct vu_backend *b, unsigned bit)
{
	return b->protocol_features & (1ull << bit);
}

static uint64_t offered_features(const struct vu_backend *b)
{
	return b->model->features | VHOST_ONLY_FEATURES;
}

static int reply_u64(struct vu_reply *r, uint64_t v)
{
	r->hdr.size = sizeof(uint64_t);
	r->p.u64 = v;
	return 0;
}

int vu_get_features(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen)
{
	(void)m;
	(void)why;
	(void)whylen;
	return reply_u64(r, offered_features(b));
}

static bool any_ring_running(const struct vu_backend *b)
{
	for (unsigned i = 0; i < b->num_queues; i++)
		if (b->vrings[i].running)
			return true;
	return false;
}

int vu_set_features(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen)
{
	uint64_t f = m->p.u64, extra = f & ~offered_features(b);
	uint64_t virtio = f & ~VHOST_ONLY_FEATURES;
	int rc;

	(void)r;
	if (extra) {
		snprintf(why, whylen,
			 "features 0x%" PRIx64 " include unoffered 0x%" PRIx64,
			 f, extra);
		return -EINVAL;
	}
	/* QEMU resends the same virtio bits with LOG_ALL flipped while the
	 * rings run (live migration); anything else needs them stopped. */
	if (virtio != vd_dev_driver_features(b->dev)) {
		if (any_ring_running(b)) {
			snprintf(why, whylen,
				 "virtio features change while rings run");
			return -EBUSY;
		}
		rc = vd_dev_negotiate(b->dev, virtio);
		if (rc) {
			snprintf(why, whylen, "features 0x%" PRIx64 " refused",
				 virtio);
			return rc;
		}
	}
	b->features = f;
	vu_rings_update_logging(b);
	return 0;
}

int vu_get_protocol_features(struct vu_backend *b, struct vu_msg *m,
			     struct vu_reply *r, char *why, size_t whylen)
{
	(void)b;
	(void)m;
	(void)why;
	(void)whylen;
	return reply_u64(r, VU_PROTOCOL_FEATURES);
}

int vu_set_protocol_features(struct vu_backend *b, struct vu_msg *m,
			     struct vu_reply *r, char *why, size_t whylen)
{
	uint64_t f = m->p.u64, extra = f & ~(uint64_t)VU_PROTOCOL_FEATURES;

	(void)r;
	if (extra) {
		snprintf(why, whylen,
			 "protocol features 0x%" PRIx64
			 " include unoffered 0x%" PRIx64,
			 f, extra);
		return -EINVAL;
	}
	b->protocol_features = f;
	b->protocol_set = true;
	atomic_store(&b->config_notify,
		     vu_has_protocol(b, VU_PF_CONFIG) &&
			     vu_has_protocol(b, VU_PF_BACKEND_REQ));
	return 0;
}

int vu_set_owner(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		 char *why, size_t whylen)
{
	(void)m;
	(void)r;
	(void)why;
	(void)whylen;
	/* A "session start" flag: one frontend per connection anyway. */
	b->owner = true;
	return 0;
}

/* Deprecated; "back-ends either ignore this message, or use it to disable
 * all rings". Rings stop where they stand, configuration kept. */
int vu_reset_owner(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		   char *why, size_t whylen)
{
	(void)m;
	(void)r;
	(void)why;
	(void)whylen;
	vu_rings_stop_all(b, false);
	return 0;
}

int vu_get_queue_num(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen)
{
	(void)m;
	(void)why;
	(void)whylen;
	return reply_u64(r, b->num_queues);
}

/* ------------------------------------------------------------- config */

int vu_get_config(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen)
{
	const struct vu_config_wire *c = &m->p.config;
	uint32_t cfg_size = b->model->config_size, n;

	if (c->offset > cfg_size) {
		/* "zero length of payload to indicate an error" */
		snprintf(why, whylen,
			 "offset %u beyond the %u-byte config space", c->offset,
			 cfg_size);
		r->hdr.size = 0;
		return VU_REFUSED;
	}
	/* Past our fields reads as zero (below), but not past the 256 bytes
	 * any config space has (VHOST_USER_MAX_CONFIG_SIZE). 64-bit sum. */
	if ((uint64_t)c->offset + c->size > VU_MAX_CONFIG_SIZE) {
		snprintf(why, whylen, "config range %u+%u ends past %u",
			 c->offset, c->size, VU_MAX_CONFIG_SIZE);
		r->hdr.size = 0;
		return VU_REFUSED;
	}
	r->p.config.offset = c->offset;
	r->p.config.size = c->size;
	r->p.config.flags = c->flags;
	memset(r->p.config.payload, 0, c->size);
	/* Frontends built with newer virtio headers may ask for fields past
	 * ours: those read as zero. */
	n = c->size < cfg_size - c->offset ? c->size : cfg_size - c->offset;
	if (n)
		vd_dev_config_read(b->dev, c->offset, r->p.config.payload, n);
	r->hdr.size = (uint32_t)VU_CONFIG_HDR_SIZE + c->size;
	return 0;
}

int vu_set_config(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen)
{
	const struct vu_config_wire *c = &m->p.config;
	int rc;

	(void)r;
	/* A migration destination restoring the source's config space: ours
	 * comes from the backing store, so there is nothing to take over. */
	if (c->flags == VU_CONFIG_TYPE_MIGRATION) {
		vd_debug(b->who, "SET_CONFIG for migration ignored");
		return 0;
	}
	rc = vd_dev_config_write(b->dev, c->offset, c->payload, c->size);
	if (rc) {
		/* The guest's write, relayed: refuse it, keep the frontend. */
		snprintf(why, whylen, "config write at %u+%u: %s", c->offset,
			 c->size,
			 rc == -EPERM ? "read-only field"
				      : "outside config space");
		return VU_REFUSED;
	}
	return 0;
}

/* ------------------------------------------------------------- status */

int vu_set_status(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen)
{
	uint8_t s = (uint8_t)m->p.u64;

	(void)r;
	if (s == 0) {
		/* QEMU stops a device with SET_STATUS 0 and only then asks
		 * each ring where it stands (GET_VRING_BASE): stop the rings
		 * keeping their bases, then reset the device. */
		vu_rings_stop_all(b, false);
		vd_dev_set_status(b->dev, 0);
		return 0;
	}
	/* QEMU writes FEATURES_OK alone after SET_FEATURES, then ACKNOWLEDGE
	 * | DRIVER | DRIVER_OK: the virtio order (1.2 §3.1.1) implies the
	 * earlier bits, so they are added before the core checks it. */
	if (s & VIRTIO_CONFIG_S_DRIVER_OK)
		s |= VIRTIO_CONFIG_S_FEATURES_OK;
	if (s & VIRTIO_CONFIG_S_FEATURES_OK)
		s |= VIRTIO_CONFIG_S_DRIVER;
	if (s & VIRTIO_CONFIG_S_DRIVER)
		s |= VIRTIO_CONFIG_S_ACKNOWLEDGE;
	if (vd_dev_set_status(b->dev, s) < 0) {
		snprintf(why, whylen, "status 0x%02x refused by the device", s);
		return VU_REFUSED;
	}
	return 0;
}

int vu_get_status(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		  char *why, size_t whylen)
{
	(void)m;
	(void)why;
	(void)whylen;
	return reply_u64(r, vd_dev_status(b->dev));
}

/* "disable all rings and reset all internal device state to the initial
 * state"; ownership, protocol features and the memory table stay. */
int vu_reset_device(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		    char *why, size_t whylen)
{
	(void)m;
	(void)r;
	(void)why;
	(void)whylen;
	vu_rings_stop_all(b, true);
	vu_inflight_unmap(b);
	vd_dev_set_status(b->dev, 0);
	b->features = 0;
	return 0;
}

/* ------------------------------------------------- backend request channel */

int vu_set_backend_req_fd(struct vu_backend *b, struct vu_msg *m,
			  struct vu_reply *r, char *why, size_t whylen)
{
	int old;

	(void)r;
	(void)why;
	(void)whylen;
	pthread_mutex_lock(&b->req_lock);
	old = b->req_fd;
	b->req_fd = m->fds[0];
	pthread_mutex_unlock(&b->req_lock);
	m->fds[0] = -1;
	if (old >= 0)
		close(old);
	return 0;
}

/* The core's notify_config, from any thread: "VHOST_USER_BACKEND_CONFIG_
 * CHANGE_MSG" with no reply asked for, and never blocking a queue thread
 * on a frontend that does not read. */
void vu_notify_config(void *shim)
{
	struct vu_backend *b = shim;
	struct vu_hdr h = {.request = VU_BACKEND_CONFIG_CHANGE_MSG,
			   .flags = VU_VERSION};

	if (!atomic_load(&b->config_notify))
		return;
	pthread_mutex_lock(&b->req_lock);
	if (b->req_fd >= 0 &&
	    send(b->req_fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(h))
		vd_log_ratelimited(&b->req_rl, VD_LOG_WARN, b->who,
				   "config change notification not sent: %s",
				   strerror(errno));
	pthread_mutex_unlock(&b->req_lock);
}

void vu_connection_reset(struct vu_backend *b)
{
	int fd;

	vu_rings_stop_all(b, true);
	vd_dev_set_status(b->dev, 0);
	vu_inflight_unmap(b);
	vu_log_unmap(b);
	vu_mem_clear(b);
	atomic_store(&b->config_notify, false);
	pthread_mutex_lock(&b->req_lock);
	fd = b->req_fd;
	b->req_fd = -1;
	pthread_mutex_unlock(&b->req_lock);
	if (fd >= 0)
		close(fd);
	b->features = 0;
	b->protocol_features = 0;
	b->protocol_set = false;
	b->owner = false;
	b->unsealed_warned = false;
}
