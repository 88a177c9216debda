/* The frontend is not trusted: one case per validation rule. Each sends
 * one bad message and then checks that the daemon logged the request and
 * the rule, closed the connection (or sent an error reply), is alive, holds
 * no extra fd, and serves a fresh connection. */
#include <endian.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vu_test.h"

struct vstate {
	struct daemon d;
	int idle_fds; /* the daemon's fds with no frontend */
	struct fe f;
	struct gmem m;
};

static struct vstate *vs;

/* One full cycle first (handshake, memory, rings, I/O, disconnect), so the
 * baseline is the daemon's steady state, not its first moments. */
static int group_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	vs = calloc(1, sizeof(*vs));
	if (!vs || !e)
		return -1;
	daemon_prepare(&vs->d, 16);
	daemon_start(&vs->d, "--num-queues", "2", NULL);
	e->d = vs->d;
	env_open(e, 2, false, 64);
	assert_int_equal(blk_do(&e->r[1], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	env_close(e);
	free(e);
	for (int i = 0; i < 50; i++) {
		struct timespec ts = {0, 10000000};
		int a = daemon_fd_count(&vs->d);

		nanosleep(&ts, NULL);
		if (a == daemon_fd_count(&vs->d)) {
			vs->idle_fds = a;
			break;
		}
	}
	*state = vs;
	return vs->idle_fds > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	if (!daemon_alive(&vs->d))
		daemon_dump_log(&vs->d);
	daemon_cleanup(&vs->d);
	free(vs);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fe_close(&vs->f);
	if (vs->m.hva)
		gmem_free(&vs->m);
	return 0;
}

/* Levels of preparation before the bad message. */
enum prep {
	RAW,       /* connected, nothing sent */
	HANDSHAKE, /* protocol features (all), owner */
	MEMORY,    /* + features and a 4 MiB memory table */
};

static void prepare(enum prep p)
{
	fe_connect(&vs->f, vs->d.sock);
	if (p >= HANDSHAKE)
		fe_handshake(&vs->f);
	if (p >= MEMORY) {
		struct gmem *mems[1] = {&vs->m};

		fe_set_features(&vs->f, blk_features(false));
		gmem_new(&vs->m, 4u << 20, 0x100000000ull);
		fe_set_mem_table(&vs->f, mems, 1);
	}
}

/* After any refusal: alive, no leaked fd, a new frontend is served. */
static void daemon_still_serves(void)
{
	struct fe f;

	fe_close(&vs->f);
	assert_true(daemon_alive(&vs->d));
	assert_int_equal(daemon_wait_fd_count(&vs->d, vs->idle_fds),
			 vs->idle_fds);
	fe_connect(&f, vs->d.sock);
	fe_handshake(&f);
	assert_int_equal(fe_get_u64(&f, REQ_GET_QUEUE_NUM), 2);
	fe_close(&f);
	assert_int_equal(daemon_wait_fd_count(&vs->d, vs->idle_fds),
			 vs->idle_fds);
}

/* Send, expect the connection closed and the rule in the log. */
static void refused(uint32_t req, uint32_t flags, const void *p, uint32_t size,
		    const int *fds, unsigned n_fds, const char *name,
		    const char *rule)
{
	assert_int_equal(fe_send(&vs->f, req, flags, p, size, fds, n_fds), 0);
	assert_true(fe_closed_by_peer(&vs->f, 3000));
	if (!daemon_log_has(&vs->d, name, rule, "closing the connection",
			    NULL)) {
		daemon_dump_log(&vs->d);
		fail_msg("no log line with \"%s\" and \"%s\"", name, rule);
	}
	daemon_still_serves();
}

/* With NEED_REPLY: an error reply, and the connection stays usable. */
static void refused_with_reply(uint32_t req, const void *p, uint32_t size,
			       const int *fds, unsigned n_fds,
			       const char *name, const char *rule)
{
	assert_int_not_equal(fe_acked(&vs->f, req, p, size, fds, n_fds), 0);
	if (!daemon_log_has(&vs->d, name, rule, NULL)) {
		daemon_dump_log(&vs->d);
		fail_msg("no log line with \"%s\" and \"%s\"", name, rule);
	}
	assert_int_equal(fe_get_u64(&vs->f, REQ_GET_QUEUE_NUM), 2);
	daemon_still_serves();
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("vu-test-bad", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* ------------------------------------------------------------- header */

static void header_version_other_than_1_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(REQ_GET_FEATURES, 2, NULL, 0, NULL, 0, "GET_FEATURES",
		"header version 2, expected 1");
}

static void header_reply_flag_on_a_request_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(REQ_GET_FEATURES, F_VERSION | F_REPLY, NULL, 0, NULL, 0,
		"GET_FEATURES", "reply flag set on a request");
}

static void header_unknown_flags_are_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(REQ_GET_FEATURES, F_VERSION | 0x100, NULL, 0, NULL, 0,
		"GET_FEATURES", "unknown header flags 0x101");
}

