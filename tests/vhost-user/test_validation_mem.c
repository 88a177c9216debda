/* The frontend is not trusted: one case per validation rule of memory
 * regions, slots, the dirty log, the inflight area and config space,
 * checked as in test_validation.c. */
#include <endian.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "validation.h"

/* --------------------------------------------------------------- memory */

struct mem_msg {
	uint32_t nregions, padding;
	struct vhost_user_memory_region r[9];
};

static void bad_table(const struct vhost_user_memory_region *r, unsigned n,
		      int fd, const char *rule)
{
	struct mem_msg t = {n, 0, {{0}}};
	int fds[2] = {fd, fd};

	memcpy(t.r, r, n * sizeof(*r));
	refused(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &t, 8 + 32 * n,
		fds, n, "SET_MEM_TABLE", rule);
}

static void more_than_8_regions_are_refused(void **state)
{
	struct mem_msg t = {9, 0, {{0}}};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &t, 8 + 8 * 32,
		NULL, 0, "SET_MEM_TABLE", "9 regions, at most 8");
}

static void region_count_and_size_disagree_is_refused(void **state)
{
	struct mem_msg t = {2, 0, {{0}}};
	int fd = memfd_of(4096);
	int fds[2] = {fd, fd};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &t, 8 + 32, fds,
		2, "SET_MEM_TABLE", "2 regions need 72 payload bytes, got 40");
	close(fd);
}

static void region_count_and_fds_disagree_is_refused(void **state)
{
	struct mem_msg t = {1, 0, {{0x1000, 4096, 0x1000, 0}}};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &t, 8 + 32, NULL,
		0, "SET_MEM_TABLE", "1 regions but 0 fds");
}

#define REGION_CASE(fname, gpa, size, uaddr, off, fdsize, rule)                \
	static void fname(void **state)                                        \
	{                                                                      \
		struct vhost_user_memory_region r = {gpa, size, uaddr, off};   \
		int fd = memfd_of(fdsize);                                     \
                                                                               \
		(void)state;                                                   \
		prepare(HANDSHAKE);                                            \
		bad_table(&r, 1, fd, rule);                                    \
		close(fd);                                                     \
	}

REGION_CASE(region_of_size_zero_is_refused, 0, 0, 0x10000, 0, 4096,
	    "region 0: size 0")
REGION_CASE(region_gpa_wrapping_is_refused, UINT64_MAX - 4095, 8192, 0x10000, 0,
	    8192, "region 0: guest address + size wraps")
REGION_CASE(region_uaddr_wrapping_is_refused, 0, 8192, UINT64_MAX - 4095, 0,
	    8192, "region 0: user address + size wraps")
REGION_CASE(region_offset_wrapping_is_refused, 0, 8192, 0x10000,
	    UINT64_MAX - 4095, 8192, "region 0: mmap offset + size wraps")
REGION_CASE(region_past_the_end_of_its_fd_is_refused, 0, 1u << 20, 0x10000, 0,
	    65536, "ends past the end of its file")
REGION_CASE(region_offset_past_the_end_is_refused, 0, 4096, 0x10000, 1u << 20,
	    65536, "ends past the end of its file")

static void overlapping_regions_are_refused(void **state)
{
	struct vhost_user_memory_region r[2] = {{0, 8192, 0x10000, 0},
						{4096, 8192, 0x40000, 0}};
	int fd = memfd_of(65536);

	(void)state;
	prepare(HANDSHAKE);
	bad_table(r, 2, fd, "regions 0 and 1 overlap");
	close(fd);
}

/* Memory regions, the dirty log and the inflight area must be regular
 * files (memfd, tmpfs, hugetlbfs): anything else is refused by kind, from
 * the request table, before a handler runs. */
struct wrong_fd {
	int fd;
	const char *is;
};

