/* virtio-blk online resize (src/devices/blk_resize.c) through the core's
 * vd_dev_resize: `virtiod resize` grows or cuts the image file, a change
 * made behind the daemon's back is found by a look at the store, the
 * capacity in the config space follows, the driver is told once per
 * change, and requests are checked against the new size at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "blk_env.h"

#define DIR	 "/tmp"
#define IMG_SIZE (4u << 20)

static struct blk_env env;

static int teardown(void **state)
{
	(void)state;
	env_close(&env);
	return 0;
}

static uint64_t file_size(void)
{
	struct stat st;

	assert_int_equal(fstat(env.img, &st), 0);
	return (uint64_t)st.st_size;
}

static void resize_grows_the_file_and_the_capacity_once(void **state)
{
	uint32_t gen;
	uint64_t d;

	(void)state;
	env_open(&env, DIR, IMG_SIZE, NULL, VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 4096, 4096);
	gen = vd_dev_config_generation(env.dev);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, IMG_SIZE / 512, d, 512, NULL),
		VIRTIO_BLK_S_IOERR);
	assert_int_equal(
		vd_dev_resize(env.dev, 2 * IMG_SIZE, env.err, sizeof(env.err)),
		1);
	assert_int_equal(file_size(), 2 * IMG_SIZE);
	assert_int_equal(ENV_CFG(&env, capacity), 2 * IMG_SIZE / 512);
	assert_int_equal(vd_dev_config_generation(env.dev), gen + 1);
	assert_int_equal(atomic_load(&env.config_notifies), 1);
	/* the new part is there at once, and reads as zeroes */
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, IMG_SIZE / 512, d, 512, NULL),
		VIRTIO_BLK_S_OK);
	assert_true(env_img_zero(&env, IMG_SIZE, 512));
	/* the same size again is no change */
	assert_int_equal(
		vd_dev_resize(env.dev, 2 * IMG_SIZE, env.err, sizeof(env.err)),
		0);
	assert_int_equal(atomic_load(&env.config_notifies), 1);
}

static void shrinking_refuses_requests_past_the_new_end(void **state)
{
	struct vd_vq_stats st;
	uint64_t d;

	(void)state;
	env_open(&env, DIR, IMG_SIZE, NULL, VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 4096, 4096);
	assert_int_equal(
		vd_dev_resize(env.dev, IMG_SIZE / 2, env.err, sizeof(env.err)),
		1);
	assert_int_equal(file_size(), IMG_SIZE / 2);
	assert_int_equal(ENV_CFG(&env, capacity), IMG_SIZE / 2 / 512);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, IMG_SIZE / 2 / 512, d,
				512, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN,
				IMG_SIZE / 2 / 512 - 1, d, 512, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_pattern(&env, IMG_SIZE / 2 - 512, 512));
	/* the refused request is an error in the queue's counters */
	vd_queue_stats_read(vd_dev_queue(env.dev, 0), &st);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.requests, 2);
}

static void a_change_behind_our_back_is_found_by_a_look(void **state)
{
	(void)state;
	env_open(&env, DIR, IMG_SIZE, NULL, VD_VQ_SPLIT);
	assert_int_equal(vd_dev_resize(env.dev, 0, env.err, sizeof(env.err)),
			 0);
	/* grown by someone else, not to a whole block: rounded down */
	assert_int_equal(ftruncate(env.img, 3 * IMG_SIZE + 100), 0);
	assert_int_equal(vd_dev_resize(env.dev, 0, env.err, sizeof(env.err)),
			 1);
	assert_int_equal(ENV_CFG(&env, capacity), 3 * IMG_SIZE / 512);
	assert_int_equal(vd_dev_resize(env.dev, 0, env.err, sizeof(env.err)),
			 0);
	assert_int_equal(atomic_load(&env.config_notifies), 1);
	/* shrunk by someone else */
	assert_int_equal(ftruncate(env.img, IMG_SIZE / 4), 0);
	assert_int_equal(vd_dev_resize(env.dev, 0, env.err, sizeof(env.err)),
			 1);
	assert_int_equal(ENV_CFG(&env, capacity), IMG_SIZE / 4 / 512);
	assert_int_equal(atomic_load(&env.config_notifies), 2);
}

static void unaligned_and_read_only_resizes_are_refused(void **state)
{
	static const char *const ro[] = {"readonly", NULL, NULL};

	(void)state;
	env_open(&env, DIR, IMG_SIZE, NULL, VD_VQ_SPLIT);
	assert_int_equal(vd_dev_resize(env.dev, IMG_SIZE + 100, env.err,
				       sizeof(env.err)),
			 -EINVAL);
	assert_non_null(strstr(env.err, "512-byte blocks"));
	assert_int_equal(file_size(), IMG_SIZE);
	env_close(&env);
	env_open(&env, DIR, IMG_SIZE, ro, VD_VQ_SPLIT);
	assert_int_equal(
		vd_dev_resize(env.dev, 2 * IMG_SIZE, env.err, sizeof(env.err)),
		-EROFS);
	assert_non_null(strstr(env.err, "read-only"));
	assert_int_equal(file_size(), IMG_SIZE);
	assert_int_equal(atomic_load(&env.config_notifies), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
			resize_grows_the_file_and_the_capacity_once, teardown),
		cmocka_unit_test_teardown(
			shrinking_refuses_requests_past_the_new_end, teardown),
		cmocka_unit_test_teardown(
			a_change_behind_our_back_is_found_by_a_look, teardown),
		cmocka_unit_test_teardown(
			unaligned_and_read_only_resizes_are_refused, teardown),
	};

	return cmocka_run_group_tests_name("blk resize", tests, NULL, NULL);
}
