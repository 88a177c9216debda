/* virtio-blk I/O through every engine: random I/O checked against a shadow
 * of the image, several queues at once, discard and write-zeroes on ext4
 * and tmpfs, ENOSPC and EFBIG answered with IOERR, O_DIRECT bounce, drain
 * on stop, batched notifications, and the fallback when io_uring is
 * refused. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "log_capture.h"
#include "test_blk_env.h"
#include "virtiod/log.h"

#define IMG_SIZE    (4u << 20)
#define SLOTS_PER_Q 8
#define SLOT_DATA   (64u << 10)

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
	const char *opts[9] = {"io-engine", engine_of(state), "num-queues",
			       nq ? nq : "1", NULL};
	unsigned n = 4;

	if (extra_name) {
		opts[n++] = extra_name;
		opts[n++] = extra_val;
	}
	opts[n] = NULL;
	memset(&env, 0, sizeof(env));
	env.img = -1;
	env_image(&env, dir, size, false);
	if (env_create(&env, opts) != 0) {
		if (must)
			fail_msg("create: %s", env.err);
		return -1;
	}
	env_start(&env, layout, 128, 0);
	return 0;
}

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* ------------------------------------------------------- random I/O */

struct slot {
	unsigned q;
	uint64_t base, span; /* its own image region: no overlap in flight */
	uint64_t hdr, data, status;
	uint32_t type, len;
	uint64_t off;
};

static void slot_submit(struct slot *s, uint8_t *shadow, uint32_t *seed)
{
	struct td_buf b[5];
	unsigned n = 0, parts;
	uint32_t cut1, cut2;

	s->type = rnd(seed) & 1 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	s->len = (1 + rnd(seed) % (SLOT_DATA / 512)) * 512;
	s->off = s->base + (rnd(seed) % ((s->span - s->len) / 512 + 1)) * 512;
	env_hdr(&env, s->hdr, s->type, s->off / 512);
	*(uint8_t *)env_hva(&env, s->status) = 0xee;
	if (s->type == VIRTIO_BLK_T_OUT) {
		td_mem_fill(env.m, s->data, s->len, rnd(seed));
		memcpy(shadow + s->off, env_hva(&env, s->data), s->len);
	} else {
		memset(env_hva(&env, s->data), 0xcc, s->len);
	}
	/* Data in 1..3 descriptors cut at arbitrary bytes (ANY_LAYOUT). */
	parts = 1 + rnd(seed) % 3;
	cut1 = parts > 1 ? 1 + rnd(seed) % (s->len - 1) : s->len;
	cut2 = parts > 2 && cut1 < s->len - 1
		       ? cut1 + 1 + rnd(seed) % (s->len - cut1 - 1)
		       : s->len;
	b[n++] = (struct td_buf){s->hdr, 16, false};
	b[n++] = (struct td_buf){s->data, cut1, s->type == VIRTIO_BLK_T_IN};
	if (cut1 < s->len)
		b[n++] = (struct td_buf){s->data + cut1, cut2 - cut1,
					 s->type == VIRTIO_BLK_T_IN};
	if (cut2 < s->len)
		b[n++] = (struct td_buf){s->data + cut2, s->len - cut2,
					 s->type == VIRTIO_BLK_T_IN};
	b[n++] = (struct td_buf){s->status, 1, true};
	assert_int_equal(td_vq_add(env.vq[s->q], b, n, rnd(seed) % 4 == 0, s),
			 0);
}

/* `total` random requests over every queue, SLOTS_PER_Q in flight each,
 * every read checked against the shadow, then the file against it. */
