/* Unix socket paths that a daemon listens on. */
#ifndef VIRTIOD_UNIX_SOCKET_H
#define VIRTIOD_UNIX_SOCKET_H

#include <sys/un.h>

/* Whether something listens on the socket at sa: a connect that is refused
 * means a stale socket (its process is gone); one accepted, or waiting for
 * a full backlog, a live one. 1 live, 0 stale, <0 unknown (-errno). */
int vd_unix_socket_is_live(const struct sockaddr_un *sa);

#endif