static void unknown_request_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(99, F_VERSION, NULL, 0, NULL, 0, "unknown request",
		"request 99 is not supported");
}

static void unsupported_request_is_refused(void **state)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_LOG_FD, F_VERSION, NULL, 0, &fd, 1, "unknown request",
		"request 7 is not supported");
	close(fd);
}

static void payload_of_wrong_size_is_refused(void **state)
{
	uint32_t v = 1;

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_FEATURES, F_VERSION, &v, 4, NULL, 0, "SET_FEATURES",
		"payload of 4 bytes, expected 8");
}

static void payload_larger_than_any_request_is_refused(void **state)
{
	static uint8_t big[4096];

	(void)state;
	prepare(RAW);
	refused(REQ_SET_FEATURES, F_VERSION, big, sizeof(big), NULL, 0,
		"SET_FEATURES", "payload of 4096 bytes, no request has more");
}

static void variable_payload_out_of_range_is_refused(void **state)
{
	static uint8_t cfg[12 + 258];

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_GET_CONFIG, F_VERSION, cfg, sizeof(cfg), NULL, 0,
		"GET_CONFIG", "payload of 270 bytes, expected 12..268");
}

static void stray_fd_is_refused_and_closed(void **state)
{
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	/* daemon_still_serves counts the daemon's fds: this one is gone. */
	refused(REQ_GET_QUEUE_NUM, F_VERSION, NULL, 0, &fd, 1, "GET_QUEUE_NUM",
		"1 fds attached, expected 0..0");
	close(fd);
}

