/* Device lifecycle: the status state machine a driver walks (virtio 1.2
 * §3.1.1), feature negotiation, NEEDS_RESET, config space bounds and the
 * config generation, against a fake model and a counting shim. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log_capture.h"
#include "virtiod/device.h"
#include "virtiod/log.h"

#define ACK    VIRTIO_CONFIG_S_ACKNOWLEDGE
#define DRV    VIRTIO_CONFIG_S_DRIVER
#define FOK    VIRTIO_CONFIG_S_FEATURES_OK
#define DOK    VIRTIO_CONFIG_S_DRIVER_OK
#define NRS    VIRTIO_CONFIG_S_NEEDS_RESET
#define FAILED VIRTIO_CONFIG_S_FAILED

#define F_VERSION_1 (1ull << VIRTIO_F_VERSION_1)
#define F_A	    (1ull << 1)
#define F_B	    (1ull << 9)
#define F_UNOFFERED (1ull << 5)
#define OFFERED	    (F_VERSION_1 | F_A | F_B)

#define CONFIG_SIZE 16
#define CONFIG_RO   8 /* bytes [0, 8) are read-only */

struct fake {
	struct vd_model m;
	uint8_t config[CONFIG_SIZE];
	int set_features_calls;
	uint64_t features;
	int reset_calls;
	int destroy_calls;
	int get_config_calls;
	int set_config_calls;
};

static struct fake *to_fake(void *model)
{
	return (struct fake *)((char *)model - offsetof(struct fake, m));
}

static void fake_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	struct fake *f = to_fake(model);

	f->get_config_calls++;
	memcpy(buf, f->config + off, len);
}

static int fake_set_config(void *model, uint32_t off, const void *buf,
			   uint32_t len)
{
	struct fake *f = to_fake(model);

	f->set_config_calls++;
	if (off < CONFIG_RO)
		return -EPERM;
	memcpy(f->config + off, buf, len);
	return 0;
}

static void fake_set_features(void *model, uint64_t features)
{
	struct fake *f = to_fake(model);

	f->set_features_calls++;
	f->features = features;
}

static void fake_queue_kick(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
}

static void fake_reset(void *model)
{
	to_fake(model)->reset_calls++;
}

static void fake_destroy(void *model)
{
	to_fake(model)->destroy_calls++;
}

static const struct vd_device_ops fake_ops = {
	.get_config = fake_get_config,
	.set_config = fake_set_config,
	.set_features = fake_set_features,
	.queue_kick = fake_queue_kick,
	.reset = fake_reset,
	.destroy = fake_destroy,
};

struct shim {
	int notify_config;
	int notify_queue;
};

static void shim_notify_queue(void *shim, struct vd_queue *q)
{
	(void)q;
	((struct shim *)shim)->notify_queue++;
}

static void shim_notify_config(void *shim)
{
	((struct shim *)shim)->notify_config++;
}

static const struct vd_dev_shim_ops shim_ops = {
	.notify_queue = shim_notify_queue,
	.notify_config = shim_notify_config,
};

struct fixture {
	struct fake fake;
	struct shim shim;
	struct vd_mem *mem;
	struct vd_dev *dev;
};

static int setup(void **state)
{
	static struct fixture fx;

	memset(&fx, 0, sizeof(fx));
	fx.fake.m = (struct vd_model){
		.ops = &fake_ops,
		.type_name = "fake",
		.device_id = 2,
		.features = OFFERED,
		.num_queues = 2,
		.max_queue_size = 256,
		.config_size = CONFIG_SIZE,
		.max_descs = 8,
	};
	for (unsigned i = 0; i < CONFIG_SIZE; i++)
		fx.fake.config[i] = (uint8_t)(0x10 + i);
	fx.mem = vd_mem_new_table(4);
	assert_non_null(fx.mem);
	fx.dev = vd_dev_new(&fx.fake.m, fx.mem, &shim_ops, &fx.shim, "fake0");
	assert_non_null(fx.dev);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	vd_dev_free(fx->dev);
	assert_int_equal(fx->fake.destroy_calls, 1);
	vd_mem_free(fx->mem);
	return 0;
}

/* The driver's side of §3.1.1 up to, not including, FEATURES_OK. */
static void ack_driver(struct vd_dev *dev, uint64_t features)
{
	assert_int_equal(vd_dev_set_status(dev, ACK), 0);
	assert_int_equal(vd_dev_set_status(dev, ACK | DRV), 0);
	assert_int_equal(vd_dev_set_driver_features(dev, features), 0);
}

