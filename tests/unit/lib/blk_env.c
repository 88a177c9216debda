/* The virtio-blk test environment (blk_env.h): an image, the device built
 * through vd_blk_type and started through the core, the test driver as the
 * guest. Test-only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "blk_env.h"

void env_notify_queue(void *shim, struct vd_queue *q)
{
	struct blk_env *env = shim;
	unsigned i = vd_queue_index(q);
	uint64_t one = 1;

	atomic_fetch_add(&env->notifies[i], 1);
	if (write(env->call[i], &one, sizeof(one)) < 0)
		fail_msg("call eventfd: %s", strerror(errno));
}

void env_notify_config(void *shim)
{
	atomic_fetch_add(&((struct blk_env *)shim)->config_notifies, 1);
}

const struct vd_dev_shim_ops env_shim_ops = {
	.notify_queue = env_notify_queue,
	.notify_config = env_notify_config,
};

/* A fresh image of `size` bytes in dir, filled with a byte pattern
 * (byte i = i*7 + i/4096) unless sparse. */
void env_image(struct blk_env *env, const char *dir, uint64_t size, bool sparse)
{
	static atomic_int seq;

	snprintf(env->path, sizeof(env->path), "%s/vd-blk-test-%d-%d.img", dir,
		 (int)getpid(), atomic_fetch_add(&seq, 1));
	env->img =
		open(env->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(env->img >= 0);
	assert_int_equal(ftruncate(env->img, (off_t)size), 0);
	env->img_size = size;
	if (sparse)
		return;
	{
		uint8_t *buf = malloc(1 << 20);

		assert_non_null(buf);
		for (uint64_t off = 0; off < size; off += 1 << 20) {
			size_t n =
				size - off < (1 << 20) ? size - off : (1 << 20);

			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)((off + i) * 7 +
						   (off + i) / 4096);
			assert_int_equal(pwrite(env->img, buf, n, (off_t)off),
					 (ssize_t)n);
		}
		free(buf);
	}
}

uint8_t env_pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + off / 4096);
}

/* Create the model from name/value pairs (value NULL for flags), NULL
 * terminated; "disk" is added. Returns create's result, message in err. */
int env_create(struct blk_env *env, const char *const *opts)
{
	void *o = vd_blk_type.opts_new();
	int r;

	assert_non_null(o);
	r = vd_blk_type.opts_set(o, "disk", env->path, env->err,
				 sizeof(env->err));
	for (unsigned i = 0; r == 0 && opts && opts[i]; i += 2)
		r = vd_blk_type.opts_set(o, opts[i], opts[i + 1], env->err,
					 sizeof(env->err));
	if (r == 0)
		r = vd_blk_type.create(o, &env->model, env->err,
				       sizeof(env->err));
	vd_blk_type.opts_free(o);
	return r;
}

uint64_t env_features(const struct blk_env *env, enum vd_vq_layout layout)
{
	uint64_t f = env->model->features;

	if (layout == VD_VQ_SPLIT)
		f &= ~(1ULL << VIRTIO_F_RING_PACKED);
	return f;
}

