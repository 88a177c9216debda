/* The control socket's server and client (control.h). The server is one
 * thread that never touches a queue: it reads counters with relaxed loads
 * and resizes through the core. A client that stalls is dropped after a
 * second; a request it cannot parse is answered with an error. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "virtiod/device.h"
#include "virtiod/log.h"
#include "virtiod/sandbox.h"
#include "virtiod/unix_socket.h"

#include "control.h"
#include "stats_report.h"

#define WHO	       "control"
#define LINE_MAX_BYTES 256
#define IO_TIMEOUT_S   1

struct vd_control {
	pthread_t thread;
	int listen_fd; /* -1: size watch only */
	int stop_fd;   /* eventfd: the thread ends */
	char path[108];
	struct stat st; /* of the socket we made */
	struct vd_ratelimit rl;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------ requests */

struct resize_req {
	uint64_t bytes;
	int ndev, changed, err;
	char why[256];
};

static void resize_one(struct vd_dev *dev, void *arg)
{
	struct resize_req *r = arg;
	int rc;

	if (r->ndev++)
		return; /* more than one: refused below */
	rc = vd_dev_resize(dev, r->bytes, r->why, sizeof(r->why));
	if (rc < 0)
		r->err = rc;
	else
		r->changed = rc;
}

static void answer_resize(FILE *out, const char *arg)
{
	struct resize_req r = {0};
	char *end;

	errno = 0;
	r.bytes = strtoull(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || !r.bytes) {
		fprintf(out, "error: resize %s: expected a size in bytes\n",
			arg);
		return;
	}
	vd_dev_for_each(resize_one, &r);
	if (r.ndev != 1)
		fprintf(out,
			"error: this process serves %d devices; resize "
			"needs exactly one\n",
			r.ndev);
	else if (r.err)
		fprintf(out, "error: %s\n", r.why);
	else
		fprintf(out, "ok\n%s\n",
			r.changed ? "resized; the driver was told"
				  : "the size is unchanged");
}

/* One request line to its reply. */
static void answer(const char *line, FILE *out)
{
	enum stats_format f;

	if (!strncmp(line, "stats", 5) && (!line[5] || line[5] == ' ')) {
		struct stats_snap s;

		if (stats_format_parse(line[5] ? line + 6 : "json", &f) < 0) {
			fprintf(out,
				"error: %s: expected stats json, table or "
				"prometheus\n",
				line);
			return;
		}
		stats_snap_take(&s);
		fputs("ok\n", out);
		stats_render(&s, f, out);
		stats_snap_free(&s);
	} else if (!strncmp(line, "resize ", 7)) {
		answer_resize(out, line + 7);
	} else {
		fprintf(out,
			"error: unknown request '%.64s' (stats FORMAT, "
			"resize BYTES)\n",
			line);
	}
}

static void serve_client(struct vd_control *c, int fd)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	char line[LINE_MAX_BYTES + 1];
	size_t got = 0, len = 0, off = 0;
	char *reply = NULL;
	FILE *out;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (got < LINE_MAX_BYTES && !memchr(line, '\n', got)) {
		ssize_t n = read(fd, line + got, LINE_MAX_BYTES - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	line[got] = '\0';
	if (!memchr(line, '\n', got)) {
		vd_log_ratelimited(&c->rl, VD_LOG_WARN, WHO,
				   "a client sent no request line; dropped");
		return;
	}
	line[strcspn(line, "\r\n")] = '\0';
	out = open_memstream(&reply, &len);
	if (!out)
		return;
	answer(line, out);
	if (fclose(out) != 0) {
		free(reply);
		return;
	}
	while (off < len) {
		ssize_t n = send(fd, reply + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(reply);
}

/* ------------------------------------------------------------ thread */

static void rescan_one(struct vd_dev *dev, void *arg)
{
	struct vd_control *c = arg;
	char why[256];
	int r = vd_dev_resize(dev, 0, why, sizeof(why));

	/* A model without a size (rng) has nothing to look at. */
	if (r < 0 && r != -EOPNOTSUPP)
		vd_log_ratelimited(&c->rl, VD_LOG_WARN, WHO, "%s", why);
}

static void *control_thread(void *arg)
{
	struct vd_control *c = arg;
	uint64_t next = now_ms() + VD_CONTROL_RESCAN_MS;

	for (;;) {
		struct pollfd p[2] = {
			{.fd = c->stop_fd, .events = POLLIN},
			{.fd = c->listen_fd, .events = POLLIN},
		};
		uint64_t t = now_ms();
		int n;

		/* Started before the end of start-up: its filter comes at the
		 * first wake-up after the serving loop sealed the process. */
		vd_sandbox_enter(VD_SANDBOX_CONTROL, WHO);
		if (t >= next) {
			/* inotify would wake us on every write the guest
			 * makes, and sees no block device grow: a look once
			 * a second costs one fstat or ioctl. */
			vd_dev_for_each(rescan_one, c);
			next = t + VD_CONTROL_RESCAN_MS;
		}
		n = poll(p, c->listen_fd >= 0 ? 2 : 1, (int)(next - t));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd =
				accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				serve_client(c, fd);
				close(fd);
			}
		}
	}
	return NULL;
}

/* Closes what c holds and removes our socket (not one a successor put at
 * the path). */
static void release(struct vd_control *c)
{
	struct stat now;

	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		if (c->path[0] && stat(c->path, &now) == 0 &&
		    now.st_ino == c->st.st_ino && now.st_dev == c->st.st_dev)
			unlink(c->path);
	}
	close(c->stop_fd);
	free(c);
}