static void handshake_reaches_driver_ok_and_tells_the_model(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_status(fx->dev), 0);
	assert_int_equal(vd_dev_device_features(fx->dev), OFFERED);
	ack_driver(fx->dev, F_VERSION_1 | F_B);
	assert_int_equal(fx->fake.set_features_calls, 0);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), 0);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV | FOK);
	assert_int_equal(fx->fake.set_features_calls, 1);
	assert_int_equal(fx->fake.features, F_VERSION_1 | F_B);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK | DOK), 0);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV | FOK | DOK);
	assert_int_equal(vd_dev_driver_features(fx->dev), F_VERSION_1 | F_B);
}

static void features_ok_refused_for_unoffered_bit(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_VERSION_1 | F_UNOFFERED);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), -EINVAL);
	/* the driver reads FEATURES_OK back unset (§3.1.1 step 6) */
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV);
	assert_int_equal(fx->fake.set_features_calls, 0);
}

static void features_ok_refused_without_version_1(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_A | F_B);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), -EINVAL);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV);
	assert_int_equal(fx->fake.set_features_calls, 0);
	/* corrected features are accepted */
	assert_int_equal(vd_dev_set_driver_features(fx->dev, F_VERSION_1 | F_A),
			 0);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), 0);
	assert_int_equal(fx->fake.features, F_VERSION_1 | F_A);
}

static void driver_ok_without_features_ok_is_refused(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_VERSION_1);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | DOK), -EINVAL);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV);
}

static void
driver_ok_in_a_write_whose_features_ok_fails_is_refused(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_VERSION_1 | F_UNOFFERED);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK | DOK),
			 -EINVAL);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV);
}

static void driver_without_acknowledge_is_refused(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_set_status(fx->dev, DRV), -EINVAL);
	assert_int_equal(vd_dev_status(fx->dev), 0);
	/* several bits in one write, in order, are fine */
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV), 0);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV);
}

static void reserved_status_bit_is_refused(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_set_status(fx->dev, ACK | 0x10), -EINVAL);
	assert_int_equal(vd_dev_status(fx->dev), ACK);
}

static void clearing_a_status_bit_is_refused(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_VERSION_1);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), 0);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | FOK), -EINVAL);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV), -EINVAL);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV | FOK);
	assert_int_equal(fx->fake.reset_calls, 0);
}

static void failed_is_accepted_at_any_time(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_set_status(fx->dev, FAILED), 0);
	assert_int_equal(vd_dev_status(fx->dev), FAILED);
	assert_int_equal(vd_dev_set_status(fx->dev, 0), 0);
	ack_driver(fx->dev, F_UNOFFERED);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), -EINVAL);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FAILED), 0);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV | FAILED);
}

static void reset_clears_status_and_features_and_resets_the_model(void **state)
{
	struct fixture *fx = *state;
	uint32_t gen;

	ack_driver(fx->dev, F_VERSION_1 | F_A);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK | DOK), 0);
	vd_dev_config_changed(fx->dev);
	gen = vd_dev_config_generation(fx->dev);
	assert_int_equal(vd_dev_set_status(fx->dev, 0), 0);
	assert_int_equal(vd_dev_status(fx->dev), 0);
	assert_int_equal(vd_dev_driver_features(fx->dev), 0);
	assert_int_equal(fx->fake.reset_calls, 1);
	/* the generation never goes back */
	assert_int_equal(vd_dev_config_generation(fx->dev), gen);
	/* and the handshake can run again */
	ack_driver(fx->dev, F_VERSION_1);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), 0);
}

static void driver_features_after_features_ok_are_ebusy(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_VERSION_1);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK), 0);
	assert_int_equal(vd_dev_set_driver_features(fx->dev, F_VERSION_1 | F_A),
			 -EBUSY);
	assert_int_equal(vd_dev_driver_features(fx->dev), F_VERSION_1);
}

static void
needs_reset_notifies_config_once_and_survives_status_writes(void **state)
{
	struct fixture *fx = *state;

	ack_driver(fx->dev, F_VERSION_1);
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK | DOK), 0);
	vd_dev_needs_reset(fx->dev, "test: %s", "first");
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV | FOK | DOK | NRS);
	assert_int_equal(fx->shim.notify_config, 1);
	vd_dev_needs_reset(fx->dev, "test: %s", "second");
	assert_int_equal(fx->shim.notify_config, 1);
	/* A driver writing back an older read does not clear it. */
	assert_int_equal(vd_dev_set_status(fx->dev, ACK | DRV | FOK | DOK), 0);
	assert_int_equal(vd_dev_status(fx->dev), ACK | DRV | FOK | DOK | NRS);
	/* Only reset does; afterwards the device can break (and tell) again. */
	assert_int_equal(vd_dev_set_status(fx->dev, 0), 0);
	assert_int_equal(vd_dev_status(fx->dev), 0);
	vd_dev_needs_reset(fx->dev, "test: %s", "third");
	assert_int_equal(fx->shim.notify_config, 2);
}

