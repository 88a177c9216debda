/* From a device description to a served device: the model built from the
 * registry, and one process per device so that one guest's failure never
 * touches another's. Children end with _exit: they must not return into
 * the caller's main loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xen_priv.h"

static int build_model(const struct vd_xen_device_spec *s,
		       struct vd_model **out, const char *who)
{
	const struct vd_device_type *t = vd_device_type_find(s->type);
	char err[256] = "";
	void *o;
	int rc = 0;

	if (!t) {
		vd_err(who, "unknown device type \"%s\"", s->type);
		return -EINVAL;
	}
	o = t->opts_new();
	if (!o)
		return -ENOMEM;
	for (unsigned i = 0; rc == 0 && i < s->nopt; i++)
		rc = t->opts_set(o, s->opt_name[i],
				 s->opt_has_val[i] ? s->opt_val[i] : NULL, err,
				 sizeof(err));
	if (rc == 0)
		rc = t->create(o, out, err, sizeof(err));
	if (rc < 0)
		vd_err(who, "%s", err[0] ? err : strerror(-rc));
	t->opts_free(o);
	return rc;
}

int vd_xen_serve_spec(const struct vd_xen_device_spec *spec, volatile int *stop)
{
	struct vd_xen_config cfg = spec->cfg;
	struct vd_model *model = NULL;
	int rc;

	cfg.who = spec->who[0] ? spec->who : spec->type;
	cfg.xs_backend_path = spec->xs_path[0] ? spec->xs_path : NULL;
	cfg.state_dir = spec->state_dir[0] ? spec->state_dir : NULL;
	rc = build_model(spec, &model, cfg.who);
	if (rc < 0)
		return rc;
	if (spec->expect_device_id &&
	    model->device_id != spec->expect_device_id) {
		vd_err(cfg.who,
		       "the guest expects virtio device %u, \"%s\" "
		       "is device %u",
		       spec->expect_device_id, spec->type, model->device_id);
		model->ops->destroy(model);
		return -EINVAL;
	}
	return vd_xen_serve(&cfg, model, stop);
}

static volatile int child_stop;

static void on_signal(int sig)
{
	child_stop = sig == SIGUSR1 ? VD_HANDOVER : VD_STOP;
}

static void child_main(const struct vd_xen_device_spec *spec)
{
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	child_stop = 0;
	rc = vd_xen_serve_spec(spec, &child_stop);
	_exit(rc < 0 ? 1 : 0);
}

static int start(struct vd_xen_super *sup, unsigned i)
{
	struct vd_xen_child *c = &sup->c[i];
	pid_t pid = fork();

	if (pid < 0) {
		vd_err(sup->who, "%s: fork: %s", c->spec.who, strerror(errno));
		return -errno;
	}
	if (pid == 0)
		child_main(&c->spec);
	c->pid = pid;
	c->running = true;
	vd_info(sup->who, "%s: serving in process %d", c->spec.who, (int)pid);
	return (int)i;
}

int vd_xen_super_spawn(struct vd_xen_super *sup,
		       const struct vd_xen_device_spec *spec)
{
	for (unsigned i = 0; i < VD_XEN_MAX_CHILDREN; i++) {
		struct vd_xen_child *c = &sup->c[i];

		if (c->used)
			continue;
		memset(c, 0, sizeof(*c));
		c->used = true;
		c->spec = *spec;
		if (!c->spec.who[0])
			snprintf(c->spec.who, sizeof(c->spec.who),
				 "%s dom%u dev%u", spec->type, spec->cfg.domid,
				 spec->devid);
		if (start(sup, i) < 0) {
			c->used = false;
			return -EIO;
		}
		return (int)i;
	}
	vd_err(sup->who, "more than %d devices", VD_XEN_MAX_CHILDREN);
	return -ENOSPC;
}

int vd_xen_super_respawn(struct vd_xen_super *sup, unsigned slot)
{
	struct vd_xen_child *c = &sup->c[slot];

	if (!c->used || c->running)
		return -EINVAL;
	c->restarts++;
	vd_warn(sup->who, "%s: restarting (%u)", c->spec.who, c->restarts);
	return start(sup, slot);
}

void vd_xen_super_signal(struct vd_xen_super *sup, unsigned slot, int how)
{
	struct vd_xen_child *c = &sup->c[slot];

	if (c->used && c->running)
		kill(c->pid, how == VD_HANDOVER ? SIGUSR1 : SIGTERM);
}

unsigned vd_xen_super_reap(struct vd_xen_super *sup)
{
	unsigned n = 0;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (unsigned i = 0; i < VD_XEN_MAX_CHILDREN; i++) {
			struct vd_xen_child *c = &sup->c[i];

			if (!c->used || !c->running || c->pid != pid)
				continue;
			c->running = false;
			c->status = st;
			n++;
			if (WIFSIGNALED(st))
				vd_warn(sup->who,
					"%s: process %d killed by "
					"signal %d",
					c->spec.who, (int)pid, WTERMSIG(st));
			else
				vd_info(sup->who, "%s: process %d ended (%d)",
					c->spec.who, (int)pid, WEXITSTATUS(st));
		}
	}
	return n;
}

void vd_xen_super_stop_all(struct vd_xen_super *sup, int how, int timeout_ms)
{
	bool any = true;

	for (unsigned i = 0; i < VD_XEN_MAX_CHILDREN; i++)
		vd_xen_super_signal(sup, i, how);
	for (int t = 0; any && t < timeout_ms; t += 20) {
		struct timespec ts = {0, 20 * 1000000};

		vd_xen_super_reap(sup);
		any = false;
		for (unsigned i = 0; i < VD_XEN_MAX_CHILDREN; i++)
			any |= sup->c[i].used && sup->c[i].running;
		if (any)
			nanosleep(&ts, NULL);
	}
	for (unsigned i = 0; i < VD_XEN_MAX_CHILDREN; i++) {
		struct vd_xen_child *c = &sup->c[i];

		if (c->used && c->running) {
			vd_warn(sup->who, "%s: process %d did not stop, killed",
				c->spec.who, (int)c->pid);
			kill(c->pid, SIGKILL);
			waitpid(c->pid, NULL, 0);
			c->running = false;
		}
	}
}

int vd_xen_super_find(const struct vd_xen_super *sup, const char *xs_path)
{
	for (unsigned i = 0; i < VD_XEN_MAX_CHILDREN; i++)
		if (sup->c[i].used && !strcmp(sup->c[i].spec.xs_path, xs_path))
			return (int)i;
	return -1;
}
