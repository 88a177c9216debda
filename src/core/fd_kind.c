/* What kind of file an fd is, where fstat cannot tell. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "virtiod/fd_kind.h"

bool vd_fd_is_anon_inode(int fd, const char *name)
{
	char path[32], target[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, name) == 0;
}
