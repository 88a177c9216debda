/* The contract between the composition root (src/main) and a hypervisor
 * shim, shaped like a device type: a name, options with help, parse/free,
 * serve(options, model, stop). A shim defines one `const struct vd_shim`
 * and knows no device; the composition root lists the shims
 * (src/main/registry.c) and is the only code that names one. */
#ifndef VIRTIOD_SHIM_H
#define VIRTIOD_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "virtiod/device.h"

/* Values of the stop flag a shim's serve polls (0: keep serving). The
 * composition root's signal handlers set them: SIGTERM/SIGINT VD_STOP,
 * SIGUSR1 VD_HANDOVER for a shim with .handover. */
#define VD_STOP 1 /* finish requests in flight, remove the device */
/* Finish requests in flight, record the device state and leave the device
 * to the next daemon (Xen: the IOREQ server stays registered). */
#define VD_HANDOVER 2

/* ---------------------------------------------------------------- records */

#define VD_DEVICE_SPEC_MAX_OPTS 16

/* A device as a discovery source describes it (a line of a configuration
 * file, a toolstack's backend node): the device type and its options in
 * command-line spelling, from which the composition root builds the model.
 * Plain data: copied into the launcher and into the serving process. */
struct vd_device_spec {
	char type[32]; /* registry name, "blk" */
	char who[64];  /* log subject, "blk dom7 dev0"; "" for the type */
	/* VIRTIO_ID_* the placement requires (a toolstack's node names it),
	 * or 0: a model of another id is refused. */
	uint32_t expect_device_id;
	unsigned nopt; /* device options, in order */
	char opt_name[VD_DEVICE_SPEC_MAX_OPTS][32];
	char opt_val[VD_DEVICE_SPEC_MAX_OPTS][512];
	bool opt_has_val[VD_DEVICE_SPEC_MAX_OPTS];
};

/* ---------------------------------------------------------------- launcher */

/* The composition root's process launcher (src/main/launch.c), lent to a
 * shim's multi-device modes: each device runs in a process of its own, so
 * one guest's failure never touches another's. In that process the root
 * builds the model from the record and calls the shim's serve with a copy
 * of the shim options given to start. */

#define VD_LAUNCH_MAX 64

struct vd_launch_slot {
	bool used;    /* a device is known here: running, ended or refused */
	bool running; /* its process has not been reaped */
	pid_t pid;
	unsigned restarts;
	int status;    /* wait status of the last exit */
	char key[256]; /* the source's name for it (a xenstore path), or "" */
	struct vd_device_spec dev;
	void *opts; /* copy of the shim options (opts_size bytes) */
};

struct vd_launcher;

struct vd_launcher_ops {
	/* Serve dev in a new process with a copy of opts (the shim's options
	 * for this one device; plain data of the shim's opts_size). key may
	 * be NULL. Returns the slot, or -errno (logged). */
	int (*start)(struct vd_launcher *l, const char *key,
		     const struct vd_device_spec *dev, const void *opts);
	/* The slot holding key (a device, or one held after a refusal), or
	 * -1. */
	int (*find)(const struct vd_launcher *l, const char *key);
	/* Remember key without a process (a device that was refused), so
	 * that find sees it until it is forgotten. */
	void (*hold)(struct vd_launcher *l, const char *key);
	/* Free a slot whose process is not running. */
	void (*forget)(struct vd_launcher *l, unsigned slot);
	/* VD_STOP: SIGTERM; VD_HANDOVER: SIGUSR1 (if running). */
	void (*signal)(struct vd_launcher *l, unsigned slot, int how);
	/* Collect the processes that ended (each logged); how many. */
	unsigned (*reap)(struct vd_launcher *l);
	/* Start again each process that a signal killed (a crash: it takes
	 * its device over), up to VD_LAUNCH_RESTART_MAX times a slot; one
	 * that exited stays ended (its guest went away, it was stopped, or
	 * it could not start). Returns how many were started. */
	unsigned (*restart_crashed)(struct vd_launcher *l);
	/* Until *stop, or until no process is left, restarting crashed
	 * processes (restart_crashed). */
	void (*supervise)(struct vd_launcher *l, volatile int *stop);
	/* Signal every process (VD_STOP or VD_HANDOVER), wait up to
	 * timeout_ms, then kill what is left. */
	void (*stop_all)(struct vd_launcher *l, int how, int timeout_ms);
};

