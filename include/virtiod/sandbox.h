/* The sandbox relay: each thread says which role it plays once it has
 * opened what it needs; the composition root decides what that role may
 * call (src/main/sandbox*). The core, the devices and the shims only name
 * roles and profiles; they never build a filter. */
#ifndef VIRTIOD_SANDBOX_H
#define VIRTIOD_SANDBOX_H

enum vd_sandbox_role {
	VD_SANDBOX_CONTROL,  /* src/main/control.c: statistics, resize */
	VD_SANDBOX_QUEUE,    /* src/core/queue.c: one per started queue */
	VD_SANDBOX_ENGINE,   /* an I/O engine's worker (blk_threads.c) */
	VD_SANDBOX_VU_LOOP,  /* the vhost-user serving loop */
	VD_SANDBOX_XEN_LOOP, /* the Xen IOREQ loop */
	VD_SANDBOX_ROLES,
};

/* Called by a thread of role once start-up is over; a serving loop (the
 * first to call) seals the whole process. 0, or a negative errno when the
 * filter could not be installed (the caller stops). Does nothing without
 * a hook (tests, --sandbox=none). */
int vd_sandbox_enter(enum vd_sandbox_role role, const char *who);
/* A profile (a row of the root's table: "nbd", "rbd") that this process
 * needs besides its shim's and its device type's; called during start-up,
 * before the serving loop seals the process. */
void vd_sandbox_need(const char *profile);

struct vd_sandbox_hooks {
	int (*enter)(enum vd_sandbox_role role, const char *who);
	void (*need)(const char *profile);
};
/* Set by the composition root before any thread starts; NULL: no sandbox. */
void vd_sandbox_set_hooks(const struct vd_sandbox_hooks *hooks);

#endif