static void run_random(unsigned total, uint32_t seed)
{
	unsigned nslots = env.nq * SLOTS_PER_Q, submitted = 0, done = 0;
	struct slot *slots = calloc(nslots, sizeof(*slots));
	uint8_t *shadow = malloc(env.img_size);
	uint64_t deadline = env_now_ms() + 30000;
	unsigned per_q[ENV_MAX_QUEUES] = {0};

	assert_non_null(slots);
	assert_non_null(shadow);
	assert_int_equal(pread(env.img, shadow, env.img_size, 0),
			 (ssize_t)env.img_size);
	for (unsigned i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];

		s->q = i % env.nq;
		s->span = env.img_size / nslots / 512 * 512;
		s->base = i * s->span;
		s->hdr = td_mem_alloc(env.m, 16, 16);
		s->data = td_mem_alloc(env.m, SLOT_DATA, 512);
		s->status = td_mem_alloc(env.m, 1, 1);
		assert_true(s->hdr && s->data && s->status);
		if (submitted < total) {
			slot_submit(s, shadow, &seed);
			submitted++;
		}
	}
	for (unsigned q = 0; q < env.nq; q++)
		env_kick(&env, q);
	while (done < total) {
		bool progress = false;

		for (unsigned q = 0; q < env.nq; q++) {
			struct slot *s;
			uint32_t used;
			bool again = false;

			while (td_vq_get_used(env.vq[q], (void **)&s, &used) ==
			       1) {
				progress = true;
				done++;
				per_q[q]++;
				assert_int_equal(
					*(uint8_t *)env_hva(&env, s->status),
					VIRTIO_BLK_S_OK);
				if (s->type == VIRTIO_BLK_T_IN) {
					assert_int_equal(used, s->len + 1);
					assert_memory_equal(
						env_hva(&env, s->data),
						shadow + s->off, s->len);
				}
				if (submitted < total) {
					slot_submit(s, shadow, &seed);
					submitted++;
					again = true;
				}
			}
			if (again)
				env_kick(&env, q);
		}
		if (!progress) {
			struct pollfd p[ENV_MAX_QUEUES];
			uint64_t v;

			assert_true(env_now_ms() < deadline);
			for (unsigned q = 0; q < env.nq; q++)
				p[q] = (struct pollfd){env.call[q], POLLIN, 0};
			poll(p, env.nq, 20);
			for (unsigned q = 0; q < env.nq; q++)
				if (read(env.call[q], &v, sizeof(v)) < 0) {
					/* EAGAIN: nothing there */
				}
		}
	}
	for (unsigned q = 0; q < env.nq; q++) {
		assert_true(per_q[q] > 0);
		assert_true(atomic_load(&env.notifies[q]) > 0);
	}
	assert_true(env_img_equals(&env, 0, shadow, env.img_size));
	free(shadow);
	free(slots);
}

static void random_io_matches_shadow_split(void **state)
{
	open_with(state, "/dev/shm", IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT,
		  true);
	run_random(600, 1);
}

static void random_io_matches_shadow_packed(void **state)
{
	open_with(state, "/tmp", IMG_SIZE, NULL, NULL, NULL, VD_VQ_PACKED,
		  true);
	run_random(600, 2);
}

static void several_queues_serve_concurrent_requests(void **state)
{
	open_with(state, "/dev/shm", IMG_SIZE, NULL, NULL, "3", VD_VQ_SPLIT,
		  true);
	assert_int_equal(env.nq, 3);
	run_random(900, 3);
}

/* ------------------------------------------------ discard, write zeroes */

static uint8_t dwz(uint32_t type, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint64_t g = td_mem_alloc(env.m, 16, 16);
	struct virtio_blk_discard_write_zeroes *s = env_hva(&env, g);

	s->sector = htole64(sector);
	s->num_sectors = htole32(num);
	s->flags = htole32(flags);
	return env_do(&env, 0, type, 0, g, 16, NULL);
}

static uint64_t img_blocks(void)
{
	struct stat st;

	assert_int_equal(fstat(env.img, &st), 0);
	return (uint64_t)st.st_blocks;
}

