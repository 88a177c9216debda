/* virtio-blk against a backing store whose system calls the test controls.
 * preadv, pwritev2 and fdatasync are interposed here (the threads engine
 * calls them directly): they can return short transfers, hold a write in
 * flight, and record the order of writes and syncs, so durability and
 * continuation are checked as the device does them, not only by reading
 * the image back. Test-only. */
#include <errno.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#include <cmocka.h>

#include "blk_env.h"
#include "virtiod/log.h"

#define IMG_SIZE (4u << 20)

static struct blk_env env;

/* ------------------------------------------------- interposed calls */

static atomic_uint xfer_cap;	    /* bytes per preadv/pwritev2, 0: all */
static atomic_uint short_calls;	    /* calls that the cap cut short */
static atomic_bool hold_next_write; /* park the next pwritev2 */
static sem_t write_parked, write_go;
static atomic_int parked_flags;
static atomic_bool held_write_done;
static atomic_uint syncs_after_write; /* fdatasyncs begun after it */
static atomic_uint dsync_writes, plain_writes;

/* One transfer through the kernel, at most xfer_cap bytes of iov. */
static ssize_t xfer(long nr, int fd, const struct iovec *iov, int cnt,
		    off_t off, int flags)
{
	struct iovec v[1024];
	size_t cap = atomic_load(&xfer_cap), total = 0;
	int n = 0;

	if (cnt < 0 || cnt > 1024) {
		errno = EINVAL;
		return -1;
	}
	for (; n < cnt; n++) {
		v[n] = iov[n];
		if (cap && total + v[n].iov_len > cap) {
			v[n].iov_len = cap - total;
			n++;
			atomic_fetch_add(&short_calls, 1);
			break;
		}
		total += v[n].iov_len;
	}
	if (nr == SYS_preadv)
		return syscall(nr, fd, v, n, (unsigned long)off, 0ul);
	return syscall(nr, fd, v, n, (unsigned long)off, 0ul, flags);
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return xfer(SYS_preadv, fd, iov, cnt, off, 0);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	bool held;
	ssize_t r;

	/* The backend's open-time probe: not a request's write. */
	if (flags & RWF_NOWAIT)
		return syscall(SYS_pwritev2, fd, iov, cnt, (unsigned long)off,
			       0ul, flags);
	held = atomic_exchange(&hold_next_write, false);
	atomic_fetch_add(flags & RWF_DSYNC ? &dsync_writes : &plain_writes, 1);
	if (held) {
		atomic_store(&parked_flags, flags);
		sem_post(&write_parked);
		while (sem_wait(&write_go) < 0 && errno == EINTR)
			;
	}
	r = xfer(SYS_pwritev2, fd, iov, cnt, off, flags);
	if (held)
		atomic_store(&held_write_done, true);
	return r;
}

int fdatasync(int fd)
{
	bool after = atomic_load(&held_write_done);
	long r = syscall(SYS_fdatasync, fd);

	if (after)
		atomic_fetch_add(&syncs_after_write, 1);
	return (int)r;
}

static void reset_calls(void)
{
	atomic_store(&xfer_cap, 0);
	atomic_store(&short_calls, 0);
	atomic_store(&hold_next_write, false);
	atomic_store(&held_write_done, false);
	atomic_store(&syncs_after_write, 0);
	atomic_store(&dsync_writes, 0);
	atomic_store(&plain_writes, 0);
}

static void sem_wait_or_fail(sem_t *s, const char *what)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ENV_WAIT_MS / 1000;
	while (sem_timedwait(s, &t) < 0)
		if (errno != EINTR)
			fail_msg("%s: %s", what, strerror(errno));
}

/* ---------------------------------------------------------- helpers */

