/* virtiod's entry point: command line, logging, signals, the device handed
 * to its shim. The only place that ends the process; it never daemonizes
 * (vhost-user.rst, "Backend program conventions"). It knows shims and
 * device types only through the registry. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "virtiod/device.h"
#include "virtiod/log.h"
#include "virtiod/shim.h"

#include "cli.h"
#include "launch.h"
#include "registry.h"

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

static int serve_device(struct cli *c)
{
	struct vd_model *model = NULL;
	char err[512] = "", who[32];
	int r;

	r = c->type->create(c->opts, &model, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "virtiod: %s\n", *err ? err : strerror(-r));
		/* -EINVAL: an option the device refused (a usage error). */
		return r == -EINVAL ? 2 : 1;
	}
	snprintf(who, sizeof(who), "%s0", c->type->name);
	r = c->shim->serve(c->shim_opts, model, who, &stop);
	/* The shim consumed the model; failures were logged there. */
	return r < 0 ? 1 : 0;
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
		r = serve_devices(&c, argc, argv);
		break;
	case CLI_SERVE_MANY:
	case CLI_SERVE:
		vd_log_init(c.log_level, c.syslog);
		vd_queue_set_default_poll_us(c.poll_us);
		install_signals(c.shim->handover);
		r = c.mode == CLI_SERVE ? serve_device(&c)
					: serve_devices(&c, argc, argv);
		break;
	}
	cli_free(&c);
	fflush(stdout);
	return r;
}
