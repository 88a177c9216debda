/* Test environment for the virtio-blk model: an image file, the device
 * built through vd_blk_type, started through the core's queues, and the
 * test driver as the guest (tests/unit/lib/blk_env.c). Shared by
 * tests/unit/test_blk*.c; test-only. */
#ifndef VIRTIOD_TEST_BLK_ENV_H
#define VIRTIOD_TEST_BLK_ENV_H

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_driver.h"
#include "virtiod/device.h"

extern const struct vd_device_type vd_blk_type;

#define ENV_MAX_QUEUES 4
#define ENV_WAIT_MS    10000
#define ENV_MEM_SIZE   (24u << 20)

struct blk_env {
	char path[128];
	int img; /* the image, for checking what the device did */
	uint64_t img_size;
	struct td_mem *m;
	struct vd_model *model;
	struct vd_dev *dev;
	unsigned nq;
	struct td_vq *vq[ENV_MAX_QUEUES];
	int kick[ENV_MAX_QUEUES];
	int call[ENV_MAX_QUEUES]; /* written by notify_queue */
	atomic_int notifies[ENV_MAX_QUEUES];
	atomic_int config_notifies;
	char err[256];
};

/* The shim side: notify_queue writes the queue's call eventfd. */
void env_notify_queue(void *shim, struct vd_queue *q);
void env_notify_config(void *shim);

extern const struct vd_dev_shim_ops env_shim_ops;

/* A fresh image of `size` bytes in dir, filled with a byte pattern
 * (byte i = i*7 + i/4096) unless sparse. */
void env_image(struct blk_env *env, const char *dir, uint64_t size,
	       bool sparse);
/* Byte `off` of such an image. */
uint8_t env_pattern(uint64_t off);

/* Create the model from name/value pairs (value NULL for flags), NULL
 * terminated; "disk" is added. Returns create's result, message in err. */
int env_create(struct blk_env *env, const char *const *opts);
uint64_t env_features(const struct blk_env *env, enum vd_vq_layout layout);

/* Device + queues, driver features = offered & ~drop (layout-adjusted). */
void env_start(struct blk_env *env, enum vd_vq_layout layout, uint16_t qsize,
	       uint64_t drop);
void env_open(struct blk_env *env, const char *dir, uint64_t size,
	      const char *const *opts, enum vd_vq_layout layout);
void env_close(struct blk_env *env);
void env_kick(struct blk_env *env, unsigned qi);
uint64_t env_now_ms(void);

/* Wait for one used entry; fails the test after ENV_WAIT_MS. */
void *env_wait(struct blk_env *env, unsigned qi, uint32_t *len);

/* A request in guest memory: header, data, status. */
struct env_req {
	uint64_t hdr, data, status; /* gpas */
	uint32_t len;
};
void env_hdr(struct blk_env *env, uint64_t gpa, uint32_t type, uint64_t sector);
void env_req_alloc(struct blk_env *env, struct env_req *r, uint32_t len);

/* Queue a header / data / status request (3 descriptors, or 2 with no
 * data) without waiting. */
void env_req_add(struct blk_env *env, unsigned qi, struct env_req *r,
		 uint32_t type, uint64_t sector, bool data_write,
		 bool indirect);
uint8_t env_status(struct blk_env *env, const struct env_req *r);

/* One request, waited for; returns the status byte, *used the used len. */
uint8_t env_do(struct blk_env *env, unsigned qi, uint32_t type, uint64_t sector,
	       uint64_t data_gpa, uint32_t len, uint32_t *used);
void *env_hva(struct blk_env *env, uint64_t gpa);

/* True if the image bytes [off, off+len) equal buf. */
bool env_img_equals(struct blk_env *env, uint64_t off, const void *buf,
		    size_t len);
bool env_img_zero(struct blk_env *env, uint64_t off, size_t len);
bool env_img_pattern(struct blk_env *env, uint64_t off, size_t len);

/* Config space helpers. */
uint64_t env_cfg(struct blk_env *env, uint32_t off, uint32_t len);

#define ENV_CFG(env, field)                                                    \
	env_cfg(env, offsetof(struct virtio_blk_config, field),                \
		sizeof(((struct virtio_blk_config *)0)->field))

/* An image of `size` in dir served with `engine` on nq queues (NULL: 1)
 * of 128 and one extra option (name NULL: none). -1 if create refused it
 * (a failed test if `must`). */
int env_open_engine(struct blk_env *env, const char *engine, const char *dir,
		    uint64_t size, const char *extra_name,
		    const char *extra_val, const char *nq,
		    enum vd_vq_layout layout, bool must);

#endif