/* Device + queues, driver features = offered & ~drop (layout-adjusted). */
void env_start(struct blk_env *env, enum vd_vq_layout layout, uint16_t qsize,
	       uint64_t drop)
{
	uint64_t f = env_features(env, layout) & ~drop;
	uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

	env->m = td_mem_new(ENV_MEM_SIZE, 3);
	env->dev = vd_dev_new(env->model, td_mem_vd(env->m), &env_shim_ops, env,
			      "blk0");
	assert_non_null(env->dev);
	assert_int_equal(
		vd_dev_set_status(env->dev, VIRTIO_CONFIG_S_ACKNOWLEDGE), 0);
	assert_int_equal(vd_dev_set_status(env->dev, st), 0);
	assert_int_equal(vd_dev_set_driver_features(env->dev, f), 0);
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	assert_int_equal(vd_dev_set_status(env->dev, st), 0);
	env->nq = env->model->num_queues;
	assert_true(env->nq <= ENV_MAX_QUEUES);
	for (unsigned i = 0; i < env->nq; i++) {
		struct vd_queue_setup s;

		memset(&s, 0, sizeof(s));
		env->vq[i] =
			td_vq_new(env->m, layout, qsize,
				  f & (1ULL << VIRTIO_RING_F_EVENT_IDX),
				  f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
		td_vq_fill_config(env->vq[i], &s.vq);
		s.vq.max_iov = 0; /* the model's */
		env->kick[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		env->call[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		assert_true(env->kick[i] >= 0 && env->call[i] >= 0);
		s.kick_fd = env->kick[i];
		td_vq_enable_cb(env->vq[i]);
		assert_int_equal(vd_queue_start(vd_dev_queue(env->dev, i), &s),
				 0);
	}
	st |= VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(vd_dev_set_status(env->dev, st), 0);
}

void env_open(struct blk_env *env, const char *dir, uint64_t size,
	      const char *const *opts, enum vd_vq_layout layout)
{
	memset(env, 0, sizeof(*env));
	env_image(env, dir, size, false);
	if (env_create(env, opts) != 0)
		fail_msg("create: %s", env->err);
	env_start(env, layout, 128, 0);
}

void env_close(struct blk_env *env)
{
	if (env->dev) {
		vd_dev_free(env->dev); /* stops queues, destroys the model */
		assert_true(td_mem_canary_ok(env->m));
	} else if (env->model) {
		env->model->ops->destroy(env->model);
	}
	for (unsigned i = 0; i < env->nq; i++) {
		td_vq_free(env->vq[i]);
		close(env->kick[i]);
		close(env->call[i]);
	}
	if (env->m)
		td_mem_free(env->m);
	if (env->img >= 0)
		close(env->img);
	unlink(env->path);
	memset(env, 0, sizeof(*env));
	env->img = -1;
}

void env_kick(struct blk_env *env, unsigned qi)
{
	uint64_t one = 1;

	if (td_vq_kick_needed(env->vq[qi]))
		assert_int_equal(write(env->kick[qi], &one, sizeof(one)),
				 sizeof(one));
}

uint64_t env_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for one used entry; fails the test after ENV_WAIT_MS. */
void *env_wait(struct blk_env *env, unsigned qi, uint32_t *len)
{
	uint64_t deadline = env_now_ms() + ENV_WAIT_MS;
	void *token = NULL;
	uint32_t l = 0;

	for (;;) {
		struct pollfd p = {.fd = env->call[qi], .events = POLLIN};
		uint64_t v;
		int r = td_vq_get_used(env->vq[qi], &token, &l);

		assert_true(r >= 0);
		if (r == 1)
			break;
		if (env_now_ms() > deadline)
			fail_msg("no completion on q%u within %d ms", qi,
				 ENV_WAIT_MS);
		poll(&p, 1, 20);
		if (read(env->call[qi], &v, sizeof(v)) < 0) {
			/* EAGAIN: timed out; look at the ring again */
		}
	}
	if (len)
		*len = l;
	return token;
}

void env_hdr(struct blk_env *env, uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr *h = td_mem_hva(env->m, gpa);

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
}

void env_req_alloc(struct blk_env *env, struct env_req *r, uint32_t len)
{
	r->hdr = td_mem_alloc(env->m, 16, 16);
	r->data = len ? td_mem_alloc(env->m, len, 4096) : 0;
	r->status = td_mem_alloc(env->m, 1, 1);
	r->len = len;
	assert_true(r->hdr && (r->data || !len) && r->status);
}

/* Queue a header / data / status request (3 descriptors, or 2 with no
 * data) without waiting. */
void env_req_add(struct blk_env *env, unsigned qi, struct env_req *r,
		 uint32_t type, uint64_t sector, bool data_write, bool indirect)
{
	struct td_buf b[3];
	unsigned n = 0;

	env_hdr(env, r->hdr, type, sector);
	*(uint8_t *)td_mem_hva(env->m, r->status) = 0xee;
	b[n++] = (struct td_buf){r->hdr, 16, false};
	if (r->len)
		b[n++] = (struct td_buf){r->data, r->len, data_write};
	b[n++] = (struct td_buf){r->status, 1, true};
	assert_int_equal(td_vq_add(env->vq[qi], b, n, indirect, r), 0);
}

uint8_t env_status(struct blk_env *env, const struct env_req *r)
{
	return *(uint8_t *)td_mem_hva(env->m, r->status);
}

/* One request, waited for; returns the status byte, *used the used len. */
uint8_t env_do(struct blk_env *env, unsigned qi, uint32_t type, uint64_t sector,
	       uint64_t data_gpa, uint32_t len, uint32_t *used)
{
	struct env_req r;
	bool dwrite = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

	env_req_alloc(env, &r, 0);
	r.data = data_gpa;
	r.len = len;
	env_req_add(env, qi, &r, type, sector, dwrite, false);
	env_kick(env, qi);
	assert_ptr_equal(env_wait(env, qi, used), &r);
	return env_status(env, &r);
}

void *env_hva(struct blk_env *env, uint64_t gpa)
{
	return td_mem_hva(env->m, gpa);
}

/* True if the image bytes [off, off+len) equal buf. */
bool env_img_equals(struct blk_env *env, uint64_t off, const void *buf,
		    size_t len)
{
	uint8_t *tmp = malloc(len);
	bool eq;

	assert_non_null(tmp);
	assert_int_equal(pread(env->img, tmp, len, (off_t)off), (ssize_t)len);
	eq = memcmp(tmp, buf, len) == 0;
	free(tmp);
	return eq;
}

bool env_img_zero(struct blk_env *env, uint64_t off, size_t len)
{
	uint8_t *z = calloc(1, len);
	bool eq;

	assert_non_null(z);
	eq = env_img_equals(env, off, z, len);
	free(z);
	return eq;
}

bool env_img_pattern(struct blk_env *env, uint64_t off, size_t len)
{
	uint8_t *tmp = malloc(len);
	bool ok = true;

	assert_non_null(tmp);
	assert_int_equal(pread(env->img, tmp, len, (off_t)off), (ssize_t)len);
	for (size_t i = 0; i < len && ok; i++)
		ok = tmp[i] == env_pattern(off + i);
	free(tmp);
	return ok;
}

/* Config space helpers. */
uint64_t env_cfg(struct blk_env *env, uint32_t off, uint32_t len)
{
	uint8_t b[8] = {0};
	uint64_t v = 0;

	assert_int_equal(vd_dev_config_read(env->dev, off, b, len), 0);
	for (unsigned i = len; i-- > 0;)
		v = v << 8 | b[i];
	return v;
}

/* An image of `size` in dir served with `engine` on nq queues (NULL: 1)
 * of 128 and one extra option (name NULL: none). -1 if create refused it
 * (a failed test if `must`). */
int env_open_engine(struct blk_env *env, const char *engine, const char *dir,
		    uint64_t size, const char *extra_name,
		    const char *extra_val, const char *nq,
		    enum vd_vq_layout layout, bool must)
{
	const char *opts[9] = {"io-engine", engine, "num-queues", nq ? nq : "1",
			       NULL};
	unsigned n = 4;

	if (extra_name) {
		opts[n++] = extra_name;
		opts[n++] = extra_val;
	}
	opts[n] = NULL;
	memset(env, 0, sizeof(*env));
	env->img = -1;
	env_image(env, dir, size, false);
	if (env_create(env, opts) != 0) {
		if (must)
			fail_msg("create: %s", env->err);
		return -1;
	}
	env_start(env, layout, 128, 0);
	return 0;
}
