/* Guest memory in a hugetlbfs memfd, and what a frontend can still do to
 * it after the daemon sealed it against shrinking (docs/security.md): it
 * may punch holes. With huge pages free, the next access takes a fresh
 * zeroed page and serving goes on; with the pool empty, a request whose
 * buffer is in the hole fails (the kernel's copy gets EFAULT) and the
 * daemon lives, but the daemon's own access to a ring in a hole raises
 * SIGBUS and ends its process: only the device of that frontend. Needs
 * root and huge pages (reserved here, restored after); skips visibly. */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vu_test.h"

#define HP   (2u << 20)
#define GPA0 0x100000000ull

static long nr_prev = -1;

static long read_long(const char *path, const char *key)
{
	char line[160];
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!key) {
			v = strtol(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, strlen(key))) {
			v = strtol(line + strlen(key), NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static bool write_nr(long n)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", n) > 0;
	return (fclose(f) == 0) && ok;
}

/* want more free huge pages than now, or false (nothing changed). */
static bool reserve(long want)
{
	nr_prev = read_long("/proc/sys/vm/nr_hugepages", NULL);
	if (geteuid() != 0 || nr_prev < 0 || !write_nr(nr_prev + want))
		return false;
	if (read_long("/proc/meminfo", "HugePages_Free:") < want) {
		write_nr(nr_prev);
		nr_prev = -1;
		return false;
	}
	return true;
}

static int teardown(void **state)
{
	int rc = env_teardown(state);

	if (nr_prev >= 0 && !write_nr(nr_prev))
		fprintf(stderr, "cannot restore nr_hugepages to %ld\n",
			nr_prev);
	nr_prev = -1;
	return rc;
}

/* Takes every free huge page; the fd holds them till closed. */
static int eat_the_pool(void)
{
	int fd = memfd_create("vu-test-pool", MFD_HUGETLB | MFD_CLOEXEC);
	off_t n = 0;

	assert_true(fd >= 0);
	while (ftruncate(fd, (n + 1) * HP) == 0 &&
	       fallocate(fd, 0, n * HP, HP) == 0)
		n++;
	assert_int_equal(read_long("/proc/meminfo", "HugePages_Free:"), 0);
	return fd;
}

static void punch(struct env *e, uint64_t off)
{
	assert_int_equal(fallocate(e->m.fd,
				   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)off, HP),
			 0);
}

static void hugetlbfs_memory_after_sealing_and_hole_punching(void **state)
{
	struct env *e = *state;
	struct vuf_mem *mems[1] = {&e->m};
	struct ring *r = &e->r[0];
	uint64_t one = 1, data;
	int pool, pool2, st = 0;

	/* 3 pages of guest memory (rings; data; headers), 1 to refill. */
	if (!reserve(4)) {
		printf("SKIP: no huge pages (needs root and "
		       "/proc/sys/vm/nr_hugepages); hugetlbfs guest memory "
		       "not exercised\n");
		skip();
	}
	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(false));
	assert_int_equal(vuf_mem_new(&e->m, "vu-test-huge", 3 * HP, GPA0,
				     MFD_HUGETLB | MFD_ALLOW_SEALING),
			 0);
	fe_set_mem_table(&e->f, mems, 1);
	/* Sealed by the daemon: shrinking is refused... */
	assert_int_equal(fcntl(e->m.fd, F_GET_SEALS), F_SEAL_SHRINK);
	assert_int_equal(ftruncate(e->m.fd, HP), -1);
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, false); /* rings in the first page */
	fe_setup_ring(&e->f, r, 0, false, true);
	/* The data at the end of the second page; blk_do's headers and
	 * status bytes come after it, in the third. */
	gmem_alloc(&e->m, HP - 4096, HP);
	data = gmem_alloc(&e->m, 4096, 4096);
	assert_int_equal(data, GPA0 + 2 * HP - 4096);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 0, data, 4096),
			 VIRTIO_BLK_S_OK);
	/* ...punching a hole is not (F_SEAL_WRITE would stop it, and
	 * guest memory must stay writable). A free page fills it. */
	punch(e, HP);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 0, data, 4096),
			 VIRTIO_BLK_S_OK);
	/* The pool empty (eaten after the punch, which gave the page back):
	 * the kernel's copy into the hole fails, the request with it; the
	 * daemon serves on. */
	punch(e, HP);
	pool = eat_the_pool();
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 0, data, 4096),
			 VIRTIO_BLK_S_IOERR);
	assert_true(daemon_alive(&e->d));
	/* The rings in a hole: the queue thread's own load faults, SIGBUS
	 * ends the daemon. The kick is written raw: the test must not touch
	 * the hole either. */
	punch(e, 0);
	pool2 = eat_the_pool(); /* the punched page went back to the pool */
	assert_int_equal(write(r->kick, &one, sizeof(one)), sizeof(one));
	for (int i = 0; i < 500 && waitpid(e->d.pid, &st, WNOHANG) == 0; i++)
		nap_ms(10);
	close(pool);
	close(pool2);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGBUS);
	e->d.pid = -1;
}

int run_hugetlb_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			hugetlbfs_memory_after_sealing_and_hole_punching,
			env_setup, teardown),
	};

	return cmocka_run_group_tests_name("vhost-user hugetlbfs memory", tests,
					   NULL, NULL);
}
