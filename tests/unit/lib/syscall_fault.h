/* Fault injection through seccomp (test-only): one system call fails with
 * an errno from now on, in this thread or in every thread of the process,
 * so production code meets the failure through its real call. */
#ifndef VIRTIOD_TEST_SYSCALL_FAULT_H
#define VIRTIOD_TEST_SYSCALL_FAULT_H

#include <stdbool.h>

/* 0, or -1 where seccomp is unavailable (or the architecture unknown). */
int sf_fail_syscall(long nr, int err, bool all_threads);

#endif
