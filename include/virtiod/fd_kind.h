/* What kind of file an fd is, where fstat cannot tell. */
#ifndef VIRTIOD_FD_KIND_H
#define VIRTIOD_FD_KIND_H

#include <stdbool.h>

/* An anonymous inode (eventfd, epoll, timerfd, ...) has no file type of
 * its own: only its /proc/self/fd link names it, e.g.
 * "anon_inode:[eventfd]". */
bool vd_fd_is_anon_inode(int fd, const char *name);

#endif
