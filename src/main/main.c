/* virtiod's entry point: command line, logging, signals, the device handed
 * to a shim. The only place that ends the process; it never daemonizes
 * (vhost-user.rst, "Backend program conventions"). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "../../shims/vhost-user/vhost_user.h"
#include "../../shims/xen/xen.h"
#include "cli.h"

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

/* Xen: hand the IOREQ server over to the next daemon instead of
 * destroying it (a restart that the guest does not notice). */
static void on_handover(int sig)
{
	(void)sig;
	stop = VD_HANDOVER;
}

/* No SA_RESTART: a blocking call returns EINTR so the stop is seen. */
static void install_signals(bool xen)
{
	struct sigaction sa = {.sa_handler = on_stop};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (xen) {
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

	if (c->fd >= 0 && fcntl(c->fd, F_GETFD) < 0) {
		fprintf(stderr, "virtiod: --fd %d: %s\n", c->fd,
			strerror(errno));
		return 2;
	}
	r = c->type->create(c->opts, &model, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "virtiod: %s\n", *err ? err : strerror(-r));
		/* -EINVAL: an option the device refused (a usage error). */
		return r == -EINVAL ? 2 : 1;
	}
	snprintf(who, sizeof(who), "%s0", c->type->name);
	if (c->mode == CLI_XEN) {
		struct vd_xen_config xcfg = c->xen;

		xcfg.who = who;
		r = vd_xen_serve(&xcfg, model, &stop);
	} else {
		struct vd_vu_config vcfg = {
			.socket_path = c->socket_path,
			.listen_fd = c->fd,
			.who = who,
		};

		r = vd_vu_serve(&vcfg, model, &stop);
	}
	/* Both shims consumed the model; failures were logged there. */
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct cli c;
	char err[512] = "";
	int r;

	r = cli_parse(argc, argv, &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "virtiod: %s\nTry 'virtiod --help'.\n", err);
		cli_free(&c);
		return 2;
	}
	switch (c.mode) {
	case CLI_HELP:
		cli_usage(stdout);
		r = 0;
		break;
	case CLI_VERSION:
		printf("virtiod %s\n", VIRTIOD_VERSION);
		r = 0;
		break;
	case CLI_CAPABILITIES:
		vd_vu_print_capabilities(c.type);
		r = 0;
		break;
	case CLI_XEN_WATCH:
		install_signals(true);
		r = vd_xen_watch_main(argc - 1, argv + 1, &stop);
		break;
	case CLI_CONFIG_FILE:
		vd_log_init(c.log_level, c.syslog);
		vd_queue_set_default_poll_us(c.poll_us);
		install_signals(true);
		r = vd_xen_config_file_main(c.config_path, &stop);
		break;
	case CLI_VHOST_USER:
	case CLI_XEN:
		vd_log_init(c.log_level, c.syslog);
		vd_queue_set_default_poll_us(c.poll_us);
		install_signals(c.mode == CLI_XEN);
		r = serve_device(&c);
		break;
	}
	cli_free(&c);
	fflush(stdout);
	return r;
}
