/* CPU time of another process (the backend under test) from /proc. */
#ifndef LOADGEN_PROCSTAT_H
#define LOADGEN_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* utime + stime of every thread of pid, live or exited, in ns
 * (/proc/PID/stat, clock-tick resolution). Returns 0 or -errno. */
int lg_proc_cpu_ns(pid_t pid, uint64_t *ns);

#endif
