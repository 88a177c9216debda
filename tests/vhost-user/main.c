/* vu-test: the vhost-user protocol, memory, ring, inflight, validation and
 * command-line suites against the daemon named by $VIRTIOD (default
 * build/virtiod). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "vu_test.h"

int main(void)
{
	int failed = 0;

	if (access(virtiod_path(), X_OK) != 0) {
		fprintf(stderr,
			"vu-test: %s is not an executable daemon "
			"(set VIRTIOD)\n",
			virtiod_path());
		return 1;
	}
	/* A daemon that dies mid-test must fail the test, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	failed += run_cli_tests();
	failed += run_protocol_tests();
	failed += run_memory_tests();
	failed += run_ring_tests();
	failed += run_inflight_tests();
	failed += run_validation_tests();
	failed += run_validation_mem_tests();
	failed += run_fd_tests();
	failed += run_socket_tests();
	failed += run_image_tests();
	failed += run_hugetlb_tests();
	failed += run_sandbox_tests();
	return failed ? 1 : 0;
}
