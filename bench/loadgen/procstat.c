/* Reads utime and stime (fields 14 and 15 of proc(5)'s stat). The command
 * name may hold spaces or ')', so parsing starts after the last ')'. */
#include "procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int lg_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int err = errno;
	close(fd);
	if (n <= 0)
		return n < 0 ? -err : -EIO;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	/* After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime(15). */
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu",
			 &ut, &st) != 2)
		return -EIO;
	long hz = sysconf(_SC_CLK_TCK);
	*ns = (uint64_t)(ut + st) *
	      (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
	return 0;
}