static void more_fds_than_any_request_takes_are_refused(void **state)
{
	int fds[12];

	(void)state;
	for (int i = 0; i < 12; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	prepare(HANDSHAKE);
	refused(REQ_GET_QUEUE_NUM, F_VERSION, NULL, 0, fds, 12,
		"GET_QUEUE_NUM", "more than 8 fds attached");
	for (int i = 0; i < 12; i++)
		close(fds[i]);
}

static void fds_sent_with_the_payload_are_refused(void **state)
{
	struct wire_hdr h = {REQ_SET_FEATURES, F_VERSION, 8};
	uint64_t v = 0;
	int fd = eventfd(0, EFD_CLOEXEC);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf = {{0}};
	struct iovec iov = {&v, sizeof(v)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf.buf,
			    .msg_controllen = sizeof(cbuf.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct timespec ts = {0, 50000000};

	(void)state;
	prepare(HANDSHAKE);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	assert_int_equal(send(vs->f.sock, &h, sizeof(h), 0), sizeof(h));
	nanosleep(&ts, NULL);
	assert_int_equal(sendmsg(vs->f.sock, &mh, 0), 8);
	assert_true(fe_closed_by_peer(&vs->f, 3000));
	assert_true(daemon_log_has(&vs->d, "SET_FEATURES",
				   "fds sent with the payload", NULL));
	close(fd);
	daemon_still_serves();
}

static void truncated_message_is_dropped(void **state)
{
	struct wire_hdr h = {REQ_SET_FEATURES, F_VERSION, 8};
	uint32_t half = 0;

	(void)state;
	prepare(HANDSHAKE);
	assert_int_equal(send(vs->f.sock, &h, sizeof(h), 0), sizeof(h));
	assert_int_equal(send(vs->f.sock, &half, sizeof(half), 0), 4);
	fe_close(&vs->f);
	assert_true(daemon_log_has(&vs->d, "truncated message (peer closed)",
				   NULL));
	daemon_still_serves();
}

static void stalled_message_is_dropped(void **state)
{
	struct wire_hdr h = {REQ_SET_FEATURES, F_VERSION, 8};

	(void)state;
	prepare(HANDSHAKE);
	/* Half a message, then silence: the daemon must not wait forever. */
	assert_int_equal(send(vs->f.sock, &h, sizeof(h), 0), sizeof(h));
	assert_true(fe_closed_by_peer(&vs->f, 5000));
	assert_true(daemon_log_has(&vs->d, "truncated message (timed out)",
				   NULL));
	daemon_still_serves();
}

static void second_frontend_is_turned_away(void **state)
{
	struct fe other;

	(void)state;
	prepare(HANDSHAKE);
	fe_connect(&other, vs->d.sock);
	assert_true(fe_closed_by_peer(&other, 3000));
	fe_close(&other);
	/* The first one is still served. */
	assert_int_equal(fe_get_u64(&vs->f, REQ_GET_QUEUE_NUM), 2);
	assert_true(daemon_log_has(&vs->d, "a second frontend connected", NULL));
	daemon_still_serves();
}

/* ---------------------------------------------------------- negotiation */

static void need_reply_without_reply_ack_is_refused(void **state)
{
	uint64_t pf = 1ull << PF_MQ;

	(void)state;
	prepare(RAW);
	fe_get_u64(&vs->f, REQ_GET_FEATURES);
	fe_set_u64(&vs->f, REQ_SET_PROTOCOL_FEATURES, pf);
	refused(REQ_SET_OWNER, F_VERSION | F_NEED_REPLY, NULL, 0, NULL, 0,
		"SET_OWNER", "need_reply without REPLY_ACK");
}

static void request_needing_an_unnegotiated_feature_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(REQ_GET_QUEUE_NUM, F_VERSION, NULL, 0, NULL, 0, "GET_QUEUE_NUM",
		"protocol feature 0 not negotiated");
}

static void unoffered_features_are_refused(void **state)
{
	uint64_t f = 1ull << 63;

	(void)state;
	prepare(HANDSHAKE);
	refused_with_reply(REQ_SET_FEATURES, &f, 8, NULL, 0, "SET_FEATURES",
			   "include unoffered 0x8000000000000000");
}

static void unoffered_protocol_features_are_refused(void **state)
{
	uint64_t f = 1ull << 20;

	(void)state;
	prepare(RAW);
	refused(REQ_SET_PROTOCOL_FEATURES, F_VERSION, &f, 8, NULL, 0,
		"SET_PROTOCOL_FEATURES", "include unoffered 0x100000");
}

static void status_beyond_a_byte_is_refused(void **state)
{
	uint64_t s = 0x100;

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_STATUS, F_VERSION, &s, 8, NULL, 0, "SET_STATUS",
		"is not a byte");
}

/* ---------------------------------------------------------------- rings */

static void queue_index_out_of_range_is_refused(void **state)
{
	uint32_t st[2] = {2, 64};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_VRING_NUM, F_VERSION, st, 8, NULL, 0, "SET_VRING_NUM",
		"queue index 2, device has 2 queues");
}

