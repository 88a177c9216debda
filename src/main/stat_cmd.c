/* `virtiod stat SOCKET [--json | --prometheus] [--watch N]` and `virtiod
 * resize SOCKET SIZE`: clients of a running daemon's control socket
 * (control.h). They print what the daemon rendered; exit status 0, 1 when
 * the daemon cannot be reached or refuses, 2 on a usage error. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "stat_cmd.h"

static volatile sig_atomic_t stopped;

static void on_stop(int sig)
{
	(void)sig;
	stopped = 1;
}

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "virtiod: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'virtiod --help'.\n");
	return 2;
}

static int stat_main(int argc, char **argv)
{
	const char *path = NULL, *format = "table";
	unsigned long watch = 0;
	struct sigaction sa = {.sa_handler = on_stop};
	char err[512];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json"))
			format = "json";
		else if (!strcmp(a, "--prometheus"))
			format = "prometheus";
		else if (!strcmp(a, "--watch") || !strncmp(a, "--watch=", 8)) {
			const char *v = a[7]	       ? a + 8
					: i + 1 < argc ? argv[++i]
						       : "";
			char *end;

			errno = 0;
			watch = strtoul(v, &end, 10);
			if (!*v || *end || errno || !watch || watch > 3600)
				return usage("--watch %s: expected 1..3600 "
					     "seconds",
					     v);
		} else if (a[0] == '-')
			return usage("stat: %s: unknown option", a);
		else if (!path)
			path = a;
		else
			return usage("stat: %s: one SOCKET only", a);
	}
	if (!path)
		return usage("stat: name the daemon's --control socket%s", "");
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		char line[32], *body;
		int r;

		snprintf(line, sizeof(line), "stats %s", format);
		r = vd_control_call(path, line, &body, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "virtiod stat: %s\n", err);
			return 1;
		}
		/* A terminal gets the table in place; a pipe a stream. */
		if (watch && !strcmp(format, "table") && isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
		fputs(body, stdout);
		fflush(stdout);
		free(body);
		if (!watch || stopped)
			return 0;
		struct timespec ts = {.tv_sec = (time_t)watch};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopped)
			;
		if (stopped)
			return 0;
	}
}

/* "10G", "512M", "4096": bytes, K/M/G/T being powers of 1024. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v == 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int resize_main(int argc, char **argv)
{
	char line[64], err[512], *body;
	uint64_t bytes;

	if (argc != 3)
		return usage("resize: expected SOCKET SIZE%s", "");
	if (parse_size(argv[2], &bytes) < 0)
		return usage("resize %s: expected a size in bytes, or with "
			     "K, M, G or T",
			     argv[2]);
	snprintf(line, sizeof(line), "resize %llu", (unsigned long long)bytes);
	if (vd_control_call(argv[1], line, &body, err, sizeof(err)) < 0) {
		fprintf(stderr, "virtiod resize: %s\n", err);
		return 1;
	}
	fputs(body, stdout);
	free(body);
	return 0;
}

const struct root_command root_commands[] = {
	{"stat", "SOCKET [--json | --prometheus] [--watch N]",
	 "print a running daemon's statistics (its --control socket): a "
	 "table, JSON or the Prometheus text format, every N s with --watch",
	 stat_main},
	{"resize", "SOCKET SIZE",
	 "set a running daemon's disk to SIZE bytes (K, M, G, T: powers of "
	 "1024); the guest sees the new capacity",
	 resize_main},
	{NULL, NULL, NULL, NULL},
};
