/* The stand-in hypervisor's shared state, for the stand-in's own files. */
#ifndef VIRTIOD_TESTS_XEN_STANDIN_HV_H
#define VIRTIOD_TESTS_XEN_STANDIN_HV_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <xen/hvm/ioreq.h>

#include "standin.h"

#define SX_PAGE	      4096u
#define SX_RANGES     4
#define SX_XS_NODES   512
#define SX_XS_WATCHES 64
#define SX_XS_CONNS   32
#define SX_XS_QUEUE   64
#define SX_PATH	      192
#define SX_VAL	      192

struct sx_server {
	int used, enabled;
	uint64_t start[SX_RANGES], end[SX_RANGES];
	int nranges;
	pid_t bound_pid[SX_MAX_VCPUS];
	uint64_t bound_handle[SX_MAX_VCPUS];
};

struct sx_grant {
	uint64_t gfn;
	int in_use, ro;
	int map_count;
};

struct sx_dom {
	int used, dying, gone;
	uint32_t domid;
	enum sx_domtype type;
	unsigned nr_vcpus;
	uint64_t ram_size, hole_start, hole_end;
	uint8_t handle[16];
	struct sx_server srv[SX_MAX_SERVERS];
	uint8_t isa_level[16];
	_Atomic uint64_t edges;
	struct sx_grant grants[SX_MAX_GRANTS];
};

struct sx_xs_node {
	int used;
	char path[SX_PATH];
	char val[SX_VAL];
};

struct sx_xs_watch {
	int used, conn;
	char path[SX_PATH];
	char token[64];
};

struct sx_xs_event {
	char path[SX_PATH];
	char token[64];
};

struct sx_xs_conn {
	int used;
	pid_t pid;
	unsigned head, tail;
	struct sx_xs_event q[SX_XS_QUEUE];
};

/* Lives in a shared memfd; fds are made before any fork, so their numbers
 * are valid in every process of the test. */
struct sx_hv {
	pthread_mutex_t lock; /* robust, process-shared: everything below */
	enum sx_arch arch;
	int xc_privileged;
	uint32_t self_domid;
	uint64_t next_handle;
	struct sx_dom doms[SX_MAX_DOMS];
	struct sx_counters c;
	struct sx_xs_node xs[SX_XS_NODES];
	struct sx_xs_watch watches[SX_XS_WATCHES];
	struct sx_xs_conn conns[SX_XS_CONNS];
	/* fds */
	int shm_fd;
	int ram_fd[SX_MAX_DOMS];
	int irq_fd[SX_MAX_DOMS];
	int to_server[SX_MAX_DOMS][SX_MAX_SERVERS][SX_MAX_VCPUS];
	int to_guest[SX_MAX_DOMS][SX_MAX_SERVERS][SX_MAX_VCPUS];
	int xs_fd[SX_XS_CONNS];
	/* page-aligned: one ioreq page per server slot */
	uint8_t pages[SX_MAX_DOMS][SX_MAX_SERVERS][SX_PAGE]
		__attribute__((aligned(4096)));
};

extern struct sx_hv *sx;

void sx_lock(void);
void sx_unlock(void);
/* Under the lock: the live domain with this id, or NULL (errno ESRCH). */
struct sx_dom *sx_dom_find(uint32_t domid);
int sx_dom_index(const struct sx_dom *d);
struct ioreq *sx_slot(int di, int s, unsigned v);
size_t sx_page_offset(int di, int s);
/* Counter bump, any thread. */
#define SX_COUNT(field, n)                                                     \
	atomic_fetch_add_explicit((_Atomic uint64_t *)&sx->c.field, (n),       \
				  memory_order_relaxed)
void sx_irq_edge(struct sx_dom *d);
/* A watch event for every watch on or above `path` (and, on removal, on
 * anything below it). Under the lock. */
void sx_xs_fire(const char *path, int removed);
void sx_xs_fire_special(const char *name);
/* Maps guest frames into a fresh area; err[i] per frame. NULL only if the
 * area cannot be reserved. */
void *sx_map_frames(int di, const uint64_t *gfns, unsigned n, int prot,
		    int *err);

#endif