static void queue_index_error_gets_an_error_reply(void **state)
{
	uint32_t st[2] = {7, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused_with_reply(REQ_SET_VRING_BASE, st, 8, NULL, 0,
			   "SET_VRING_BASE",
			   "queue index 7, device has 2 queues");
}

static void ring_size_not_a_power_of_two_is_refused(void **state)
{
	uint32_t st[2] = {0, 100};

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_NUM, F_VERSION, st, 8, NULL, 0, "SET_VRING_NUM",
		"ring size 100 is not a power of two");
}

static void ring_size_above_the_maximum_is_refused(void **state)
{
	uint32_t st[2] = {1, 512};

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_NUM, F_VERSION, st, 8, NULL, 0, "SET_VRING_NUM",
		"ring size 512 outside 1..256");
}

static void ring_size_zero_is_refused(void **state)
{
	uint32_t st[2] = {0, 0};

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_NUM, F_VERSION, st, 8, NULL, 0, "SET_VRING_NUM",
		"ring size 0 outside 1..256");
}

static void split_base_over_16_bits_is_refused(void **state)
{
	uint32_t st[2] = {0, 0x10000};

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_BASE, F_VERSION, st, 8, NULL, 0,
		"SET_VRING_BASE", "split ring base 65536 over 16 bits");
}

static void kick_without_fd_is_refused(void **state)
{
	uint64_t v = 0 | 1u << 8;

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_KICK, F_VERSION, &v, 8, NULL, 0,
		"SET_VRING_KICK", "polling (no kick fd) is not supported");
}

static void invalid_fd_flag_with_an_fd_is_refused(void **state)
{
	uint64_t v = 1 | 1u << 8;
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_CALL, F_VERSION, &v, 8, &fd, 1,
		"SET_VRING_CALL", "invalid-fd flag set but an fd sent");
	close(fd);
}

static void missing_fd_without_flag_is_refused(void **state)
{
	uint64_t v = 0;

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_ERR, F_VERSION, &v, 8, NULL, 0, "SET_VRING_ERR",
		"no fd and no invalid-fd flag");
}

static void vring_file_reserved_bits_are_refused(void **state)
{
	uint64_t v = 1u << 9;
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_KICK, F_VERSION, &v, 8, &fd, 1,
		"SET_VRING_KICK", "reserved bits set in 0x200");
	close(fd);
}

static void vring_enable_other_than_0_or_1_is_refused(void **state)
{
	uint32_t st[2] = {0, 2};

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_VRING_ENABLE, F_VERSION, st, 8, NULL, 0,
		"SET_VRING_ENABLE", "enable value 2, expected 0 or 1");
}

static void send_ring_addr(uint64_t desc, uint64_t avail, uint64_t used,
			   uint32_t flags, const char *rule)
{
	uint32_t st[2] = {0, 64};
	struct wire_vring_addr a = {0, flags, desc, used, avail, 0};

	assert_int_equal(fe_acked(&vs->f, REQ_SET_VRING_NUM, st, 8, NULL, 0),
			 0);
	refused(REQ_SET_VRING_ADDR, F_VERSION, &a, sizeof(a), NULL, 0,
		"SET_VRING_ADDR", rule);
}

static void ring_outside_memory_is_refused(void **state)
{
	(void)state;
	prepare(MEMORY);
	send_ring_addr(0x1000, (uintptr_t)vs->m.hva + 4096,
		       (uintptr_t)vs->m.hva + 8192, 0,
		       "descriptor table at user address 0x1000 (+0x400) is "
		       "not inside one memory region");
}

static void ring_crossing_the_region_end_is_refused(void **state)
{
	uintptr_t end = (uintptr_t)vs->m.hva + vs->m.size;

	(void)state;
	prepare(MEMORY);
	end = (uintptr_t)vs->m.hva + vs->m.size;
	send_ring_addr((uintptr_t)vs->m.hva, (uintptr_t)vs->m.hva + 4096,
		       end - 64, 0, "used ring at user address");
}

