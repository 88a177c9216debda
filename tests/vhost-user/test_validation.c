/* The frontend is not trusted: one case per rule of the message framing,
 * negotiation and rings. The fixture then checks the log line, the close or
 * error reply, no leaked fd, and that a new frontend is served. */
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

#include "validation.h"

/* ------------------------------------------------------------- header */

static void header_version_other_than_1_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(VHOST_USER_GET_FEATURES, 2, NULL, 0, NULL, 0, "GET_FEATURES",
		"header version 2, expected 1");
}

static void header_reply_flag_on_a_request_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(VHOST_USER_GET_FEATURES,
		VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, NULL, 0, NULL, 0,
		"GET_FEATURES", "reply flag set on a request");
}

static void header_unknown_flags_are_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(VHOST_USER_GET_FEATURES, VHOST_USER_VERSION | 0x100, NULL, 0,
		NULL, 0, "GET_FEATURES", "unknown header flags 0x101");
}

static void unknown_request_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(99, VHOST_USER_VERSION, NULL, 0, NULL, 0, "unknown request",
		"request 99 is not supported");
}

static void unsupported_request_is_refused(void **state)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_LOG_FD, VHOST_USER_VERSION, NULL, 0, &fd, 1,
		"unknown request", "request 7 is not supported");
	close(fd);
}

static void payload_of_wrong_size_is_refused(void **state)
{
	uint32_t v = 1;

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, &v, 4, NULL, 0,
		"SET_FEATURES", "payload of 4 bytes, expected 8");
}

static void payload_larger_than_any_request_is_refused(void **state)
{
	static uint8_t big[4096];

	(void)state;
	prepare(RAW);
	refused(VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, big, sizeof(big),
		NULL, 0, "SET_FEATURES",
		"payload of 4096 bytes, no request has more");
}

static void variable_payload_out_of_range_is_refused(void **state)
{
	static uint8_t cfg[12 + 258];

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, cfg, sizeof(cfg),
		NULL, 0, "GET_CONFIG",
		"payload of 270 bytes, expected 12..268");
}

static void stray_fd_is_refused_and_closed(void **state)
{
	int fd = memfd_of(4096);

	(void)state;
	prepare(HANDSHAKE);
	/* daemon_still_serves counts the daemon's fds: this one is gone. */
	refused(VHOST_USER_GET_QUEUE_NUM, VHOST_USER_VERSION, NULL, 0, &fd, 1,
		"GET_QUEUE_NUM", "1 fds attached, expected 0..0");
	close(fd);
}

