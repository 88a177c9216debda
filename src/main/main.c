/* virtiod's entry point: command line, logging, signals, the device handed
 * to its shim. The only place that ends the process; it never daemonizes
 * (vhost-user.rst, "Backend program conventions"). It knows shims and
 * device types only through the registry. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "virtiod/device.h"
#include "virtiod/log.h"
#include "virtiod/ready.h"
#include "virtiod/shim.h"

#include "cli.h"
#include "control.h"
#include "launch.h"
#include "registry.h"
#include "sandbox.h"
#include "stat_cmd.h"

#ifndef VIRTIOD_VERSION
#define VIRTIOD_VERSION "unknown"
#endif

/* Set by the signal handlers; the shims poll it. */
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = VD_STOP;
}

/* Hand the device over to the next daemon instead of removing it (a
 * restart that the guest does not notice). */
static void on_handover(int sig)
{
	(void)sig;
	stop = VD_HANDOVER;
}

/* No SA_RESTART: a blocking call returns EINTR so the stop is seen. */
static void install_signals(bool handover)
{
	struct sigaction sa = {.sa_handler = on_stop};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (handover) {
		sa.sa_handler = on_handover;
		sigaction(SIGUSR1, &sa, NULL);
	}
	/* A frontend that goes away mid-reply is an error return, not a
	 * death. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* The service manager learns when the device can be reached (Type=notify:
 * units ordered after this one wait for it). Without NOTIFY_SOCKET this
 * does nothing. */
static void notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

static int serve_device(struct cli *c)
{
	struct vd_control *ctl = NULL;
	struct vd_model *model = NULL;
	char err[512] = "", who[32];
	int r;

	sandbox_set_device(c->type->name);
	r = c->type->create(c->opts, &model, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "virtiod: %s\n", *err ? err : strerror(-r));
		/* -EINVAL: an option the device refused (a usage error). */
		return r == -EINVAL ? 2 : 1;
	}
	/* Statistics, resize, and the size watch of the backing store. */
	r = vd_control_start(c->control, &ctl, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "virtiod: %s\n", err);
		model->ops->destroy(model);
		return 1;
	}
	snprintf(who, sizeof(who), "%s0", c->type->name);
	r = c->shim->serve(c->shim_opts, model, who, &stop);
	vd_control_stop(ctl);
	/* The shim consumed the model; failures were logged there. */
	return r < 0 ? 1 : 0;
}

/* systemd socket activation: one listening socket passed as fd 3
 * (LISTEN_FDS) serves the device as `--fd 3` would, when the command line
 * names no socket itself (vhost-user.rst, backend program conventions). */
static char **socket_activation(int *argc, char **argv)
{
	static const char *const placed[] = {"--socket-path", "--fd",
					     "--xen-domid", "--config", NULL};
	char **nargv;
	int n;

	if (*argc < 2 || argv[1][0] == '-' || !getenv("LISTEN_FDS"))
		return argv;
	for (int i = 1; i < *argc; i++)
		for (unsigned k = 0; placed[k]; k++)
			if (!strncmp(argv[i], placed[k], strlen(placed[k])))
				return argv;
	n = sd_listen_fds(1);
	if (n != 1) {
		if (n > 1)
			fprintf(stderr,
				"virtiod: %d sockets passed by the "
				"service manager; one is served\n",
				n);
		if (n < 1)
			return argv;
	}
	nargv = calloc((size_t)*argc + 3, sizeof(*nargv));
	if (!nargv)
		return argv;
	memcpy(nargv, argv, (size_t)*argc * sizeof(*nargv));
	nargv[(*argc)++] = "--fd";
	nargv[(*argc)++] = "3"; /* SD_LISTEN_FDS_START */
	return nargv;
}

/* `--control DIR` before a command's own options (xen-watch): taken out,
 * the launcher gives each device process a socket in DIR. `--sandbox` too:
 * each device process seals itself. */
static int take_control_dir(int *argc, char **argv, struct sandbox_config *sc)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "--sandbox", 9) &&
		    (a[9] == '=' || (!a[9] && i + 1 < *argc))) {
			const char *v = a[9] == '=' ? a + 10 : argv[++i];

			if (sandbox_parse_mode(v, &sc->mode) < 0) {
				fprintf(stderr,
					"virtiod: --sandbox %s: expected "
					"seccomp or none\n",
					v);
				return -1;
			}
			continue;
		}
		if (!strcmp(argv[i], "--control") && i + 1 < *argc) {
			vd_launch_set_control_dir(argv[++i]);
			continue;
		}
		if (!strncmp(argv[i], "--control=", 10)) {
			vd_launch_set_control_dir(argv[i] + 10);
			continue;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

/* xen-watch, --config: each device in a process of the launcher. */
static int serve_devices(struct cli *c, int argc, char **argv)
{
	struct vd_launcher *l = vd_launcher_new(c->shim, vd_device_types());
	int r;

	if (!l) {
		fprintf(stderr, "virtiod: out of memory\n");
		return 1;
	}
	if (c->command)
		r = c->command->main(argc - 1, argv + 1, l, &stop);
	else
		r = c->shim->serve_many(c->shim_opts, l, &stop);
	vd_launcher_free(l);
	return r;
}

int main(int argc, char **argv)
{
	struct cli c;
	char err[512] = "";
	int r;

	for (const struct root_command *k = root_commands; argc > 1 && k->name;
	     k++)
		if (!strcmp(argv[1], k->name))
			return k->main(argc - 1, argv + 1);
	argv = socket_activation(&argc, argv);
	r = cli_parse(argc, argv, &c, err, sizeof(err));
	if (r == 0 && c.mode == CLI_INFO)
		r = c.shim->print_info(c.type, vd_device_types(), err,
				       sizeof(err));
	if (r < 0) {
		fprintf(stderr, "virtiod: %s\nTry 'virtiod --help'.\n", err);
		cli_free(&c);
		return 2;
	}
	switch (c.mode) {
	case CLI_HELP:
		cli_usage(stdout);
		break;
	case CLI_VERSION:
		printf("virtiod %s\n", VIRTIOD_VERSION);
		break;
	case CLI_INFO:
		break;
	case CLI_COMMAND:
		install_signals(c.shim->handover);
		vd_ready_set_hook(notify_ready);
		c.sandbox.shim = c.shim->name;
		if (take_control_dir(&argc, argv, &c.sandbox) < 0) {
			r = 2;
			break;
		}
		sandbox_setup(&c.sandbox);
		r = serve_devices(&c, argc, argv);
		break;
	case CLI_SERVE_MANY:
	case CLI_SERVE:
		vd_log_init(c.log_level, c.syslog);
		vd_queue_set_default_poll_us(c.poll_us);
		install_signals(c.shim->handover);
		vd_ready_set_hook(notify_ready);
		if (c.mode == CLI_SERVE_MANY)
			vd_launch_set_control_dir(c.control);
		c.sandbox.shim = c.shim->name;
		sandbox_setup(&c.sandbox);
		r = c.mode == CLI_SERVE ? serve_device(&c)
					: serve_devices(&c, argc, argv);
		break;
	}
	cli_free(&c);
	fflush(stdout);
	return r;
}
