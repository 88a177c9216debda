/* The sandbox (docs/security.md): a call outside a thread role's list
 * kills the daemon with SIGSYS, the same run lives with --sandbox=none;
 * after start-up the daemon has a filter on every thread, no capabilities
 * and no new privileges; --user/--group make it another user. The
 * forbidden call comes from a test-only LD_PRELOAD library
 * ($VD_FORBIDDEN_PRELOAD): nothing in the daemon knows about the test. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/virtio_blk.h>

#include "vu_test.h"

static char out[4096], err[4096];

static const char *preload(void)
{
	const char *p = getenv("VD_FORBIDDEN_PRELOAD");

	if (!p || access(p, R_OK) != 0)
		fail_msg("VD_FORBIDDEN_PRELOAD=%s: not a readable library "
			 "(make check-vhost-user sets it)",
			 p ? p : "");
	return p;
}

/* The daemon's exit status once it ended by itself (within 5 s). */
static int wait_end(struct daemon *d)
{
	int st = 0;

	for (int i = 0; i < 500; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			return st;
		}
		nap_ms(10);
	}
	fail_msg("the daemon did not end within 5 s of the forbidden call");
	return -1;
}

/* A flush through a queue of the engine: the preloaded fdatasync makes the
 * forbidden call first. */
static void flush_with_forbidden_call(struct daemon *d, const char *engine,
				      const char *sandbox)
{
	struct blk_req q;
	struct env e;

	daemon_prepare(d, 4);
	setenv("LD_PRELOAD", preload(), 1);
	daemon_start(d, "--io-engine", engine, "--sandbox", sandbox, NULL);
	unsetenv("LD_PRELOAD");
	memset(&e, 0, sizeof(e));
	e.d = *d;
	env_open(&e, 1, false, 64);
	blk_submit(&e.r[0], &q, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_kick(&e.r[0]);
	if (!strcmp(sandbox, "none")) {
		uint16_t tok;
		uint32_t len;

		assert_true(ring_get_used(&e.r[0], &tok, &len, 5000));
		env_close(&e);
		return;
	}
	{
		int st = wait_end(d);

		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS) {
			daemon_dump_log(d);
			fail_msg("status 0x%x: expected death by SIGSYS", st);
		}
	}
	env_close(&e);
}

static void forbidden_call_on_a_queue_thread_kills_with_sigsys(void **state)
{
	struct daemon d;

	(void)state;
	flush_with_forbidden_call(&d, "sync", "seccomp");
	daemon_cleanup(&d);
}

static void forbidden_call_on_an_engine_worker_kills_with_sigsys(void **s)
{
	struct daemon d;

	(void)s;
	flush_with_forbidden_call(&d, "threads", "seccomp");
	daemon_cleanup(&d);
}

static void forbidden_call_is_survived_with_sandbox_none(void **state)
{
	struct daemon d;

	(void)state;
	flush_with_forbidden_call(&d, "sync", "none");
	daemon_serves_io(&d);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* "Key:\tvalue" of /proc/PID/status, or of a task of it. */
static bool status_has(const char *path, const char *key, const char *want)
{
	char line[256];
	size_t n = strlen(key);
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			char *v = line + n + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			found = !strcmp(v, want);
			if (!found)
				fprintf(stderr, "  %s: %s is \"%s\", not %s\n",
					path, key, v, want);
		}
	fclose(f);
	return found;
}

/* This process's seccomp mode: what a daemon without a filter shows. */
static const char *own_seccomp_mode(void)
{
	static char mode[8];
	char line[128];
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp:", 8))
			snprintf(mode, sizeof(mode), "%c",
				 line[8 + strspn(line + 8, " \t")]);
	fclose(f);
	return mode;
}

/* Every thread of d (the loop, the control thread, the queues): a filter
 * (mode 2) or none, no capabilities, no new privileges, the ids. */
static void every_thread_is_sealed(const struct daemon *d, const char *uid,
				   const char *gid, bool filtered)
{
	char dir[64], path[384];
	unsigned seen = 0;
	struct dirent *de;
	DIR *t;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)d->pid);
	t = opendir(dir);
	assert_non_null(t);
	while ((de = readdir(t))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
		seen++;
		assert_true(status_has(path, "CapEff", "0000000000000000"));
		assert_true(status_has(path, "CapPrm", "0000000000000000"));
		assert_true(status_has(path, "NoNewPrivs", "1"));
		assert_true(status_has(path, "Seccomp",
				       filtered ? "2" : own_seccomp_mode()));
		if (uid) {
			char ids[64];

			snprintf(ids, sizeof(ids), "%s\t%s\t%s\t%s", uid, uid,
				 uid, uid);
			assert_true(status_has(path, "Uid", ids));
			snprintf(ids, sizeof(ids), "%s\t%s\t%s\t%s", gid, gid,
				 gid, gid);
			assert_true(status_has(path, "Gid", ids));
			assert_true(status_has(path, "Groups", ""));
		}
	}
	closedir(t);
	/* the loop, the control thread (if any) and the queues */
	assert_true(seen >= 3);
}