static void driver_cannot_set_needs_reset(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_set_status(fx->dev, ACK | NRS), 0);
	assert_int_equal(vd_dev_status(fx->dev), ACK);
	assert_int_equal(fx->shim.notify_config, 0);
}

static void negotiate_refuses_unoffered_bits_and_applies_offered(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_negotiate(fx->dev, F_VERSION_1 | F_UNOFFERED),
			 -EINVAL);
	assert_int_equal(fx->fake.set_features_calls, 0);
	assert_int_equal(vd_dev_driver_features(fx->dev), 0);
	assert_int_equal(vd_dev_negotiate(fx->dev, F_VERSION_1 | F_A), 0);
	assert_int_equal(fx->fake.set_features_calls, 1);
	assert_int_equal(fx->fake.features, F_VERSION_1 | F_A);
	assert_int_equal(vd_dev_driver_features(fx->dev), F_VERSION_1 | F_A);
}

static void config_read_inside_bounds_returns_model_bytes(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[CONFIG_SIZE];

	assert_int_equal(vd_dev_config_read(fx->dev, 0, buf, CONFIG_SIZE), 0);
	assert_memory_equal(buf, fx->fake.config, CONFIG_SIZE);
	assert_int_equal(vd_dev_config_read(fx->dev, CONFIG_SIZE - 4, buf, 4),
			 0);
	assert_memory_equal(buf, fx->fake.config + CONFIG_SIZE - 4, 4);
}

static void config_access_past_the_end_is_einval(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[8] = {0};

	assert_int_equal(vd_dev_config_read(fx->dev, CONFIG_SIZE - 1, buf, 2),
			 -EINVAL);
	assert_int_equal(vd_dev_config_read(fx->dev, CONFIG_SIZE, buf, 1),
			 -EINVAL);
	/* off + len wraps 32 bits */
	assert_int_equal(vd_dev_config_read(fx->dev, UINT32_MAX, buf, 2),
			 -EINVAL);
	assert_int_equal(vd_dev_config_write(fx->dev, CONFIG_SIZE - 2, buf, 4),
			 -EINVAL);
	assert_int_equal(vd_dev_config_write(fx->dev, UINT32_MAX - 1, buf, 4),
			 -EINVAL);
	assert_int_equal(fx->fake.get_config_calls, 0);
	assert_int_equal(fx->fake.set_config_calls, 0);
}

static void config_write_reaches_model_and_read_only_is_eperm(void **state)
{
	struct fixture *fx = *state;
	uint8_t in[4] = {1, 2, 3, 4}, out[4];
	uint32_t gen = vd_dev_config_generation(fx->dev);

	assert_int_equal(vd_dev_config_write(fx->dev, CONFIG_RO, in, 4), 0);
	assert_int_equal(vd_dev_config_read(fx->dev, CONFIG_RO, out, 4), 0);
	assert_memory_equal(out, in, 4);
	assert_int_equal(vd_dev_config_write(fx->dev, 0, in, 4), -EPERM);
	assert_int_equal(fx->fake.config[0], 0x10);
	/* driver writes are not device-side changes */
	assert_int_equal(vd_dev_config_generation(fx->dev), gen);
	assert_int_equal(fx->shim.notify_config, 0);
}

static void config_changed_bumps_generation_and_notifies(void **state)
{
	struct fixture *fx = *state;
	uint32_t gen = vd_dev_config_generation(fx->dev);

	fx->fake.config[12] = 0xee;
	vd_dev_config_changed(fx->dev);
	assert_int_equal(vd_dev_config_generation(fx->dev), gen + 1);
	assert_int_equal(fx->shim.notify_config, 1);
	vd_dev_config_changed(fx->dev);
	assert_int_equal(vd_dev_config_generation(fx->dev), gen + 2);
	assert_int_equal(fx->shim.notify_config, 2);
}

