/* An I/O engine that cannot go on (io_uring_enter failing for the ring
 * itself, injected with a seccomp filter in a child process) ends the
 * process with a message naming the engine and the error, instead of
 * abandoning requests the kernel could still complete into guest memory
 * that is then unmapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "blk_env.h"
#include "syscall_fault.h"
#include "virtiod/log.h"

#define IMG_SIZE (4u << 20)

static struct blk_env env;
static char logpath[128];

static int teardown(void **state)
{
	(void)state;
	env_close(&env);
	unlink(logpath);
	return 0;
}

/* The child: a uring queue serving, then the ring fails under requests.
 * Returns (exit status) 10 if seccomp is unavailable, 0 if it got through
 * stopping the queue (the requests abandoned), or is ended by the engine
 * failure first. Plain checks: cmocka's asserts must not run here. */
static int child(void)
{
	const char *uring[] = {"io-engine", "uring", NULL};
	struct env_req r[8];
	uint64_t one = 1;

	/* Threads do not survive fork: the queue starts here. uring
	 * explicitly; on a tmpfs the default would be the sync engine. */
	if (env_create(&env, uring) != 0)
		return 14;
	env_start(&env, VD_VQ_SPLIT, 128, 0);
	/* The queue works before the fault. */
	if (env_do(&env, 0, VIRTIO_BLK_T_IN, 8, td_mem_alloc(env.m, 4096, 4096),
		   4096, NULL) != VIRTIO_BLK_S_OK)
		return 11;
	/* Every thread: the queue thread exists already. */
	if (sf_fail_syscall(__NR_io_uring_enter, EIO, true) != 0)
		return 10;
	for (unsigned i = 0; i < 8; i++) {
		env_req_alloc(&env, &r[i], 65536);
		env_req_add(&env, 0, &r[i], VIRTIO_BLK_T_IN, i * 128, true,
			    false);
	}
	if (write(env.kick[0], &one, sizeof(one)) != sizeof(one))
		return 12;
	poll(NULL, 0, 300);
	/* Stopping the queue: the engine cannot drain what it holds. */
	vd_dev_free(env.dev);
	env.dev = NULL;
	return 0;
}

static void failed_engine_ends_the_process_instead_of_abandoning(void **state)
{
	char log[4096] = {0};
	int status, fd;
	pid_t pid;

	(void)state;
	memset(&env, 0, sizeof(env));
	env_image(&env, "/tmp", IMG_SIZE, false);
	snprintf(logpath, sizeof(logpath), "/tmp/vd-engine-fail-%d.log",
		 (int)getpid());
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (lfd < 0 || dup2(lfd, 2) < 0)
			_exit(13);
		_exit(child());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 10) {
		printf("SKIP: seccomp unavailable; engine failure not "
		       "injected\n");
		skip();
	}
	fd = open(logpath, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, log, sizeof(log) - 1) >= 0);
	close(fd);
	if (!strstr(log, "uring engine: submit failed (Input/output error)") ||
	    !strstr(log, "virtiod exits rather than let that memory go"))
		fail_msg("child exited %d, log: %s", WEXITSTATUS(status), log);
	assert_int_equal(WEXITSTATUS(status), EXIT_FAILURE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
			failed_engine_ends_the_process_instead_of_abandoning,
			teardown),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