static void more_fds_than_any_request_takes_are_refused(void **state)
{
	int fds[12];

	(void)state;
	for (int i = 0; i < 12; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	prepare(HANDSHAKE);
	refused(VHOST_USER_GET_QUEUE_NUM, VHOST_USER_VERSION, NULL, 0, fds, 12,
		"GET_QUEUE_NUM", "more than 8 fds attached");
	for (int i = 0; i < 12; i++)
		close(fds[i]);
}

static void fds_sent_with_the_payload_are_refused(void **state)
{
	struct vhost_user_hdr h = {VHOST_USER_SET_FEATURES, VHOST_USER_VERSION,
				   8};
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
	struct vhost_user_hdr h = {VHOST_USER_SET_FEATURES, VHOST_USER_VERSION,
				   8};
	uint32_t half = 0;

	(void)state;
	prepare(HANDSHAKE);
	assert_int_equal(send(vs->f.sock, &h, sizeof(h), 0), sizeof(h));
	assert_int_equal(send(vs->f.sock, &half, sizeof(half), 0), 4);
	vuf_close(&vs->f);
	assert_true(daemon_log_has(&vs->d, "truncated message (peer closed)",
				   NULL));
	daemon_still_serves();
}

static void stalled_message_is_dropped(void **state)
{
	struct vhost_user_hdr h = {VHOST_USER_SET_FEATURES, VHOST_USER_VERSION,
				   8};

	(void)state;
	prepare(HANDSHAKE);
	/* Half a message, then silence: the daemon must not wait forever. */
	assert_int_equal(send(vs->f.sock, &h, sizeof(h), 0), sizeof(h));
	assert_true(fe_closed_by_peer(&vs->f, 5000));
	assert_true(
		daemon_log_has(&vs->d, "truncated message (timed out)", NULL));
	daemon_still_serves();
}

/* One byte every 200 ms: each read finds data well within a second, the
 * message never completes. The deadline is for the whole message. */
static void dripped_message_is_dropped_after_its_deadline(void **state)
{
	const struct timespec ts = {0, 200 * 1000 * 1000};
	struct vhost_user_hdr h = {VHOST_USER_SET_CONFIG, VHOST_USER_VERSION,
				   12 + 256};
	struct timespec t0, t1;
	bool closed = false;
	long ms;
	char c = 0;

	(void)state;
	prepare(HANDSHAKE);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(send(vs->f.sock, &h, sizeof(h), MSG_NOSIGNAL),
			 sizeof(h));
	for (int i = 0; i < 25 && !closed; i++) {
		nanosleep(&ts, NULL);
		closed = send(vs->f.sock, &c, 1, MSG_NOSIGNAL) != 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(closed);
	assert_true(ms < 2500);
	assert_true(
		daemon_log_has(&vs->d, "truncated message (timed out)", NULL));
	daemon_still_serves();
}

static void second_frontend_is_turned_away(void **state)
{
	struct vuf_conn other;

	(void)state;
	prepare(HANDSHAKE);
	fe_connect(&other, vs->d.sock);
	assert_true(fe_closed_by_peer(&other, 3000));
	vuf_close(&other);
	/* The first one is still served. */
	assert_int_equal(fe_get_u64(&vs->f, VHOST_USER_GET_QUEUE_NUM), 2);
	assert_true(
		daemon_log_has(&vs->d, "a second frontend connected", NULL));
	daemon_still_serves();
}

/* ---------------------------------------------------------- negotiation */

static void need_reply_without_reply_ack_is_refused(void **state)
{
	uint64_t pf = 1ull << VHOST_USER_PROTOCOL_F_MQ;

	(void)state;
	prepare(RAW);
	fe_get_u64(&vs->f, VHOST_USER_GET_FEATURES);
	fe_set_u64(&vs->f, VHOST_USER_SET_PROTOCOL_FEATURES, pf);
	refused(VHOST_USER_SET_OWNER,
		VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, NULL, 0, NULL,
		0, "SET_OWNER", "need_reply without REPLY_ACK");
}

static void request_needing_an_unnegotiated_feature_is_refused(void **state)
{
	(void)state;
	prepare(RAW);
	refused(VHOST_USER_GET_QUEUE_NUM, VHOST_USER_VERSION, NULL, 0, NULL, 0,
		"GET_QUEUE_NUM", "protocol feature 0 not negotiated");
}

static void unoffered_features_are_refused(void **state)
{
	uint64_t f = 1ull << 63;

	(void)state;
	prepare(HANDSHAKE);
	refused_with_reply(VHOST_USER_SET_FEATURES, &f, 8, NULL, 0,
			   "SET_FEATURES",
			   "include unoffered 0x8000000000000000");
}

static void unoffered_protocol_features_are_refused(void **state)
{
	uint64_t f = 1ull << 20;

	(void)state;
	prepare(RAW);
	refused(VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, &f, 8,
		NULL, 0, "SET_PROTOCOL_FEATURES", "include unoffered 0x100000");
}

static void status_beyond_a_byte_is_refused(void **state)
{
	uint64_t s = 0x100;

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_STATUS, VHOST_USER_VERSION, &s, 8, NULL, 0,
		"SET_STATUS", "is not a byte");
}

/* ---------------------------------------------------------------- rings */

static void queue_index_out_of_range_is_refused(void **state)
{
	uint32_t st[2] = {2, 64};

	(void)state;
	prepare(HANDSHAKE);
	refused(VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_NUM", "queue index 2, device has 2 queues");
}

static void queue_index_error_gets_an_error_reply(void **state)
{
	uint32_t st[2] = {7, 0};

	(void)state;
	prepare(HANDSHAKE);
	refused_with_reply(VHOST_USER_SET_VRING_BASE, st, 8, NULL, 0,
			   "SET_VRING_BASE",
			   "queue index 7, device has 2 queues");
}

static void ring_size_not_a_power_of_two_is_refused(void **state)
{
	uint32_t st[2] = {0, 100};

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_NUM", "ring size 100 is not a power of two");
}

static void ring_size_above_the_maximum_is_refused(void **state)
{
	uint32_t st[2] = {1, 512};

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_NUM", "ring size 512 outside 1..256");
}

static void ring_size_zero_is_refused(void **state)
{
	uint32_t st[2] = {0, 0};

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_NUM", "ring size 0 outside 1..256");
}

static void split_base_over_16_bits_is_refused(void **state)
{
	uint32_t st[2] = {0, 0x10000};

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_BASE, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_BASE", "split ring base 65536 over 16 bits");
}

static void kick_without_fd_is_refused(void **state)
{
	uint64_t v = 0 | 1u << 8;

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_KICK, VHOST_USER_VERSION, &v, 8, NULL, 0,
		"SET_VRING_KICK", "polling (no kick fd) is not supported");
}

static void invalid_fd_flag_with_an_fd_is_refused(void **state)
{
	uint64_t v = 1 | 1u << 8;
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, &v, 8, &fd, 1,
		"SET_VRING_CALL", "invalid-fd flag set but an fd sent");
	close(fd);
}

