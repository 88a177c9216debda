/* virtio-blk I/O through every engine, continued: O_DIRECT bounce, drain
 * on stop, batched notifications, busy polling, the default engine and the
 * fallback when io_uring is refused. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "log_capture.h"
#include "blk_env.h"
#include "syscall_fault.h"
#include "virtiod/log.h"

#define IMG_SIZE (4u << 20)

static struct blk_env env;

static int teardown(void **state)
{
	(void)state;
	env_close(&env);
	return 0;
}

static const char *engine_of(void **state)
{
	return *state;
}

/* Open an image in dir with the engine under test plus extra options. */
static int open_with(void **state, const char *dir, uint64_t size,
		     const char *extra_name, const char *extra_val,
		     const char *nq, enum vd_vq_layout layout, bool must)
{
	return env_open_engine(&env, engine_of(state), dir, size, extra_name,
			       extra_val, nq, layout, must);
}

/* ------------------------------------------------------------- O_DIRECT */

static void direct_misaligned_buffers_are_bounced(void **state)
{
	enum { N = 16, BIG = 512 << 10 };
	struct env_req r[N];
	uint64_t d;
	uint8_t *want;

	if (open_with(state, "/tmp", 16u << 20, "direct", NULL, NULL,
		      VD_VQ_SPLIT, false) < 0) {
		print_message("--direct refused on /tmp (%s): bounce path not "
			      "covered here\n",
			      env.err);
		skip();
	}
	/* Aligned: straight to the file. */
	d = td_mem_alloc(env.m, 8192 + 1, 4096);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, 8, d, 4096, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 4096, env_hva(&env, d), 4096));
	/* One byte off: bounced both ways. */
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, 24, d + 1, 8192, NULL),
		VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 24 * 512, env_hva(&env, d + 1), 8192));
	td_mem_fill(env.m, d + 1, 8192, 4);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, 40, d + 1, 8192, NULL),
		VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 40 * 512, env_hva(&env, d + 1), 8192));
	/* More misaligned requests than bounce buffers, each larger than a
	 * bounce chunk: they wait for buffers and move in chunks. */
	want = malloc((size_t)N * BIG);
	assert_non_null(want);
	for (unsigned i = 0; i < N; i++) {
		uint64_t g = td_mem_alloc(env.m, BIG + 4096, 4096) + 8;

		r[i].hdr = td_mem_alloc(env.m, 16, 16);
		r[i].status = td_mem_alloc(env.m, 1, 1);
		r[i].data = g;
		r[i].len = BIG;
		td_mem_fill(env.m, g, BIG, 100 + i);
		memcpy(want + (size_t)i * BIG, env_hva(&env, g), BIG);
		env_req_add(&env, 0, &r[i], VIRTIO_BLK_T_OUT,
			    (1u << 20) / 512 + i * (BIG / 512), false, false);
	}
	env_kick(&env, 0);
	for (unsigned i = 0; i < N; i++) {
		struct env_req *got = env_wait(&env, 0, NULL);

		assert_int_equal(env_status(&env, got), VIRTIO_BLK_S_OK);
	}
	assert_true(env_img_equals(&env, 1u << 20, want, (size_t)N * BIG));
	free(want);
}

/* ------------------------------------------------------ stop, batching */

static void queue_stop_completes_every_request_in_flight(void **state)
{
	enum { N = 40 };
	struct env_req r[N];
	void *tok;
	uint32_t len;
	uint16_t avail = 0, used = 0;
	unsigned got = 0;

	open_with(state, "/dev/shm", IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT,
		  true);
	for (unsigned i = 0; i < N; i++) {
		env_req_alloc(&env, &r[i], 16384);
		env_req_add(&env, 0, &r[i],
			    i % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, i * 32,
			    i % 2, false);
	}
	env_kick(&env, 0);
	assert_int_equal(vd_queue_stop(vd_dev_queue(env.dev, 0), &avail, NULL,
				       &used, NULL),
			 0);
	while (td_vq_get_used(env.vq[0], &tok, &len) == 1) {
		struct env_req *e = tok;

		assert_int_equal(env_status(&env, e), VIRTIO_BLK_S_OK);
		got++;
	}
	/* Every chain the thread popped before the stop was finished and
	 * published; nothing is left half done. */
	assert_int_equal(got, avail);
	assert_int_equal(used, avail);
}

