/* From a device record to a served device: one process per device, so that
 * one guest's failure never touches another's; the model is built here from
 * the registry, the shim only serves it. Children end with _exit: they must
 * not return into the caller's main loop. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "virtiod/log.h"
#include "virtiod/ready.h"

#include "control.h"
#include "launch.h"
#include "sandbox.h"

static const char *control_dir;

void vd_launch_set_control_dir(const char *dir)
{
	control_dir = dir;
}

static const struct vd_device_type *
find_type(const struct vd_device_type *const *types, const char *name)
{
	for (; types && *types; types++)
		if (strcmp((*types)->name, name) == 0)
			return *types;
	return NULL;
}

static int build_model(const struct vd_launcher *l,
		       const struct vd_device_spec *s, struct vd_model **out,
		       const char *who)
{
	const struct vd_device_type *t = find_type(l->types, s->type);
	char err[256] = "";
	void *o = NULL;
	int rc = 0;

	if (!t) {
		vd_err(who, "unknown device type \"%s\"", s->type);
		return -EINVAL;
	}
	sandbox_set_device(t->name);
	rc = vd_device_type_opts_new(t, &o);
	for (unsigned i = 0; rc == 0 && i < s->nopt; i++)
		rc = vd_device_type_opts_set(t, o, s->opt_name[i],
					     s->opt_has_val[i] ? s->opt_val[i]
							       : NULL,
					     err, sizeof(err));
	if (rc == 0)
		rc = t->create(o, out, err, sizeof(err));
	if (rc < 0)
		vd_err(who, "%s", err[0] ? err : strerror(-rc));
	vd_device_type_opts_free(t, o);
	return rc;
}

static const char *slot_who(const struct vd_launch_slot *c)
{
	return c->dev.who[0] ? c->dev.who : c->dev.type;
}

/* control_dir/<who>.ctl, the name's odd characters made '-'. */
static void control_path(const char *who, char *out, size_t len)
{
	size_t at = (size_t)snprintf(out, len, "%s/", control_dir);

	for (; *who && at + 5 < len; who++)
		out[at++] =
			(strchr("/ \t\n\\", *who) || *who < 0x20) ? '-' : *who;
	snprintf(out + at, len - at, ".ctl");
}

/* In the device's process: the model, then the shim until *stop. */
static int serve_slot(const struct vd_launcher *l, struct vd_launch_slot *c,
		      volatile int *stop)
{
	const char *who = slot_who(c);
	struct vd_control *ctl = NULL;
	struct vd_model *model = NULL;
	char path[256], err[512];
	int rc;

	/* The parent speaks to the service manager for every device. */
	vd_ready_set_hook(NULL);
	if (control_dir) {
		mkdir(control_dir, 0700);
		control_path(who, path, sizeof(path));
	}
	if (vd_control_start(control_dir ? path : NULL, &ctl, err,
			     sizeof(err)) < 0)
		vd_warn(who, "%s; no statistics for this device", err);

	rc = build_model(l, &c->dev, &model, who);
	if (rc < 0 || !model) { /* !model: an opts_set that returned > 0 */
		vd_control_stop(ctl);
		return rc < 0 ? rc : -EINVAL;
	}
	if (c->dev.expect_device_id &&
	    model->device_id != c->dev.expect_device_id) {
		vd_err(who,
		       "the guest expects virtio device %u, \"%s\" "
		       "is device %u",
		       c->dev.expect_device_id, c->dev.type, model->device_id);
		model->ops->destroy(model);
		vd_control_stop(ctl);
		return -EINVAL;
	}
	rc = l->shim->serve(c->opts, model, who, stop);
	vd_control_stop(ctl);
	return rc;
}

static volatile int child_stop;

static void on_signal(int sig)
{
	child_stop = sig == SIGUSR1 ? VD_HANDOVER : VD_STOP;
}

static void child_main(const struct vd_launcher *l, struct vd_launch_slot *c)
{
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (l->shim->handover)
		sigaction(SIGUSR1, &sa, NULL);
	child_stop = 0;
	rc = serve_slot(l, c, &child_stop);
	_exit(rc < 0 ? 1 : 0);
}

static int fork_slot(struct vd_launcher *l, unsigned i)
{
	struct vd_launch_slot *c = &l->slot[i];
	pid_t pid = fork();

	if (pid < 0) {
		vd_err(l->who, "%s: fork: %s", slot_who(c), strerror(errno));
		return -errno;
	}
	if (pid == 0)
		child_main(l, c);
	c->pid = pid;
	c->running = true;
	vd_info(l->who, "%s: serving in process %d", slot_who(c), (int)pid);
	return (int)i;
}

/* A free slot, cleared and marked used for key; NULL when all are used. */
static struct vd_launch_slot *claim(struct vd_launcher *l, const char *key)
{
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++) {
		struct vd_launch_slot *c = &l->slot[i];

		if (c->used)
			continue;
		memset(c, 0, sizeof(*c));
		c->used = true;
		snprintf(c->key, sizeof(c->key), "%s", key ? key : "");
		return c;
	}
	return NULL;
}