static int setup(void **state)
{
	(void)state;
	reset_calls();
	assert_int_equal(sem_init(&write_parked, 0, 0), 0);
	assert_int_equal(sem_init(&write_go, 0, 0), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* Never leave a worker parked (a failed test). */
	sem_post(&write_go);
	env_close(&env);
	reset_calls();
	sem_destroy(&write_parked);
	sem_destroy(&write_go);
	return 0;
}

static int open_threads(const char *dir, const char *extra, bool must)
{
	const char *opts[5] = {"io-engine", "threads", extra, NULL, NULL};

	memset(&env, 0, sizeof(env));
	env.img = -1;
	env_image(&env, dir, IMG_SIZE, false);
	if (env_create(&env, opts) != 0) {
		if (must)
			fail_msg("create: %s", env.err);
		return -1;
	}
	env_start(&env, VD_VQ_SPLIT, 64, 0);
	return 0;
}

static void set_wce(uint8_t v)
{
	assert_int_equal(
		vd_dev_config_write(env.dev,
				    offsetof(struct virtio_blk_config, wce), &v,
				    1),
		0);
}

/* ------------------------------------------------------- durability */

/* virtio 1.2 §5.2.6.3: with WCE=0 a completed write is durable. A write
 * the device issued in writeback mode (no RWF_DSYNC) that completes after
 * the driver switched to writethrough must be synced before it is
 * reported done: the switch's own fdatasync ran while it was in flight. */
static void
write_in_flight_across_switch_to_writethrough_is_synced(void **state)
{
	struct env_req r;

	(void)state;
	open_threads("/tmp", NULL, true);
	assert_int_equal(ENV_CFG(&env, wce), 1);
	env_req_alloc(&env, &r, 4096);
	td_mem_fill(env.m, r.data, 4096, 31);
	atomic_store(&hold_next_write, true);
	env_req_add(&env, 0, &r, VIRTIO_BLK_T_OUT, 8, false, false);
	env_kick(&env, 0);
	sem_wait_or_fail(&write_parked, "write never reached pwritev2");
	assert_false(atomic_load(&parked_flags) & RWF_DSYNC);

	set_wce(0); /* control thread, while the write is parked */
	assert_int_equal(ENV_CFG(&env, wce), 0);
	sem_post(&write_go);

	assert_ptr_equal(env_wait(&env, 0, NULL), &r);
	assert_int_equal(env_status(&env, &r), VIRTIO_BLK_S_OK);
	assert_true(atomic_load(&held_write_done));
	/* The completion came after an fdatasync that began after the
	 * write's data reached the kernel. */
	assert_true(atomic_load(&syncs_after_write) >= 1);
	assert_true(env_img_equals(&env, 8 * 512, env_hva(&env, r.data), 4096));
}

/* The other way round costs nothing extra: in writethrough mode every write
 * carries RWF_DSYNC and needs no separate fdatasync. */
static void writethrough_writes_use_dsync_without_extra_sync(void **state)
{
	struct env_req r;

	(void)state;
	open_threads("/tmp", NULL, true);
	set_wce(0);
	env_req_alloc(&env, &r, 8192);
	td_mem_fill(env.m, r.data, 8192, 32);
	atomic_store(&hold_next_write, true);
	env_req_add(&env, 0, &r, VIRTIO_BLK_T_OUT, 64, false, false);
	env_kick(&env, 0);
	sem_wait_or_fail(&write_parked, "write never reached pwritev2");
	assert_true(atomic_load(&parked_flags) & RWF_DSYNC);
	sem_post(&write_go);
	assert_ptr_equal(env_wait(&env, 0, NULL), &r);
	assert_int_equal(env_status(&env, &r), VIRTIO_BLK_S_OK);
	assert_int_equal(atomic_load(&syncs_after_write), 0);
	assert_int_equal(atomic_load(&plain_writes), 0);
	assert_true(
		env_img_equals(&env, 64 * 512, env_hva(&env, r.data), 8192));
}

/* ------------------------------------------------- short transfers */

/* A request whose data spans buffers of odd sizes, moved 1000 bytes per
 * call: each continuation must start at the right image offset and the
 * right place inside the right buffer. */
static void check_short_transfers(unsigned cap, unsigned min_short)
{
	static const uint32_t lens[] = {1536, 4096, 512, 2048};
	enum { N = sizeof(lens) / sizeof(lens[0]), TOTAL = 8192 };
	struct td_buf b[N + 2];
	uint64_t hdr = td_mem_alloc(env.m, 16, 16);
	uint64_t st = td_mem_alloc(env.m, 1, 1);
	uint8_t want[TOTAL], got[TOTAL];
	uint64_t data[N];
	uint32_t at = 0;
	void *tok;

	for (unsigned i = 0; i < N; i++) {
		/* Misaligned by a few bytes: the bounce path under --direct. */
		data[i] = td_mem_alloc(env.m, lens[i] + 64, 4096) + 8;
		td_mem_fill(env.m, data[i], lens[i], 40 + i);
		memcpy(want + at, env_hva(&env, data[i]), lens[i]);
		at += lens[i];
	}
	atomic_store(&xfer_cap, cap);

	/* OUT at sector 24. */
	env_hdr(&env, hdr, VIRTIO_BLK_T_OUT, 24);
	b[0] = (struct td_buf){hdr, 16, false};
	for (unsigned i = 0; i < N; i++)
		b[1 + i] = (struct td_buf){data[i], lens[i], false};
	b[N + 1] = (struct td_buf){st, 1, true};
	assert_int_equal(td_vq_add(env.vq[0], b, N + 2, false, b), 0);
	env_kick(&env, 0);
	tok = env_wait(&env, 0, NULL);
	assert_ptr_equal(tok, b);
	assert_int_equal(*(uint8_t *)env_hva(&env, st), VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 24 * 512, want, TOTAL));

	/* IN of the same range into cleared buffers. */
	for (unsigned i = 0; i < N; i++)
		memset(env_hva(&env, data[i]), 0, lens[i]);
	env_hdr(&env, hdr, VIRTIO_BLK_T_IN, 24);
	for (unsigned i = 0; i < N; i++)
		b[1 + i].write = true;
	assert_int_equal(td_vq_add(env.vq[0], b, N + 2, false, b), 0);
	env_kick(&env, 0);
	tok = env_wait(&env, 0, NULL);
	assert_ptr_equal(tok, b);
	assert_int_equal(*(uint8_t *)env_hva(&env, st), VIRTIO_BLK_S_OK);
	at = 0;
	for (unsigned i = 0; i < N; i++) {
		memcpy(got + at, env_hva(&env, data[i]), lens[i]);
		at += lens[i];
	}
	assert_memory_equal(got, want, TOTAL);
	/* The cap really cut transfers short, both ways. */
	assert_true(atomic_load(&short_calls) >= min_short);
}

static void short_transfers_continue_where_they_stopped(void **state)
{
	(void)state;
	open_threads("/tmp", NULL, true);
	check_short_transfers(1000, 8);
}

static void short_transfers_through_bounce_buffers(void **state)
{
	(void)state;
	if (open_threads("/tmp", "direct", false) < 0) {
		print_message("--direct refused on /tmp (%s): bounce path not "
			      "covered here\n",
			      env.err);
		skip();
	}
	/* O_DIRECT: the short count must stay block-aligned. Each way is one
	 * 8 KiB bounce chunk, cut once. */
	check_short_transfers(4096, 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(write_in_flight_across_switch_to_writethrough_is_synced),
		T(writethrough_writes_use_dsync_without_extra_sync),
		T(short_transfers_continue_where_they_stopped),
		T(short_transfers_through_bounce_buffers),
	};
#undef T

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
