/* virtio-blk I/O through every engine: random I/O checked against a shadow
 * of the image, several queues at once, discard and write-zeroes on ext4
 * and tmpfs, ENOSPC and EFBIG answered with IOERR. */
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
#include "blk_env.h"
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
	return env_open_engine(&env, engine_of(state), dir, size, extra_name,
			       extra_val, nq, layout, must);
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
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
