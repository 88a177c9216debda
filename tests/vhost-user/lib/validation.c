/* The validation suites' fixture: a daemon per group, its idle fd count,
 * and the checks after each refusal (logged, closed or answered, alive,
 * no leaked fd, serving the next frontend). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "validation.h"

struct vstate *vs;

/* One full cycle first (handshake, memory, rings, I/O, disconnect), so the
 * baseline is the daemon's steady state, not its first moments. */
int validation_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	vs = calloc(1, sizeof(*vs));
	if (!vs || !e)
		return -1;
	daemon_prepare(&vs->d, 16);
	daemon_start(&vs->d, "--num-queues", "2", "--queue-size", "256", NULL);
	e->d = vs->d;
	env_open(e, 2, false, 64);
	assert_int_equal(blk_do(&e->r[1], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	env_close(e);
	free(e);
	vs->idle_fds = daemon_idle_fd_count(&vs->d);
	*state = vs;
	return vs->idle_fds > 0 ? 0 : -1;
}

int validation_teardown(void **state)
{
	(void)state;
	if (!daemon_alive(&vs->d))
		daemon_dump_log(&vs->d);
	daemon_cleanup(&vs->d);
	free(vs);
	return 0;
}

int validation_test_teardown(void **state)
{
	(void)state;
	vuf_close(&vs->f);
	if (vs->m.hva)
		gmem_free(&vs->m);
	return 0;
}

void prepare(enum prep p)
{
	fe_connect(&vs->f, vs->d.sock);
	if (p >= HANDSHAKE)
		fe_handshake(&vs->f);
	if (p >= MEMORY) {
		struct vuf_mem *mems[1] = {&vs->m};

		fe_set_features(&vs->f, blk_features(false));
		gmem_new(&vs->m, 4u << 20, 0x100000000ull);
		fe_set_mem_table(&vs->f, mems, 1);
	}
}

/* After any refusal: alive, no leaked fd, a new frontend is served. */
void daemon_still_serves(void)
{
	struct vuf_conn f;

	vuf_close(&vs->f);
	assert_true(daemon_alive(&vs->d));
	assert_int_equal(daemon_wait_fd_count(&vs->d, vs->idle_fds),
			 vs->idle_fds);
	fe_connect(&f, vs->d.sock);
	fe_handshake(&f);
	assert_int_equal(fe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 2);
	vuf_close(&f);
	assert_int_equal(daemon_wait_fd_count(&vs->d, vs->idle_fds),
			 vs->idle_fds);
}

/* Send, expect the connection closed and the rule in the log. */
void refused(uint32_t req, uint32_t flags, const void *p, uint32_t size,
	     const int *fds, unsigned n_fds, const char *name, const char *rule)
{
	assert_int_equal(vuf_send(&vs->f, req, flags, p, size, fds, n_fds), 0);
	assert_true(fe_closed_by_peer(&vs->f, 3000));
	if (!daemon_log_has(&vs->d, name, rule, "closing the connection",
			    NULL)) {
		daemon_dump_log(&vs->d);
		fail_msg("no log line with \"%s\" and \"%s\"", name, rule);
	}
	daemon_still_serves();
}

/* With NEED_REPLY: an error reply, and the connection stays usable. */
void refused_with_reply(uint32_t req, const void *p, uint32_t size,
			const int *fds, unsigned n_fds, const char *name,
			const char *rule)
{
	assert_int_not_equal(fe_acked(&vs->f, req, p, size, fds, n_fds), 0);
	if (!daemon_log_has(&vs->d, name, rule, NULL)) {
		daemon_dump_log(&vs->d);
		fail_msg("no log line with \"%s\" and \"%s\"", name, rule);
	}
	assert_int_equal(fe_get_u64(&vs->f, VHOST_USER_GET_QUEUE_NUM), 2);
	daemon_still_serves();
}

int memfd_of(size_t size)
{
	int fd = memfd_create("vu-test-bad", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}