static void misaligned_ring_is_refused(void **state)
{
	(void)state;
	prepare(MEMORY);
	send_ring_addr((uintptr_t)vs->m.hva + 8, (uintptr_t)vs->m.hva + 4096,
		       (uintptr_t)vs->m.hva + 8192, 0, "is not 16-byte aligned");
}

static void unknown_ring_flags_are_refused(void **state)
{
	(void)state;
	prepare(MEMORY);
	send_ring_addr((uintptr_t)vs->m.hva, (uintptr_t)vs->m.hva + 4096,
		       (uintptr_t)vs->m.hva + 8192, 2, "unknown vring flags 0x2");
}

static void ring_size_change_while_running_is_refused(void **state)
{
	struct ring r;
	uint32_t st[2] = {0, 32};

	(void)state;
	prepare(MEMORY);
	ring_init(&r, &vs->m, 0, 64, false);
	fe_setup_ring(&vs->f, &r, 0, false, true);
	refused(REQ_SET_VRING_NUM, F_VERSION, st, 8, NULL, 0, "SET_VRING_NUM",
		"ring 0 is running");
	ring_free(&r);
}

/* --------------------------------------------------------------- memory */

struct mem_msg {
	uint32_t nregions, padding;
	struct wire_region r[9];
};

static void bad_table(const struct wire_region *r, unsigned n, int fd,
		      const char *rule)
{
	struct mem_msg t = {n, 0, {{0}}};
	int fds[2] = {fd, fd};

	memcpy(t.r, r, n * sizeof(*r));
	refused(REQ_SET_MEM_TABLE, F_VERSION, &t, 8 + 32 * n, fds, n,
		"SET_MEM_TABLE", rule);
}

static void more_than_8_regions_are_refused(void **state)
{
	struct mem_msg t = {9, 0, {{0}}};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_MEM_TABLE, F_VERSION, &t, 8 + 8 * 32, NULL, 0,
		"SET_MEM_TABLE", "9 regions, at most 8");
}

static void region_count_and_size_disagree_is_refused(void **state)
{
	struct mem_msg t = {2, 0, {{0}}};
	int fd = memfd_of(4096);
	int fds[2] = {fd, fd};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_MEM_TABLE, F_VERSION, &t, 8 + 32, fds, 2,
		"SET_MEM_TABLE", "2 regions need 72 payload bytes, got 40");
	close(fd);
}

static void region_count_and_fds_disagree_is_refused(void **state)
{
	struct mem_msg t = {1, 0, {{0x1000, 4096, 0x1000, 0}}};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_MEM_TABLE, F_VERSION, &t, 8 + 32, NULL, 0,
		"SET_MEM_TABLE", "1 regions but 0 fds");
}

#define REGION_CASE(fname, gpa, size, uaddr, off, fdsize, rule)               \
	static void fname(void **state)                                        \
	{                                                                      \
		struct wire_region r = {gpa, size, uaddr, off};                \
		int fd = memfd_of(fdsize);                                     \
                                                                               \
		(void)state;                                                   \
		prepare(HANDSHAKE);                                            \
		bad_table(&r, 1, fd, rule);                                    \
		close(fd);                                                     \
	}

REGION_CASE(region_of_size_zero_is_refused, 0, 0, 0x10000, 0, 4096,
	    "region 0: size 0")
REGION_CASE(region_gpa_wrapping_is_refused, UINT64_MAX - 4095, 8192, 0x10000,
	    0, 8192, "region 0: guest address + size wraps")
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
	struct wire_region r[2] = {{0, 8192, 0x10000, 0},
				   {4096, 8192, 0x40000, 0}};
	int fd = memfd_of(65536);

	(void)state;
	prepare(HANDSHAKE);
	bad_table(r, 2, fd, "regions 0 and 1 overlap");
	close(fd);
}