static void one_kick_batch_gets_few_notifications(void **state)
{
	enum { N = 32 };
	struct env_req r[N];

	/* Not tmpfs: there io_uring completes every read in an io-wq worker,
	 * one at a time, as the scheduler lets them; a store that takes
	 * RWF_NOWAIT completes cached reads inside the submit. */
	open_with(state, "/tmp", IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT, true);
	for (unsigned i = 0; i < N; i++) {
		env_req_alloc(&env, &r[i], 4096);
		env_req_add(&env, 0, &r[i], VIRTIO_BLK_T_IN, i * 8, true,
			    false);
	}
	env_kick(&env, 0);
	for (unsigned i = 0; i < N; i++) {
		struct env_req *got = env_wait(&env, 0, NULL);

		assert_int_equal(env_status(&env, got), VIRTIO_BLK_S_OK);
		assert_true(env_img_equals(&env, (uint64_t)(got - r) * 4096,
					   env_hva(&env, got->data), 4096));
	}
	/* sync: the whole kick runs as one batch, so one notification.
	 * io_uring (a read not in the page cache goes to io-wq) and threads
	 * complete asynchronously, so how completions group into batches is
	 * up to the scheduler: never more than one notification per request
	 * is all that holds every time. */
	if (strcmp(engine_of(state), "sync") == 0)
		assert_int_equal(atomic_load(&env.notifies[0]), 1);
	else
		assert_true(atomic_load(&env.notifies[0]) <= N);
	assert_true(atomic_load(&env.notifies[0]) >= 1);
}

/* ------------------------------------------------------ busy polling */

static int poll_teardown(void **state)
{
	vd_queue_set_default_poll_us(0);
	return teardown(state);
}

/* With --poll-us the driver is asked not to kick after a batch, and the
 * requests it adds meanwhile complete all the same: the queue thread finds
 * them in the ring and the engine's completions without sleeping. tmpfs:
 * io_uring completes there through io-wq workers, the case where polling
 * must ask the kernel for the completions it holds back. */
static void polling_serves_requests_without_kicks(void **state)
{
	enum { N = 16 };
	struct env_req r[N];

	vd_queue_set_default_poll_us(500000);
	open_with(state, "/dev/shm", IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT,
		  true);
	vd_queue_set_default_poll_us(0);
	for (unsigned i = 0; i < N; i++) {
		env_req_alloc(&env, &r[i], 4096);
		env_req_add(&env, 0, &r[i], VIRTIO_BLK_T_IN, i * 8, true,
			    false);
		/* The first may need a kick (the start-up window may have
		 * passed); every later one finds the thread polling. */
		if (i > 0)
			assert_false(td_vq_kick_needed(env.vq[0]));
		else
			env_kick(&env, 0);
		assert_ptr_equal(env_wait(&env, 0, NULL), &r[i]);
		assert_int_equal(env_status(&env, &r[i]), VIRTIO_BLK_S_OK);
		assert_true(env_img_equals(&env, (uint64_t)i * 4096,
					   env_hva(&env, r[i].data), 4096));
	}
}

/* ------------------------------------------------------ engine choice */

/* tmpfs refuses RWF_NOWAIT, so io_uring would punt every request to a
 * worker thread: by default such an image is served by the sync engine;
 * an image on ext4 (reads go inline) keeps io_uring. */
static void default_engine_is_sync_on_tmpfs_only(void **state)
{
	const char *out;

	(void)state;
	memset(&env, 0, sizeof(env));
	env_image(&env, "/dev/shm", IMG_SIZE, false);
	vd_log_set_level(VD_LOG_INFO);
	lc_begin();
	if (env_create(&env, NULL) != 0)
		fail_msg("create: %s", env.err);
	out = lc_end();
	assert_int_equal(lc_count(out, "sync engine"), 1);
	env_close(&env);

	env_image(&env, "/tmp", IMG_SIZE, false);
	lc_begin();
	if (env_create(&env, NULL) != 0)
		fail_msg("create: %s", env.err);
	out = lc_end();
	vd_log_set_level(VD_LOG_ERR);
	assert_int_equal(lc_count(out, "sync engine"), 0);
	/* and it serves */
	env_start(&env, VD_VQ_SPLIT, 16, 0);
	{
		uint64_t d = td_mem_alloc(env.m, 4096, 4096);

		assert_int_equal(
			env_do(&env, 0, VIRTIO_BLK_T_IN, 8, d, 4096, NULL),
			VIRTIO_BLK_S_OK);
		assert_true(env_img_pattern(&env, 4096, 4096) &&
			    env_img_equals(&env, 4096, env_hva(&env, d), 4096));
	}
}

/* ------------------------------------------------------ engine fallback */

/* In a child without io_uring: returns 0 if the default engine served a
 * read and an explicit --io-engine uring refused to start. Plain checks:
 * cmocka's asserts must not run in a forked child. */
