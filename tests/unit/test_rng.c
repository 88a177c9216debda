/* virtio-rng: the token bucket on an injected clock (no timing in the
 * test), and the device through the core: buffers filled with entropy, and
 * with --rate requests held back until the injected clock says so, filled
 * in part rather than failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "blk_env.h"
#include "rng.h"
#include "virtiod/log.h"

extern const struct vd_device_type vd_rng_type;

#define MS 1000000ULL
#define S  1000000000ULL

static void bucket_gives_rate_bytes_per_second_of_its_clock(void **state)
{
	struct rng_bucket b;
	uint64_t t = 5 * S, sum = 0;

	(void)state;
	rng_bucket_init(&b, 1000, 1000, t);
	assert_int_equal(rng_bucket_take(&b, t, 1500), 1000); /* full burst */
	assert_int_equal(rng_bucket_take(&b, t, 10), 0);
	assert_int_equal(rng_bucket_wait_ns(&b, t, 64), 64 * MS);
	assert_int_equal(rng_bucket_take(&b, t + 32 * MS, 100), 32);
	/* Saved up for ten seconds: at most the burst. */
	assert_int_equal(rng_bucket_take(&b, t + 10 * S, 5000), 1000);
	/* A clock that steps back adds nothing. */
	assert_int_equal(rng_bucket_take(&b, t, 5000), 0);
	/* Fractions carry over: 4 B/s in eighths of a second. */
	rng_bucket_init(&b, 4, 4, 0);
	assert_int_equal(rng_bucket_take(&b, 0, 4), 4);
	for (int i = 1; i <= 8; i++)
		sum += rng_bucket_take(&b, (uint64_t)i * S / 8, 100);
	assert_int_equal(sum, 4);
	assert_int_equal(rng_bucket_wait_ns(&b, S, 100), S); /* capped */
}

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
	return __atomic_load_n(&fake_now, __ATOMIC_ACQUIRE);
}

static void rng_open(struct blk_env *env, const char *rate)
{
	void *o = NULL;

	memset(env, 0, sizeof(*env));
	env->img = -1;
	assert_int_equal(vd_device_type_opts_new(&vd_rng_type, &o), 0);
	if (rate)
		assert_int_equal(vd_device_type_opts_set(&vd_rng_type, o,
							 "rate", rate, env->err,
							 sizeof(env->err)),
				 0);
	assert_int_equal(
		vd_rng_type.create(o, &env->model, env->err, sizeof(env->err)),
		0);
	vd_device_type_opts_free(&vd_rng_type, o);
	env_start(env, VD_VQ_SPLIT, 16, 0);
}

static uint64_t post(struct blk_env *env, uint32_t len, int *tok)
{
	uint64_t a = td_mem_alloc(env->m, len, 8);
	struct td_buf b = {a, len, true};

	assert_int_equal(td_vq_add(env->vq[0], &b, 1, false, tok), 0);
	return a;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void rng_fills_buffers_with_entropy(void **state)
{
	struct blk_env env;
	int tok;
	uint32_t len;
	uint64_t a;

	(void)state;
	rng_open(&env, NULL);
	a = post(&env, 65536, &tok);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &len), &tok);
	assert_int_equal(len, 65536);
	assert_false(all_zero(td_mem_hva(env.m, a), 65536));
	env_close(&env);
}

static void rng_rate_holds_requests_until_the_clock_moves(void **state)
{
	struct blk_env env;
	int tok[4];
	uint32_t len;
	uint64_t a[4];
	void *t;

	(void)state;
	__atomic_store_n(&fake_now, 100 * S, __ATOMIC_RELEASE);
	rng_clock_ns = fake_clock;
	rng_open(&env, "1000"); /* 1000 B/s, a burst of 1000 */
	for (int i = 0; i < 4; i++)
		a[i] = post(&env, 512, &tok[i]);
	env_kick(&env, 0);
	/* The burst: 512, then the 488 left, in part. */
	assert_ptr_equal(env_wait(&env, 0, &len), &tok[0]);
	assert_int_equal(len, 512);
	assert_ptr_equal(env_wait(&env, 0, &len), &tok[1]);
	assert_int_equal(len, 488);
	assert_false(all_zero(td_mem_hva(env.m, a[1]), 488));
	/* The clock stands still: the other two wait, whatever the real
	 * time (the device's timer fires and finds the bucket empty). */
	usleep(200 * 1000);
	assert_int_equal(td_vq_get_used(env.vq[0], &t, &len), 0);
	/* A second later in the device's time: the next burst. */
	__atomic_store_n(&fake_now, 101 * S, __ATOMIC_RELEASE);
	assert_ptr_equal(env_wait(&env, 0, &len), &tok[2]);
	assert_int_equal(len, 512);
	assert_ptr_equal(env_wait(&env, 0, &len), &tok[3]);
	assert_int_equal(len, 488);
	env_close(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			bucket_gives_rate_bytes_per_second_of_its_clock),
		cmocka_unit_test(rng_fills_buffers_with_entropy),
		cmocka_unit_test(rng_rate_holds_requests_until_the_clock_moves),
	};

	vd_log_set_level(VD_LOG_WARN);
	return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