static void missing_fd_without_flag_is_refused(void **state)
{
	uint64_t v = 0;

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_ERR, VHOST_USER_VERSION, &v, 8, NULL, 0,
		"SET_VRING_ERR", "no fd and no invalid-fd flag");
}

static void vring_file_reserved_bits_are_refused(void **state)
{
	uint64_t v = 1u << 9;
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_KICK, VHOST_USER_VERSION, &v, 8, &fd, 1,
		"SET_VRING_KICK", "reserved bits set in 0x200");
	close(fd);
}

static void vring_enable_other_than_0_or_1_is_refused(void **state)
{
	uint32_t st[2] = {0, 2};

	(void)state;
	prepare(MEMORY);
	refused(VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_ENABLE", "enable value 2, expected 0 or 1");
}

static void send_ring_addr(uint64_t desc, uint64_t avail, uint64_t used,
			   uint32_t flags, const char *rule)
{
	uint32_t st[2] = {0, 64};
	struct vhost_vring_addr a = {0, flags, desc, used, avail, 0};

	assert_int_equal(
		fe_acked(&vs->f, VHOST_USER_SET_VRING_NUM, st, 8, NULL, 0), 0);
	refused(VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, &a, sizeof(a),
		NULL, 0, "SET_VRING_ADDR", rule);
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
		       (uintptr_t)vs->m.hva + 8192, 0,
		       "is not 16-byte aligned");
}

static void unknown_ring_flags_are_refused(void **state)
{
	(void)state;
	prepare(MEMORY);
	send_ring_addr((uintptr_t)vs->m.hva, (uintptr_t)vs->m.hva + 4096,
		       (uintptr_t)vs->m.hva + 8192, 2,
		       "unknown vring flags 0x2");
}

static void ring_size_change_while_running_is_refused(void **state)
{
	struct ring r;
	uint32_t st[2] = {0, 32};

	(void)state;
	prepare(MEMORY);
	ring_init(&r, &vs->m, 0, 64, false);
	fe_setup_ring(&vs->f, &r, 0, false, true);
	refused(VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, st, 8, NULL, 0,
		"SET_VRING_NUM", "ring 0 is running");
	ring_free(&r);
}

int run_validation_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_teardown(f, validation_test_teardown)
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
		T(dripped_message_is_dropped_after_its_deadline),
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
#undef T
	};

	return cmocka_run_group_tests_name(
		"vhost-user validation: messages and rings", tests,
		validation_setup, validation_teardown);
}