static int child_without_io_uring(const char *path)
{
	struct blk_env c;
	const char *explicit_uring[] = {"io-engine", "uring", NULL};
	struct td_buf b[3];
	uint64_t h, d, st;
	void *tok = NULL;
	uint32_t len;
	uint8_t want[4096];
	int fd;

	if (sf_fail_syscall(__NR_io_uring_setup, EPERM, false) != 0)
		return 10;
	memset(&c, 0, sizeof(c));
	snprintf(c.path, sizeof(c.path), "%s", path);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, want, sizeof(want), 4096) != sizeof(want))
		return 11;
	close(fd);
	/* Default engine: falls back to threads. */
	if (env_create(&c, NULL) != 0)
		return 12;
	c.m = td_mem_new(1 << 20, 1);
	c.dev = vd_dev_new(c.model, td_mem_vd(c.m), &env_shim_ops, &c, "blk0");
	if (!c.dev || vd_dev_negotiate(c.dev, env_features(&c, VD_VQ_SPLIT)))
		return 13;
	{
		struct vd_queue_setup s;

		memset(&s, 0, sizeof(s));
		c.vq[0] = td_vq_new(c.m, VD_VQ_SPLIT, 16, true, true);
		td_vq_fill_config(c.vq[0], &s.vq);
		s.vq.max_iov = 0;
		c.kick[0] = eventfd(0, EFD_NONBLOCK);
		c.call[0] = eventfd(0, EFD_NONBLOCK);
		s.kick_fd = c.kick[0];
		if (vd_queue_start(vd_dev_queue(c.dev, 0), &s) != 0)
			return 14;
	}
	h = td_mem_alloc(c.m, 16, 16);
	d = td_mem_alloc(c.m, 4096, 4096);
	st = td_mem_alloc(c.m, 1, 1);
	((struct virtio_blk_outhdr *)td_mem_hva(c.m, h))->sector = htole64(8);
	b[0] = (struct td_buf){h, 16, false};
	b[1] = (struct td_buf){d, 4096, true};
	b[2] = (struct td_buf){st, 1, true};
	if (td_vq_add(c.vq[0], b, 3, false, &c) != 0)
		return 15;
	{
		uint64_t one = 1;

		if (write(c.kick[0], &one, sizeof(one)) != sizeof(one))
			return 16;
	}
	for (int i = 0; i < 500 && td_vq_get_used(c.vq[0], &tok, &len) != 1;
	     i++)
		poll(NULL, 0, 10);
	if (tok != &c || *(uint8_t *)td_mem_hva(c.m, st) != VIRTIO_BLK_S_OK ||
	    memcmp(td_mem_hva(c.m, d), want, sizeof(want)) != 0)
		return 17;
	vd_dev_free(c.dev);
	/* Explicit uring: no silent fallback, the queue does not start. */
	c.model = NULL;
	if (env_create(&c, explicit_uring) != 0)
		return 18;
	c.dev = vd_dev_new(c.model, td_mem_vd(c.m), &env_shim_ops, &c, "blk1");
	if (!c.dev || vd_dev_negotiate(c.dev, env_features(&c, VD_VQ_SPLIT)))
		return 19;
	{
		struct vd_queue_setup s;
		struct td_vq *vq = td_vq_new(c.m, VD_VQ_SPLIT, 16, true, true);

		memset(&s, 0, sizeof(s));
		td_vq_fill_config(vq, &s.vq);
		s.vq.max_iov = 0;
		s.kick_fd = c.kick[0];
		if (vd_queue_start(vd_dev_queue(c.dev, 0), &s) != -EPERM)
			return 20;
	}
	vd_dev_free(c.dev);
	return 0;
}

static void default_engine_falls_back_to_threads_without_io_uring(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	memset(&env, 0, sizeof(env));
	/* Not tmpfs: there the default is the sync engine, no io_uring. */
	env_image(&env, "/tmp", IMG_SIZE, false);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_without_io_uring(env.path));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 10) {
		print_message("seccomp unavailable: fallback not covered\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

#define ENGINES(f, td)                                                         \
	cmocka_unit_test_prestate_setup_teardown(f, NULL, td,                  \
						 (void *)"uring"),             \
		cmocka_unit_test_prestate_setup_teardown(f, NULL, td,          \
							 (void *)"threads"),   \
		cmocka_unit_test_prestate_setup_teardown(f, NULL, td,          \
							 (void *)"sync")
#define EACH_ENGINE(f) ENGINES(f, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		EACH_ENGINE(direct_misaligned_buffers_are_bounced),
		EACH_ENGINE(queue_stop_completes_every_request_in_flight),
		EACH_ENGINE(one_kick_batch_gets_few_notifications),
		ENGINES(polling_serves_requests_without_kicks, poll_teardown),
		cmocka_unit_test_teardown(default_engine_is_sync_on_tmpfs_only,
					  teardown),
		cmocka_unit_test_teardown(
			default_engine_falls_back_to_threads_without_io_uring,
			teardown),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