static unsigned wrong_fds(struct wrong_fd *w)
{
	int p[2], sv[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	close(sv[1]);
	w[0] = (struct wrong_fd){p[1], "fd 0 is a pipe"};
	w[1] = (struct wrong_fd){sv[0], "fd 0 is a socket"};
	/* /dev/zero maps (as anonymous memory), but a device is not
	 * guest memory: its mmap means whatever its driver says. */
	w[2] = (struct wrong_fd){open("/dev/zero", O_RDWR | O_CLOEXEC),
				 "fd 0 is a character device"};
	w[3] = (struct wrong_fd){eventfd(0, EFD_CLOEXEC), "fd 0 is an eventfd"};
	w[4] = (struct wrong_fd){open("/", O_RDONLY | O_CLOEXEC),
				 "fd 0 is a directory"};
	for (unsigned i = 0; i < 5; i++)
		assert_true(w[i].fd >= 0);
	return 5;
}

static void refused_by_kind(uint32_t req, const void *p, uint32_t size,
			    const char *name)
{
	struct wrong_fd w[5];
	unsigned n = wrong_fds(w);
	char rule[160];

	for (unsigned i = 0; i < n; i++) {
		snprintf(rule, sizeof(rule),
			 "%s, expected a regular file (memfd, tmpfs or "
			 "hugetlbfs)",
			 w[i].is);
		prepare(req == VHOST_USER_SET_INFLIGHT_FD ? MEMORY : HANDSHAKE);
		refused(req, VHOST_USER_VERSION, p, size, &w[i].fd, 1, name,
			rule);
		if (vs->m.hva)
			gmem_free(&vs->m);
		memset(&vs->m, 0, sizeof(vs->m));
		close(w[i].fd);
	}
}

static void region_fd_not_a_file_is_refused(void **state)
{
	struct mem_msg t = {1, 0, {{0, 4096, 0x10000, 0}}};

	(void)state;
	refused_by_kind(VHOST_USER_SET_MEM_TABLE, &t, 8 + 32, "SET_MEM_TABLE");
}

static void add_region_fd_not_a_file_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, {0, 4096, 0x10000, 0}};

	(void)state;
	refused_by_kind(VHOST_USER_ADD_MEM_REG, &m, sizeof(m), "ADD_MEM_REG");
}

static void log_fd_not_a_file_is_refused(void **state)
{
	uint64_t l[2] = {4096, 0};

	(void)state;
	refused_by_kind(VHOST_USER_SET_LOG_BASE, l, 16, "SET_LOG_BASE");
}

static void inflight_fd_not_a_file_is_refused(void **state)
{
	struct vhost_user_inflight in = {1u << 16, 0, 1, 64};

	(void)state;
	refused_by_kind(VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in),
			"SET_INFLIGHT_FD");
}

static void add_region(const struct vhost_user_memory_region *r, const int *fd,
		       unsigned nfd)
{
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, *r};

	assert_int_equal(fe_acked(&vs->f, VHOST_USER_ADD_MEM_REG, &m, sizeof(m),
				  fd, nfd),
			 0);
}

static void add_region_without_fd_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, {0, 4096, 0x10000, 0}};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_ADD_MEM_REG, VHOST_USER_VERSION, &m, sizeof(m), NULL,
		0, "ADD_MEM_REG", "0 fds attached, expected 1..1");
}

static void add_region_past_fd_end_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, {0, 1u << 20, 0x10000, 0}};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_ADD_MEM_REG, VHOST_USER_VERSION, &m, sizeof(m), &fd,
		1, "ADD_MEM_REG", "ends past the end of its file");
	close(fd);
}

static void add_overlapping_region_is_refused(void **state)
{
	struct vhost_user_memory_region a = {0, 8192, 0x10000, 0};
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, {4096, 8192, 0x80000, 0}};
	int fd = memfd_of(8192);

	(void)state;
	prepare(HANDSHAKE);
	add_region(&a, &fd, 1);
	refused(VHOST_USER_ADD_MEM_REG, VHOST_USER_VERSION, &m, sizeof(m), &fd,
		1, "ADD_MEM_REG", "overlaps region at gpa 0x0");
	close(fd);
}

static void more_than_509_slots_are_refused(void **state)
{
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, {0, 4096, 0x10000, 0}};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	for (unsigned i = 0; i < 509; i++) {
		struct vhost_user_memory_region r = {
			0x100000ull * i, 4096, 0x10000000ull + 0x100000ull * i,
			0};

		add_region(&r, &fd, 1);
	}
	m.r.guest_phys_addr = 0x100000ull * 600;
	refused(VHOST_USER_ADD_MEM_REG, VHOST_USER_VERSION, &m, sizeof(m), &fd,
		1, "ADD_MEM_REG", "all 509 memory slots in use");
	close(fd);
}

static void removing_an_unknown_region_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct vhost_user_memory_region r;
	} m = {0, {0x5000000, 4096, 0x10000, 0}};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_REM_MEM_REG, VHOST_USER_VERSION, &m, sizeof(m), NULL,
		0, "REM_MEM_REG", "no region with gpa 0x5000000");
}

