/* An epoll event loop for fds. One thread runs a loop and alone adds,
 * changes and deletes its fds; other threads reach it only through
 * vd_loop_call/vd_loop_stop (an eventfd). */
#ifndef VIRTIOD_EVENT_LOOP_H
#define VIRTIOD_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct vd_loop;

/* events: EPOLLIN/EPOLLOUT/... as returned by epoll. */
typedef void (*vd_loop_fn)(void *opaque, int fd, uint32_t events);

struct vd_loop *vd_loop_new(void);
void vd_loop_free(struct vd_loop *loop);

/* Watch fd for `events` (EPOLLIN...). One callback per fd; -EEXIST if the
 * fd is already watched. */
int vd_loop_add(struct vd_loop *loop, int fd, uint32_t events, vd_loop_fn fn,
		void *opaque);
int vd_loop_mod(struct vd_loop *loop, int fd, uint32_t events);
/* Safe to call from inside a callback, also for another fd that is about
 * to be dispatched in the same round. Call it before closing fd: epoll
 * tracks the open file, not the number. -ENOENT if fd is not watched. */
int vd_loop_del(struct vd_loop *loop, int fd);

/* Run one round: wait up to timeout_ms (-1 forever) and dispatch. Returns
 * the number of callbacks run, or -errno. EINTR counts as 0. */
int vd_loop_run_once(struct vd_loop *loop, int timeout_ms);
/* Run until vd_loop_stop. Returns 0 or -errno. */
int vd_loop_run(struct vd_loop *loop);
/* From any thread (async-signal-safe): make vd_loop_run return. The stop is
 * sticky: a later vd_loop_run returns at once. */
void vd_loop_stop(struct vd_loop *loop);
bool vd_loop_stopping(const struct vd_loop *loop);
/* From any thread: run `fn(opaque)` on the loop's thread at the next
 * round. Calls are queued in order; -ENOMEM if the queue is full. Calls
 * still queued when the loop is freed are dropped. */
int vd_loop_call(struct vd_loop *loop, void (*fn)(void *), void *opaque);

#endif