static bool reads_zero(uint64_t off, uint32_t len)
{
	uint64_t d = td_mem_alloc(env.m, len, 4096);
	uint8_t *p = env_hva(&env, d);

	memset(p, 0xcc, len);
	if (env_do(&env, 0, VIRTIO_BLK_T_IN, off / 512, d, len, NULL) !=
	    VIRTIO_BLK_S_OK)
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void check_discard_punches_hole(void **state, const char *dir)
{
	uint64_t before, after;

	open_with(state, dir, IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT, true);
	assert_int_equal(fsync(env.img), 0);
	before = img_blocks();
	/* 1 MiB at 1 MiB: 2048 sectors. */
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, 2048, 2048, 0),
			 VIRTIO_BLK_S_OK);
	after = img_blocks();
	assert_true(before - after >= (1u << 20) / 512);
	assert_true(env_img_zero(&env, 1u << 20, 1u << 20));
	assert_true(reads_zero(1u << 20, 65536));
	assert_true(env_img_pattern(&env, 0, 1u << 20));
	assert_true(env_img_pattern(&env, 2u << 20, 4096));
}

static void discard_punches_hole_ext4(void **state)
{
	check_discard_punches_hole(state, "/tmp");
}

static void discard_punches_hole_tmpfs(void **state)
{
	check_discard_punches_hole(state, "/dev/shm");
}

static void check_write_zeroes(void **state, const char *dir)
{
	uint64_t before, after;
	uint64_t g;
	struct virtio_blk_discard_write_zeroes *s;

	open_with(state, dir, IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT, true);
	assert_int_equal(fsync(env.img), 0);
	before = img_blocks();
	/* Without UNMAP: zeros, allocation kept. */
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 8, 128, 0),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_zero(&env, 4096, 65536));
	assert_true(reads_zero(4096, 65536));
	assert_true(env_img_pattern(&env, 0, 4096));
	assert_true(env_img_pattern(&env, 4096 + 65536, 4096));
	assert_true(img_blocks() >= before);
	/* With UNMAP: zeros and the range deallocated. */
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 2048, 2048,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_OK);
	after = img_blocks();
	assert_true(before - after >= (1u << 20) / 512);
	assert_true(env_img_zero(&env, 1u << 20, 1u << 20));
	/* Three segments in one request, in writethrough mode. */
	{
		uint8_t v = 0;

		assert_int_equal(
			vd_dev_config_write(
				env.dev,
				offsetof(struct virtio_blk_config, wce), &v, 1),
			0);
	}
	g = td_mem_alloc(env.m, 48, 16);
	s = env_hva(&env, g);
	for (unsigned i = 0; i < 3; i++) {
		s[i].sector = htole64(6144 + i * 64);
		s[i].num_sectors = htole32(8);
		s[i].flags = htole32(i == 1 ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
					    : 0);
	}
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, g, 48, NULL),
		VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 3; i++) {
		uint64_t off = (6144 + i * 64) * 512ULL;

		assert_true(env_img_zero(&env, off, 4096));
		assert_true(env_img_pattern(&env, off + 4096, 512));
	}
}

static void write_zeroes_reads_back_zeros_ext4(void **state)
{
	check_write_zeroes(state, "/tmp");
}

static void write_zeroes_reads_back_zeros_tmpfs(void **state)
{
	check_write_zeroes(state, "/dev/shm");
}

/* ----------------------------------------------------- ENOSPC and EFBIG */

static char mnt[64];

static void enospc_on_full_tmpfs_is_ioerr_and_device_goes_on(void **state)
{
	uint64_t d;
	uint32_t used;

	snprintf(mnt, sizeof(mnt), "/tmp/vd-blk-enospc-%d", (int)getpid());
	assert_true(mkdir(mnt, 0700) == 0 || errno == EEXIST);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") != 0) {
		print_message("cannot mount a 1 MiB tmpfs (%s): ENOSPC is "
			      "covered by the RLIMIT_FSIZE test only\n",
			      strerror(errno));
		rmdir(mnt);
		skip();
	}
	memset(&env, 0, sizeof(env));
	env_image(&env, mnt, IMG_SIZE, true); /* sparse: 4 MiB on 1 MiB */
	{
		const char *opts[] = {"io-engine", engine_of(state), NULL};

		if (env_create(&env, opts) != 0)
			fail_msg("create: %s", env.err);
	}
	env_start(&env, VD_VQ_SPLIT, 128, 0);
	d = td_mem_alloc(env.m, 1u << 20, 4096);
	td_mem_fill(env.m, d, 1u << 20, 11);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, 0, d, 256 << 10, NULL),
		VIRTIO_BLK_S_OK);
	/* 1 MiB more cannot fit: ENOSPC part way. */
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, 4096, d, 1u << 20, &used),
		VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 1);
	/* The device goes on: reads, and writes into allocated blocks. */
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, 0, d + (512 << 10),
				256 << 10, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(env_hva(&env, d), env_hva(&env, d + (512 << 10)),
			    256 << 10);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_OUT, 8, d, 4096, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 4096, env_hva(&env, d), 4096));
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL),
			 VIRTIO_BLK_S_OK);
}