static void release(struct vd_launch_slot *c)
{
	free(c->opts);
	memset(c, 0, sizeof(*c));
}

static int launch_start(struct vd_launcher *l, const char *key,
			const struct vd_device_spec *dev, const void *opts)
{
	size_t size = l->shim->opts_size;
	struct vd_launch_slot *c = claim(l, key);

	if (!c) {
		vd_err(l->who, "more than %d devices", VD_LAUNCH_MAX);
		return -ENOSPC;
	}
	c->dev = *dev;
	if (size) {
		c->opts = malloc(size);
		if (!c->opts) {
			release(c);
			return -ENOMEM;
		}
		memcpy(c->opts, opts, size);
	}
	if (fork_slot(l, (unsigned)(c - l->slot)) < 0) {
		release(c);
		return -EIO;
	}
	return (int)(c - l->slot);
}

static int launch_find(const struct vd_launcher *l, const char *key)
{
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
		if (l->slot[i].used && !strcmp(l->slot[i].key, key))
			return (int)i;
	return -1;
}

static void launch_hold(struct vd_launcher *l, const char *key)
{
	claim(l, key);
}

static void launch_forget(struct vd_launcher *l, unsigned slot)
{
	if (!l->slot[slot].running)
		release(&l->slot[slot]);
}

static void launch_signal(struct vd_launcher *l, unsigned slot, int how)
{
	struct vd_launch_slot *c = &l->slot[slot];

	if (c->used && c->running)
		kill(c->pid, how == VD_HANDOVER ? SIGUSR1 : SIGTERM);
}

static unsigned launch_reap(struct vd_launcher *l)
{
	unsigned n = 0;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (unsigned i = 0; i < VD_LAUNCH_MAX; i++) {
			struct vd_launch_slot *c = &l->slot[i];

			if (!c->used || !c->running || c->pid != pid)
				continue;
			c->running = false;
			c->status = st;
			n++;
			if (WIFSIGNALED(st))
				vd_warn(l->who,
					"%s: process %d killed by "
					"signal %d",
					slot_who(c), (int)pid, WTERMSIG(st));
			else
				vd_info(l->who, "%s: process %d ended (%d)",
					slot_who(c), (int)pid, WEXITSTATUS(st));
		}
	}
	return n;
}

static void launch_restart(struct vd_launcher *l, unsigned slot)
{
	struct vd_launch_slot *c = &l->slot[slot];

	c->restarts++;
	vd_warn(l->who, "%s: restarting (%u)", slot_who(c), c->restarts);
	fork_slot(l, slot);
}

static unsigned launch_restart_crashed(struct vd_launcher *l)
{
	unsigned n = 0;

	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++) {
		struct vd_launch_slot *c = &l->slot[i];

		if (c->used && !c->running && c->pid > 0 &&
		    WIFSIGNALED(c->status) &&
		    c->restarts < VD_LAUNCH_RESTART_MAX) {
			launch_restart(l, i);
			n++;
		}
	}
	return n;
}

static void launch_supervise(struct vd_launcher *l, volatile int *stop)
{
	while (!*stop) {
		unsigned live = 0;

		poll(NULL, 0, 200);
		if (!launch_reap(l))
			continue;
		launch_restart_crashed(l);
		for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
			live += l->slot[i].used && l->slot[i].running;
		if (!live)
			break;
	}
}

static void launch_stop_all(struct vd_launcher *l, int how, int timeout_ms)
{
	bool any = true;

	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
		launch_signal(l, i, how);
	for (int t = 0; any && t < timeout_ms; t += 20) {
		struct timespec ts = {0, 20 * 1000000};

		launch_reap(l);
		any = false;
		for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
			any |= l->slot[i].used && l->slot[i].running;
		if (any)
			nanosleep(&ts, NULL);
	}
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++) {
		struct vd_launch_slot *c = &l->slot[i];

		if (c->used && c->running) {
			vd_warn(l->who, "%s: process %d did not stop, killed",
				slot_who(c), (int)c->pid);
			kill(c->pid, SIGKILL);
			waitpid(c->pid, NULL, 0);
			c->running = false;
		}
	}
}

static const struct vd_launcher_ops launcher_ops = {
	.start = launch_start,
	.find = launch_find,
	.hold = launch_hold,
	.forget = launch_forget,
	.signal = launch_signal,
	.reap = launch_reap,
	.restart_crashed = launch_restart_crashed,
	.supervise = launch_supervise,
	.stop_all = launch_stop_all,
};

struct vd_launcher *vd_launcher_new(const struct vd_shim *shim,
				    const struct vd_device_type *const *types)
{
	struct vd_launcher *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->ops = &launcher_ops;
	l->shim = shim;
	l->types = types;
	l->who = shim->name;
	return l;
}

void vd_launcher_free(struct vd_launcher *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < VD_LAUNCH_MAX; i++)
		free(l->slot[i].opts);
	free(l);
}