static void region_fd_not_a_file_is_refused(void **state)
{
	struct wire_region r = {0, 4096, 0x10000, 0};
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(HANDSHAKE);
	bad_table(&r, 1, fd, "fd is not a regular file");
	close(fd);
}

static void add_region(const struct wire_region *r, const int *fd,
		       unsigned nfd)
{
	struct {
		uint64_t pad;
		struct wire_region r;
	} m = {0, *r};

	assert_int_equal(fe_acked(&vs->f, REQ_ADD_MEM_REG, &m, sizeof(m), fd,
				  nfd),
			 0);
}

static void add_region_without_fd_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct wire_region r;
	} m = {0, {0, 4096, 0x10000, 0}};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_ADD_MEM_REG, F_VERSION, &m, sizeof(m), NULL, 0,
		"ADD_MEM_REG", "0 fds attached, expected 1..1");
}

static void add_region_past_fd_end_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct wire_region r;
	} m = {0, {0, 1u << 20, 0x10000, 0}};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_ADD_MEM_REG, F_VERSION, &m, sizeof(m), &fd, 1,
		"ADD_MEM_REG", "ends past the end of its file");
	close(fd);
}

static void add_overlapping_region_is_refused(void **state)
{
	struct wire_region a = {0, 8192, 0x10000, 0};
	struct {
		uint64_t pad;
		struct wire_region r;
	} m = {0, {4096, 8192, 0x80000, 0}};
	int fd = memfd_of(8192);

	(void)state;
	prepare(HANDSHAKE);
	add_region(&a, &fd, 1);
	refused(REQ_ADD_MEM_REG, F_VERSION, &m, sizeof(m), &fd, 1,
		"ADD_MEM_REG", "overlaps region at gpa 0x0");
	close(fd);
}

static void more_than_509_slots_are_refused(void **state)
{
	struct {
		uint64_t pad;
		struct wire_region r;
	} m = {0, {0, 4096, 0x10000, 0}};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	for (unsigned i = 0; i < 509; i++) {
		struct wire_region r = {0x100000ull * i, 4096,
					0x10000000ull + 0x100000ull * i, 0};

		add_region(&r, &fd, 1);
	}
	m.r.gpa = 0x100000ull * 600;
	refused(REQ_ADD_MEM_REG, F_VERSION, &m, sizeof(m), &fd, 1,
		"ADD_MEM_REG", "all 509 memory slots in use");
	close(fd);
}

static void removing_an_unknown_region_is_refused(void **state)
{
	struct {
		uint64_t pad;
		struct wire_region r;
	} m = {0, {0x5000000, 4096, 0x10000, 0}};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_REM_MEM_REG, F_VERSION, &m, sizeof(m), NULL, 0,
		"REM_MEM_REG", "no region with gpa 0x5000000");
}

/* ------------------------------------------------------ log and inflight */

static void log_without_fd_is_refused(void **state)
{
	uint64_t l[2] = {4096, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_LOG_BASE, F_VERSION, l, 16, NULL, 0, "SET_LOG_BASE",
		"0 fds attached, expected 1..1");
}

static void log_past_its_fd_is_refused(void **state)
{
	uint64_t l[2] = {1u << 20, 0};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_LOG_BASE, F_VERSION, l, 16, &fd, 1, "SET_LOG_BASE",
		"ends past the end of its file");
	close(fd);
}

static void log_of_size_zero_is_refused(void **state)
{
	uint64_t l[2] = {0, 0};
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_LOG_BASE, F_VERSION, l, 16, &fd, 1, "SET_LOG_BASE",
		"log size 0");
	close(fd);
}

static void inflight_for_too_many_queues_is_refused(void **state)
{
	struct wire_inflight in = {0, 0, 3, 64};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_GET_INFLIGHT_FD, F_VERSION, &in, sizeof(in), NULL, 0,
		"GET_INFLIGHT_FD", "3 queues, device has 2");
}