static int enospc_teardown(void **state)
{
	teardown(state);
	if (mnt[0]) {
		umount2(mnt, MNT_DETACH);
		rmdir(mnt);
		mnt[0] = '\0';
	}
	return 0;
}

static void efbig_past_rlimit_is_ioerr_and_device_goes_on(void **state)
{
	struct rlimit old, lim;
	uint64_t d;
	uint8_t st1, st2, st3;

	open_with(state, "/dev/shm", IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT,
		  true);
	d = td_mem_alloc(env.m, 16384, 4096);
	td_mem_fill(env.m, d, 16384, 21);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 2u << 20;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	st1 = env_do(&env, 0, VIRTIO_BLK_T_OUT, (3u << 20) / 512, d, 4096,
		     NULL);
	/* Straddles the limit: the first 8 KiB are written (a short write),
	 * the continuation fails. */
	st2 = env_do(&env, 0, VIRTIO_BLK_T_OUT, ((2u << 20) - 8192) / 512, d,
		     16384, NULL);
	st3 = env_do(&env, 0, VIRTIO_BLK_T_OUT, 0, d, 4096, NULL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(st1, VIRTIO_BLK_S_IOERR);
	assert_int_equal(st2, VIRTIO_BLK_S_IOERR);
	assert_int_equal(st3, VIRTIO_BLK_S_OK);
	assert_true(env_img_pattern(&env, 3u << 20, 4096));
	assert_true(env_img_equals(&env, (2u << 20) - 8192, env_hva(&env, d),
				   8192));
	assert_true(env_img_pattern(&env, 2u << 20, 8192));
	assert_true(env_img_equals(&env, 0, env_hva(&env, d), 4096));
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, 16, d + 8192, 4096, NULL),
		VIRTIO_BLK_S_OK);
	assert_true(
		env_img_equals(&env, 16 * 512, env_hva(&env, d + 8192), 4096));
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
	open_with(state, "/tmp", IMG_SIZE, NULL, NULL, NULL, VD_VQ_SPLIT,
		  true);
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
	/* io_uring: one submit, completions reaped and notified per batch;
	 * sync: the whole kick runs as one batch. Threads: completions arrive
	 * one by one, but never more than one notification per request. */
	if (strcmp(engine_of(state), "threads") != 0)
		assert_true(atomic_load(&env.notifies[0]) <= 4);
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

static int deny_io_uring_setup(void)
{
#if defined(__x86_64__)
	const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
	const unsigned arch = AUDIT_ARCH_AARCH64;
#else
	const unsigned arch = 0;
#endif
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (!arch || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

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

	if (deny_io_uring_setup() != 0)
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
		EACH_ENGINE(random_io_matches_shadow_split),
		EACH_ENGINE(random_io_matches_shadow_packed),
		EACH_ENGINE(several_queues_serve_concurrent_requests),
		EACH_ENGINE(discard_punches_hole_ext4),
		EACH_ENGINE(discard_punches_hole_tmpfs),
		EACH_ENGINE(write_zeroes_reads_back_zeros_ext4),
		EACH_ENGINE(write_zeroes_reads_back_zeros_tmpfs),
		ENGINES(enospc_on_full_tmpfs_is_ioerr_and_device_goes_on,
			enospc_teardown),
		EACH_ENGINE(efbig_past_rlimit_is_ioerr_and_device_goes_on),
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