/* ------------------------------------------------------ log and inflight */

static void log_without_fd_is_refused(void **state)
{
	uint64_t l[2] = {4096, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, l, 16, NULL, 0,
		"SET_LOG_BASE", "0 fds attached, expected 1..1");
}

static void log_past_its_fd_is_refused(void **state)
{
	uint64_t l[2] = {1u << 20, 0};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, l, 16, &fd, 1,
		"SET_LOG_BASE", "ends past the end of its file");
	close(fd);
}

static void log_of_size_zero_is_refused(void **state)
{
	uint64_t l[2] = {0, 0};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, l, 16, &fd, 1,
		"SET_LOG_BASE", "log size 0");
	close(fd);
}

static void inflight_for_too_many_queues_is_refused(void **state)
{
	struct vhost_user_inflight in = {0, 0, 3, 64};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, &in, sizeof(in),
		NULL, 0, "GET_INFLIGHT_FD", "3 queues, device has 2");
}

static void inflight_queue_size_above_max_is_refused(void **state)
{
	struct vhost_user_inflight in = {0, 0, 1, 1024};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, &in, sizeof(in),
		NULL, 0, "GET_INFLIGHT_FD", "queue size 1024 outside 1..256");
}

static void inflight_area_too_small_is_refused(void **state)
{
	struct vhost_user_inflight in = {64, 0, 1, 64};
	int fd = memfd_of(4096);

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_INFLIGHT_FD, VHOST_USER_VERSION, &in, sizeof(in),
		&fd, 1, "SET_INFLIGHT_FD",
		"area of 64 bytes, 1 split queues of 64 need");
	close(fd);
}

static void inflight_area_past_its_fd_is_refused(void **state)
{
	struct vhost_user_inflight in = {1u << 20, 0, 1, 64};
	int fd = memfd_of(4096);

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_INFLIGHT_FD, VHOST_USER_VERSION, &in, sizeof(in),
		&fd, 1, "SET_INFLIGHT_FD", "ends past the end of its file");
	close(fd);
}

/* --------------------------------------------------------------- config */

static void config_size_over_256_is_refused(void **state)
{
	uint32_t c[4] = {0, 300, 0, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, c, 16, NULL, 0,
		"GET_CONFIG", "config size 300 over 256");
}

static void config_size_disagreeing_with_payload_is_refused(void **state)
{
	uint32_t c[4] = {0, 8, 0, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_CONFIG, VHOST_USER_VERSION, c, 16, NULL, 0,
		"SET_CONFIG", "config size 8 but payload of 16 bytes");
}

static void config_unknown_flags_are_refused(void **state)
{
	uint32_t c[4] = {0, 4, 5, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_CONFIG, VHOST_USER_VERSION, c, 16, NULL, 0,
		"SET_CONFIG", "unknown config flags 5");
}

int run_validation_mem_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_teardown(f, validation_test_teardown)
		T(more_than_8_regions_are_refused),
		T(region_count_and_size_disagree_is_refused),
		T(region_count_and_fds_disagree_is_refused),
		T(region_of_size_zero_is_refused),
		T(region_gpa_wrapping_is_refused),
		T(region_uaddr_wrapping_is_refused),
		T(region_offset_wrapping_is_refused),
		T(region_past_the_end_of_its_fd_is_refused),
		T(region_offset_past_the_end_is_refused),
		T(overlapping_regions_are_refused),
		T(region_fd_not_a_file_is_refused),
		T(add_region_fd_not_a_file_is_refused),
		T(log_fd_not_a_file_is_refused),
		T(inflight_fd_not_a_file_is_refused),
		T(add_region_without_fd_is_refused),
		T(add_region_past_fd_end_is_refused),
		T(add_overlapping_region_is_refused),
		T(more_than_509_slots_are_refused),
		T(removing_an_unknown_region_is_refused),
		T(log_without_fd_is_refused),
		T(log_past_its_fd_is_refused),
		T(log_of_size_zero_is_refused),
		T(inflight_for_too_many_queues_is_refused),
		T(inflight_queue_size_above_max_is_refused),
		T(inflight_area_too_small_is_refused),
		T(inflight_area_past_its_fd_is_refused),
		T(config_size_over_256_is_refused),
		T(config_size_disagreeing_with_payload_is_refused),
		T(config_unknown_flags_are_refused),
#undef T
	};

	return cmocka_run_group_tests_name(
		"vhost-user validation: memory, log, inflight, config", tests,
		validation_setup, validation_teardown);
}
