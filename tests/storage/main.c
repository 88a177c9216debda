/* storage-test: virtiod against NBD and RBD stores (tests/storage/run.sh
 * starts the Ceph cluster and runs this; nbdkit is started per test). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st.h"

/* Options that do not fit a store are refused with what to do. */
static void io_timeout_on_a_file_is_refused(void **state)
{
	struct env *e = *state;
	char err[4096];

	assert_int_not_equal(serve_fails(e->d.img, err, sizeof(err),
					 "--io-timeout", "5", NULL),
			     0);
	assert_non_null(strstr(err, "--io-timeout is for nbd:// and rbd:"));
	assert_int_not_equal(serve_fails("nbd+unix:///?socket=/nonexistent",
					 err, sizeof(err), "--io-engine",
					 "uring", NULL),
			     0);
	assert_non_null(strstr(err, "drop --io-engine"));
	assert_int_not_equal(serve_fails("nbd+unix:///?socket=/nonexistent",
					 err, sizeof(err), "--io-timeout", "-1",
					 NULL),
			     0);
	assert_non_null(strstr(err, "--io-timeout -1: expected seconds"));
}

/* No server at the URI: the daemon does not start, and says why. */
static void nbd_without_server_fails_to_start(void **state)
{
	struct env *e = *state;
	char err[4096], uri[200];

	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/none.sock",
		 e->d.dir);
	assert_int_not_equal(serve_fails(uri, err, sizeof(err), NULL), 0);
	assert_non_null(strstr(err, "cannot connect"));
}

int run_cli_storage_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, st_teardown)
		T(io_timeout_on_a_file_is_refused),
		T(nbd_without_server_fails_to_start),
#undef T
	};

	return cmocka_run_group_tests_name("storage: options", tests, NULL,
					   NULL);
}

int main(void)
{
	int failed = 0;

	if (access(virtiod_path(), X_OK) != 0) {
		fprintf(stderr,
			"storage-test: %s is not executable (set "
			"VIRTIOD)\n",
			virtiod_path());
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* ST_FILTER=nbd_*: only the tests whose names match. */
	if (getenv("ST_FILTER"))
		cmocka_set_test_filter(getenv("ST_FILTER"));
	failed += run_cli_storage_tests();
	failed += run_nbd_tests();
	failed += run_rbd_tests();
	return failed ? 1 : 0;
}
