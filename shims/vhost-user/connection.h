/* The socket and the fds a frontend shares (connection.c). */
#ifndef VIRTIOD_SHIM_VU_CONNECTION_H
#define VIRTIOD_SHIM_VU_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "vu_state.h"

/* What a frontend's fd must be where the protocol implies a kind. */
enum vu_fd_kind {
	VU_FD_ANY = 0,
	VU_FD_EVENTFD,	/* call, err and kick fds */
	VU_FD_SOCKET,	/* the backend request channel */
	VU_FD_MAPPABLE, /* memory regions, the dirty log, the inflight area */
};

bool vu_fd_is_kind(int fd, enum vu_fd_kind kind);
const char *vu_fd_kind_name(enum vu_fd_kind kind);
/* What fd is, for an error message ("a pipe", "a regular file", ...). */
const char *vu_fd_describe(int fd);

/* Listen on path, created 0600 (0660 and chowned when group is not
 * (gid_t)-1). A socket something listens on is refused (-EADDRINUSE), a
 * stale one replaced; *created: the caller removes it at exit. */
int vu_listen_path(const char *path, const char *who, gid_t group, int *out_fd,
		   bool *created);
void vu_peer_describe(int fd, char *buf, size_t len);
int vu_check_listen_fd(int fd, const char *who);
/* Read one message; 0, -ECONNRESET on orderly close, other <0 logged. */
int vu_recv_msg(struct vu_backend *b, struct vu_msg *m);
int vu_send_reply(struct vu_backend *b, struct vu_reply *r);
void vu_close_fds(int *fds, unsigned n);
void vu_close_fd(int *fd);
/* fstat the fd: a regular file (memfd, tmpfs, hugetlbfs) holding
 * [offset, offset+size). Seals it against shrinking where it can, and
 * warns (once per connection, naming `what`) where it cannot. */
int vu_fd_check_range(struct vu_backend *b, const char *what, int fd,
		      uint64_t offset, uint64_t size, char *why, size_t whylen,
		      struct stat *st);
/* mmap [offset, offset+size) of fd shared read-write; *base and *len are the
 * whole mapping, the return the pointer to offset. NULL with why. */
void *vu_map_fd(int fd, uint64_t offset, uint64_t size, const struct stat *st,
		void **base, size_t *len, char *why, size_t whylen);

#endif