static void with_a_frontend(struct daemon *d, const char *uid, const char *gid,
			    bool filtered)
{
	struct env e;

	memset(&e, 0, sizeof(e));
	e.d = *d;
	env_open(&e, 2, false, 64);
	io_roundtrip(&e, &e.r[0], 64, 5);
	/* The control thread takes its role within its 1 s rescan. */
	nap_ms(1200);
	every_thread_is_sealed(d, uid, gid, filtered);
	io_roundtrip(&e, &e.r[1], 128, 6);
	env_close(&e);
}

static void after_start_up_no_capabilities_and_a_filter_per_thread(void **s)
{
	struct daemon d;
	char ctl[160];

	(void)s;
	daemon_prepare(&d, 4);
	snprintf(ctl, sizeof(ctl), "%s/ctl", d.dir);
	daemon_start(&d, "--control", ctl, "--num-queues", "2", NULL);
	with_a_frontend(&d, NULL, NULL, true);
	assert_true(daemon_log_has(&d, "sandbox: queue role", NULL));
	assert_true(daemon_log_has(&d, "sandbox: vhost-user loop role", NULL));
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

static void sandbox_none_still_drops_capabilities(void **s)
{
	struct daemon d;

	(void)s;
	daemon_prepare(&d, 4);
	daemon_start(&d, "--sandbox", "none", "--num-queues", "2", NULL);
	with_a_frontend(&d, NULL, NULL, false);
	assert_true(daemon_log_has(&d, "no system call filter", NULL));
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

static void user_and_group_run_the_daemon_as_nobody(void **s)
{
	struct daemon d;

	(void)s;
	if (geteuid() != 0)
		fail_msg("this test drops root: run it as root (CI does)");
	daemon_prepare(&d, 4);
	daemon_start(&d, "--user", "nobody", "--group", "nogroup",
		     "--num-queues", "2", NULL);
	with_a_frontend(&d, "65534", "65534", true);
	/* A second frontend after the first left: accept still works. */
	daemon_serves_io(&d);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

static void bad_sandbox_options_are_refused_by_name(void **s)
{
	const char *const bad_mode[] = {virtiod_path(),
					"blk",
					"--disk",
					"x",
					"--sandbox",
					"strict",
					"--socket-path",
					"/nonexistent/s",
					NULL};
	const char *const bad_user[] = {virtiod_path(),
					"blk",
					"--disk",
					"x",
					"--user",
					"no-such-user-here",
					"--socket-path",
					"/nonexistent/s",
					NULL};
	const char *const xen_user[] = {
		virtiod_path(), "blk",	  "--disk", "x", "--xen-domid", "1",
		"--user",	"nobody", NULL};

	(void)s;
	assert_int_equal(run_cmd(bad_mode, out, sizeof(out), err, sizeof(err)),
			 2);
	assert_non_null(strstr(err, "--sandbox strict"));
	assert_int_equal(run_cmd(bad_user, out, sizeof(out), err, sizeof(err)),
			 2);
	assert_non_null(strstr(err, "--user no-such-user-here"));
	assert_int_equal(run_cmd(xen_user, out, sizeof(out), err, sizeof(err)),
			 2);
	assert_non_null(strstr(err, "--user/--group"));
}

int run_sandbox_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			forbidden_call_on_a_queue_thread_kills_with_sigsys),
		cmocka_unit_test(
			forbidden_call_on_an_engine_worker_kills_with_sigsys),
		cmocka_unit_test(forbidden_call_is_survived_with_sandbox_none),
		cmocka_unit_test(
			after_start_up_no_capabilities_and_a_filter_per_thread),
		cmocka_unit_test(sandbox_none_still_drops_capabilities),
		cmocka_unit_test(user_and_group_run_the_daemon_as_nobody),
		cmocka_unit_test(bad_sandbox_options_are_refused_by_name),
	};

	return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