static void device_owns_one_queue_per_model_queue(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(vd_dev_num_queues(fx->dev), 2);
	for (unsigned i = 0; i < 2; i++) {
		struct vd_queue *q = vd_dev_queue(fx->dev, i);

		assert_non_null(q);
		assert_int_equal(vd_queue_index(q), i);
		assert_ptr_equal(vd_queue_dev(q), fx->dev);
		assert_false(vd_queue_running(q));
	}
	assert_string_equal(vd_queue_who(vd_dev_queue(fx->dev, 1)), "fake0 q1");
	assert_null(vd_dev_queue(fx->dev, 2));
	assert_string_equal(vd_dev_who(fx->dev), "fake0");
	assert_ptr_equal(vd_dev_model(fx->dev), &fx->fake.m);
	assert_ptr_equal(vd_dev_mem(fx->dev), fx->mem);
}

static void model_without_queue_kick_or_queues_is_rejected(void **state)
{
	struct fixture *fx = *state;
	struct vd_device_ops ops = fake_ops;
	struct vd_model m = fx->fake.m;

	ops.queue_kick = NULL;
	m.ops = &ops;
	assert_null(vd_dev_new(&m, fx->mem, &shim_ops, NULL, "x"));
	m.ops = &fake_ops;
	m.num_queues = 0;
	assert_null(vd_dev_new(&m, fx->mem, &shim_ops, NULL, "x"));
	m.num_queues = 1;
	ops = fake_ops;
	ops.get_config = NULL;
	m.ops = &ops;
	assert_null(vd_dev_new(&m, fx->mem, &shim_ops, NULL, "x"));
}

/* ------------------------------------------------------ log flooding */

/* Under Xen each status write is one trapped MMIO access: a driver can
 * repeat a refused one as fast as it traps. The first refusals are logged
 * with their reason, the rest only counted. */
static void refused_status_writes_are_rate_limited_in_the_log(void **state)
{
	struct fixture *fx = *state;
	const char *log;

	vd_log_set_level(VD_LOG_WARN);
	lc_begin();
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(vd_dev_set_status(fx->dev, DRV), -EINVAL);
		assert_int_equal(vd_dev_set_status(fx->dev, ACK | 0x40), 0);
		assert_int_equal(vd_dev_set_status(fx->dev, 0), 0);
	}
	log = lc_end();
	vd_log_set_level(VD_LOG_ERR);
	assert_true(lc_count(log, "DRIVER without ACKNOWLEDGE; refused") >= 1);
	/* Without the limit: 2000 lines. */
	assert_true(lc_count(log, "fake0") <= 20);
	assert_int_equal(vd_dev_status(fx->dev), 0);
}

/* Break, reset, break again: the driver is told every time, the log gets
 * the first few reasons. */
static void
needs_reset_after_every_reset_is_rate_limited_in_the_log(void **state)
{
	struct fixture *fx = *state;
	const char *log;

	lc_begin();
	for (int i = 0; i < 500; i++) {
		vd_dev_needs_reset(fx->dev, "q0: chain loop at desc %d", i);
		assert_true(vd_dev_status(fx->dev) & NRS);
		assert_int_equal(vd_dev_set_status(fx->dev, 0), 0);
	}
	log = lc_end();
	assert_int_equal(fx->shim.notify_config, 500);
	assert_true(lc_count(log, "device needs reset: q0: chain loop at "
				  "desc 0") == 1);
	assert_true(lc_count(log, "device needs reset") <= 20);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(handshake_reaches_driver_ok_and_tells_the_model),
		T(features_ok_refused_for_unoffered_bit),
		T(features_ok_refused_without_version_1),
		T(driver_ok_without_features_ok_is_refused),
		T(driver_ok_in_a_write_whose_features_ok_fails_is_refused),
		T(driver_without_acknowledge_is_refused),
		T(reserved_status_bit_is_refused),
		T(clearing_a_status_bit_is_refused),
		T(failed_is_accepted_at_any_time),
		T(reset_clears_status_and_features_and_resets_the_model),
		T(driver_features_after_features_ok_are_ebusy),
		T(needs_reset_notifies_config_once_and_survives_status_writes),
		T(driver_cannot_set_needs_reset),
		T(negotiate_refuses_unoffered_bits_and_applies_offered),
		T(config_read_inside_bounds_returns_model_bytes),
		T(config_access_past_the_end_is_einval),
		T(config_write_reaches_model_and_read_only_is_eperm),
		T(config_changed_bumps_generation_and_notifies),
		T(device_owns_one_queue_per_model_queue),
		T(model_without_queue_kick_or_queues_is_rejected),
		T(refused_status_writes_are_rate_limited_in_the_log),
		T(needs_reset_after_every_reset_is_rate_limited_in_the_log),
	};

	/* Refusals are logged; keep the test output to the results. */
	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