static void inflight_queue_size_above_max_is_refused(void **state)
{
	struct wire_inflight in = {0, 0, 1, 1024};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_GET_INFLIGHT_FD, F_VERSION, &in, sizeof(in), NULL, 0,
		"GET_INFLIGHT_FD", "queue size 1024 outside 1..256");
}

static void inflight_area_too_small_is_refused(void **state)
{
	struct wire_inflight in = {64, 0, 1, 64};
	int fd = memfd_of(4096);

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_INFLIGHT_FD, F_VERSION, &in, sizeof(in), &fd, 1,
		"SET_INFLIGHT_FD", "area of 64 bytes, 1 split queues of 64 need");
	close(fd);
}

static void inflight_area_past_its_fd_is_refused(void **state)
{
	struct wire_inflight in = {1u << 20, 0, 1, 64};
	int fd = memfd_of(4096);

	(void)state;
	prepare(MEMORY);
	refused(REQ_SET_INFLIGHT_FD, F_VERSION, &in, sizeof(in), &fd, 1,
		"SET_INFLIGHT_FD", "ends past the end of its file");
	close(fd);
}

/* --------------------------------------------------------------- config */

static void config_size_over_256_is_refused(void **state)
{
	uint32_t c[4] = {0, 300, 0, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_GET_CONFIG, F_VERSION, c, 16, NULL, 0, "GET_CONFIG",
		"config size 300 over 256");
}

static void config_size_disagreeing_with_payload_is_refused(void **state)
{
	uint32_t c[4] = {0, 8, 0, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_CONFIG, F_VERSION, c, 16, NULL, 0, "SET_CONFIG",
		"config size 8 but payload of 16 bytes");
}

static void config_unknown_flags_are_refused(void **state)
{
	uint32_t c[4] = {0, 4, 5, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused(REQ_SET_CONFIG, F_VERSION, c, 16, NULL, 0, "SET_CONFIG",
		"unknown config flags 5");
}

int run_validation_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_teardown(f, teardown)
		T(header_version_other_than_1_is_refused),
		T(header_reply_flag_on_a_request_is_refused),
		T(header_unknown_flags_are_refused),
		T(unknown_request_is_refused),
		T(unsupported_request_is_refused),
		T(payload_of_wrong_size_is_refused),
		T(payload_larger_than_any_request_is_refused),
		T(variable_payload_out_of_range_is_refused),
		T(stray_fd_is_refused_and_closed),
		T(more_fds_than_any_request_takes_are_refused),
		T(fds_sent_with_the_payload_are_refused),
		T(truncated_message_is_dropped),
		T(stalled_message_is_dropped),
		T(second_frontend_is_turned_away),
		T(need_reply_without_reply_ack_is_refused),
		T(request_needing_an_unnegotiated_feature_is_refused),
		T(unoffered_features_are_refused),
		T(unoffered_protocol_features_are_refused),
		T(status_beyond_a_byte_is_refused),
		T(queue_index_out_of_range_is_refused),
		T(queue_index_error_gets_an_error_reply),
		T(ring_size_not_a_power_of_two_is_refused),
		T(ring_size_above_the_maximum_is_refused),
		T(ring_size_zero_is_refused),
		T(split_base_over_16_bits_is_refused),
		T(kick_without_fd_is_refused),
		T(invalid_fd_flag_with_an_fd_is_refused),
		T(missing_fd_without_flag_is_refused),
		T(vring_file_reserved_bits_are_refused),
		T(vring_enable_other_than_0_or_1_is_refused),
		T(ring_outside_memory_is_refused),
		T(ring_crossing_the_region_end_is_refused),
		T(misaligned_ring_is_refused),
		T(unknown_ring_flags_are_refused),
		T(ring_size_change_while_running_is_refused),
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

	return cmocka_run_group_tests_name("vhost-user validation", tests,
					   group_setup, group_teardown);
}