#define VD_LAUNCH_RESTART_MAX 5

struct vd_launcher {
	const struct vd_launcher_ops *ops;
	const struct vd_shim *shim; /* whose serve runs each device */
	/* Every device type (NULL-terminated): a discovery source reads their
	 * data (device_id, backend_keys) to describe a toolstack's node; the
	 * root builds the models. */
	const struct vd_device_type *const *types;
	const char *who; /* log subject of the mode ("xen-watch"); set it */
	struct vd_launch_slot slot[VD_LAUNCH_MAX];
};

/* ---------------------------------------------------------------- shims */

/* `virtiod NAME [ARGS]`: a mode of a shim that parses its own ARGS (Xen's
 * xen-watch). */
struct vd_shim_command {
	const char *name;
	const char *usage; /* after "virtiod NAME" in --help */
	/* argv[0] is NAME. Returns the exit status. */
	int (*main)(int argc, char **argv, struct vd_launcher *l,
		    volatile int *stop);
};

struct vd_shim {
	const char *name;  /* "vhost-user", "xen" */
	const char *title; /* --help section and messages: "Xen" */
	/* --help: what follows "virtiod TYPE" to serve a device this way
	 * ("--socket-path PATH | --fd N"); and the options that choose this
	 * shim, for the message when none is given ("--socket-path PATH or
	 * --fd N"). */
	const char *usage;
	const char *needs;
	/* Terminated by {NULL}. No name may be another shim's, a device
	 * type's or a common option's. */
	const struct vd_device_option *options;

	/* Options, as a device type's: parsed into an opaque struct of
	 * opts_size bytes, plain data (the launcher copies it). opts_new may
	 * be NULL when there is nothing to keep (opts is then NULL). */
	size_t opts_size;
	void *(*opts_new)(void);
	/* 0, or -EINVAL with a message naming the option in err. */
	int (*opts_set)(void *opts, const char *name, const char *value,
			char *err, size_t errlen);
	/* After the last option; type is the device type named, or NULL.
	 * Returns 1 when the options describe the devices themselves
	 * (serve_many); 0 when they place one device of type (with type
	 * NULL: nothing to check, the composition root asks for a type);
	 * -EINVAL with the reason in err (a usage error). */
	int (*opts_check)(void *opts, const struct vd_device_type *type,
			  char *err, size_t errlen);
	void (*opts_free)(void *opts);

	/* Serve one device until *stop or until its guest or frontend goes.
	 * Takes the model over (destroyed before it returns, also on
	 * failure). who: the log subject. Returns 0 after a requested stop
	 * or a guest that went away, -errno on failure (logged). */
	int (*serve)(void *opts, struct vd_model *model, const char *who,
		     volatile int *stop);

	/* Optional. Serve the devices the options describe (opts_check
	 * returned 1), each through l. Returns the exit status. */
	int (*serve_many)(void *opts, struct vd_launcher *l,
			  volatile int *stop);
	const char *many_usage; /* --help: "--config FILE" */
	/* Optional, terminated by {NULL}. */
	const struct vd_shim_command *commands;
	/* SIGUSR1 hands the device over (VD_HANDOVER). */
	bool handover;

	/* Optional: `virtiod [TYPE] --<info_option>` prints something about
	 * the device type and exits, every other option ignored (vhost-user's
	 * --print-capabilities), on stdout. type may be NULL: the shim picks
	 * one of types or refuses. 0, or -EINVAL with the reason in err. */
	const char *info_option;
	const char *info_help;
	int (*print_info)(const struct vd_device_type *type,
			  const struct vd_device_type *const *types, char *err,
			  size_t errlen);
};

#endif
