/* Starting, stopping and inspecting the daemon under test ($VIRTIOD), and
 * running it as a command. Test-only: every failure fails the test. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vu_test.h"

const char *virtiod_path(void)
{
	const char *p = getenv("VIRTIOD");

	return p && *p ? p : "build/virtiod";
}

void nap_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

void daemon_prepare(struct daemon *d, unsigned img_mib)
{
	int fd;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	strcpy(d->dir, "/tmp/vu-test.XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->sock, sizeof(d->sock), "%s/s", d->dir);
	snprintf(d->img, sizeof(d->img), "%s/disk.img", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	fd = open(d->img, O_CREAT | O_RDWR | O_TRUNC, 0600);
	assert_true(fd >= 0);
	d->img_size = (size_t)img_mib << 20;
	assert_int_equal(ftruncate(fd, (off_t)d->img_size), 0);
	close(fd);
}

static bool socket_ready(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	strcpy(sa.sun_path, path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

void daemon_startv(struct daemon *d, const char *const *extra)
{
	const char *argv[32] = {virtiod_path(), "blk",	  "--socket-path",
				d->sock,	"--disk", d->img,
				"--log-level",	"debug"};
	unsigned n = 8;
	int logfd;

	for (; extra && *extra && n < 31; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	unlink(d->sock);
	logfd = open(d->log, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
	assert_true(logfd >= 0);
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		/* A test that ends early must not leave its daemon behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);

		dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(logfd);
	/* A probe connection counts as a frontend that comes and goes. */
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (stat(d->sock, &st) == 0 && socket_ready(d->sock))
			return;
		if (!daemon_alive(d))
			break;
		nap_ms(10);
	}
	daemon_dump_log(d);
	fail_msg("daemon did not start listening on %s", d->sock);
}

void daemon_start(struct daemon *d, ...)
{
	const char *extra[24];
	unsigned n = 0;
	va_list ap;

	va_start(ap, d);
	while (n < 23 && (extra[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	extra[n] = NULL;
	daemon_startv(d, extra);
}

bool daemon_alive(struct daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = -1;
		return false;
	}
	return true;
}

int daemon_stop(struct daemon *d)
{
	int st = 0;

	assert_true(d->pid > 0);
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		}
		nap_ms(10);
	}
	daemon_kill(d);
	fail_msg("daemon did not exit within 5 s of SIGTERM");
	return -1;
}

void daemon_kill(struct daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = -1;
}

int daemon_fd_count(const struct daemon *d)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

int daemon_idle_fd_count(const struct daemon *d)
{
	int last = -1, same = 0;

	/* The probe connection of daemon_start may still be closing. */
	for (int i = 0; i < 300 && same < 5; i++) {
		int n = daemon_fd_count(d);

		same = n == last ? same + 1 : 0;
		last = n;
		nap_ms(10);
	}
	return last;
}

int daemon_wait_fd_count(const struct daemon *d, int want)
{
	int n = -1;

	for (int i = 0; i < 300; i++) {
		n = daemon_fd_count(d);
		if (n == want)
			return n;
		nap_ms(10);
	}
	return n;
}

bool daemon_log_has(const struct daemon *d, ...)
{
	const char *want[8];
	unsigned n = 0;
	char line[1024];
	bool found = false;
	va_list ap;
	FILE *f;

	va_start(ap, d);
	while (n < 8 && (want[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	/* The daemon logs from its own process: give it a moment. */
	for (int tries = 0; tries < 100 && !found; tries++) {
		f = fopen(d->log, "r");
		if (!f)
			return false;
		while (!found && fgets(line, sizeof(line), f)) {
			unsigned k = 0;

			while (k < n && strstr(line, want[k]))
				k++;
			found = k == n;
		}
		fclose(f);
		if (!found)
			nap_ms(10);
	}
	return found;
}

int daemon_log_count(const struct daemon *d, const char *s)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(d->log, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

void daemon_dump_log(const struct daemon *d)
{
	char line[1024];
	FILE *f = fopen(d->log, "r");
	int n = 0;

	if (!f)
		return;
	/* The tail is what explains a failure. */
	while (fgets(line, sizeof(line), f))
		n++;
	rewind(f);
	for (int i = 0; fgets(line, sizeof(line), f); i++)
		if (i >= n - 40)
			fprintf(stderr, "  daemon: %s", line);
	fclose(f);
}

void daemon_cleanup(struct daemon *d)
{
	char path[200];

	daemon_kill(d);
	if (!d->dir[0])
		return;
	unlink(d->sock);
	unlink(d->img);
	unlink(d->log);
	snprintf(path, sizeof(path), "%s/other", d->dir);
	unlink(path);
	rmdir(d->dir);
	d->dir[0] = '\0';
}

/* --------------------------------------------------------------- commands */

static void drain(int fd, char *buf, size_t len, size_t *used)
{
	ssize_t n;

	if (*used + 1 >= len) {
		char sink[512];

		n = read(fd, sink, sizeof(sink));
		(void)n;
		return;
	}
	n = read(fd, buf + *used, len - 1 - *used);
	if (n > 0)
		*used += (size_t)n;
	buf[*used] = '\0';
}

int run_cmd(const char *const *argv, char *out, size_t outlen, char *err,
	    size_t errlen)
{
	int po[2], pe[2], st;
	size_t no = 0, ne = 0;
	bool open_o = true, open_e = true;
	pid_t pid;

	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	out[0] = err[0] = '\0';
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	for (int rounds = 0; (open_o || open_e) && rounds < 1000; rounds++) {
		struct pollfd p[2] = {{open_o ? po[0] : -1, POLLIN, 0},
				      {open_e ? pe[0] : -1, POLLIN, 0}};

		if (poll(p, 2, 10) <= 0)
			continue;
		if (p[0].revents & POLLIN)
			drain(po[0], out, outlen, &no);
		else if (p[0].revents)
			open_o = false;
		if (p[1].revents & POLLIN)
			drain(pe[0], err, errlen, &ne);
		else if (p[1].revents)
			open_e = false;
	}
	close(po[0]);
	close(pe[0]);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		nap_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int run_blk_cmd(char *out, size_t outlen, char *err, size_t errlen,
		const char *sock, const char *img, ...)
{
	const char *argv[16] = {virtiod_path(), "blk",	  "--socket-path",
				sock,		"--disk", img};
	unsigned n = 6;
	va_list ap;

	va_start(ap, img);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_cmd(argv, out, outlen, err, errlen);
}