static int listen_at(struct vd_control *c, const char *path, char *err,
		     size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--control %s: longer than %zu bytes",
			 path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	/* A stale socket is replaced; a live one, or any other file, is
	 * someone's and stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen,
				 "--control %s: exists and is not a socket; "
				 "choose another path",
				 path);
			return -EEXIST;
		}
		r = vd_unix_socket_is_live(&sa);
		if (r != 0) {
			snprintf(err, errlen,
				 r > 0 ? "--control %s: in use: another "
					 "process listens on it (a running "
					 "virtiod?); stop it or choose another "
					 "path"
				       : "--control %s: cannot tell whether it "
					 "is in use; remove it if it is stale",
				 path);
			return -EADDRINUSE;
		}
		unlink(path);
	}
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "--control %s: socket: %s", path,
			 strerror(-r));
		return r;
	}
	/* Only the owner (and root) may resize the disk. */
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(c->listen_fd, 8) < 0 ||
	    stat(path, &c->st) < 0) {
		r = -errno;
		snprintf(err, errlen, "--control %s: %s", path, strerror(-r));
		close(c->listen_fd);
		c->listen_fd = -1;
		return r;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	return 0;
}

int vd_control_start(const char *path, struct vd_control **out, char *err,
		     size_t errlen)
{
	struct vd_control *c = calloc(1, sizeof(*c));
	sigset_t all, old;
	int r;

	if (!c) {
		snprintf(err, errlen, "control: out of memory");
		return -ENOMEM;
	}
	c->listen_fd = -1;
	c->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "control: eventfd: %s", strerror(-r));
		free(c);
		return r;
	}
	if (path) {
		r = listen_at(c, path, err, errlen);
		if (r < 0)
			goto fail;
	}
	/* Signals go to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&c->thread, NULL, control_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		snprintf(err, errlen, "control: thread: %s", strerror(-r));
		goto fail;
	}
	if (path)
		vd_info(WHO, "statistics and resize on %s", path);
	*out = c;
	return 0;
fail:
	release(c);
	return r;
}

void vd_control_stop(struct vd_control *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (write(c->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(c->thread, NULL);
	release(c);
}

/* ------------------------------------------------------------ client */

int vd_control_call(const char *path, const char *line, char **body, char *err,
		    size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	size_t len = 0, cap = 0, lsz = strlen(line);
	char *buf = NULL, *nl;
	int fd, r = 0;

	*body = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen,
			 "%s: %s (is it the --control socket of a running "
			 "virtiod?)",
			 path, strerror(-r));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (send(fd, line, lsz, MSG_NOSIGNAL) != (ssize_t)lsz ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		r = -errno;
		snprintf(err, errlen, "%s: sending the request: %s", path,
			 strerror(-r));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *g = realloc(buf, cap + 65536);

			if (!g) {
				r = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = g;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: reading the reply: %s", path,
				 strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf) {
		r = -EPROTO;
		snprintf(err, errlen, "%s: empty reply", path);
		goto out;
	}
	buf[len] = '\0';
	nl = strchr(buf, '\n');
	if (!strncmp(buf, "error: ", 7)) {
		if (nl)
			*nl = '\0';
		snprintf(err, errlen, "%s", buf + 7);
		r = -EINVAL;
	} else if (strncmp(buf, "ok\n", 3) != 0) {
		snprintf(err, errlen, "%s: not a virtiod control socket", path);
		r = -EPROTO;
	} else {
		memmove(buf, buf + 3, len - 3 + 1);
		*body = buf;
		buf = NULL;
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}
