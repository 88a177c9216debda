/* The storage suite's helpers: server processes started and stopped by
 * pid, the stores' own tools (nbdcopy, rbd), file checks, and guest-side
 * requests the protocol library has no shortcut for. Test-only: every
 * failure fails the test. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "st.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool tcp_accepts(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	close(fd);
	return ok;
}

/* A TCP port on 127.0.0.1 nobody listens on now (bind to 0, then close). */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static bool sock_accepts(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static pid_t spawn(const char *const *argv, const char *log)
{
	int fd = open(log, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
	pid_t pid;

	assert_true(fd >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		/* A test that ends early must not leave a server behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd);
	return pid;
}

/* Servers started and not yet stopped: a failed test's are stopped by its
 * teardown (st_teardown), by pid. */
static pid_t running[8];

static void track(pid_t pid, bool on)
{
	for (unsigned i = 0; i < 8; i++)
		if (on ? running[i] <= 0 : running[i] == pid) {
			running[i] = on ? pid : 0;
			return;
		}
}

static void dump(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && n++ < 40)
		fprintf(stderr, "  | %s", line);
	fclose(f);
}

void srv_start(struct srv *s, const char *const *argv)
{
	unlink(s->sock);
	s->pid = spawn(argv, s->log);
	track(s->pid, true);
	for (int i = 0; i < 500; i++) {
		if (s->port ? tcp_accepts(s->port) : sock_accepts(s->sock))
			return;
		if (!srv_alive(s))
			break;
		nap_ms(10);
	}
	dump(s->log);
	fail_msg("%s did not listen on %s (port %d)", argv[0], s->sock,
		 s->port);
}

static void nbdkit_startv(struct srv *s, const char *dir, va_list ap)
{
	const char *argv[32] = {"nbdkit", "-f"};
	char port[16];
	unsigned n = 2;

	snprintf(s->sock, sizeof(s->sock), "%s/nbd.sock", dir);
	snprintf(s->log, sizeof(s->log), "%s/nbdkit.log", dir);
	if (s->port) {
		snprintf(port, sizeof(port), "%d", s->port);
		argv[n++] = "-i";
		argv[n++] = "127.0.0.1";
		argv[n++] = "-p";
		argv[n++] = port;
	} else {
		argv[n++] = "-U";
		argv[n++] = s->sock;
	}
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	argv[n] = NULL;
	srv_start(s, argv);
}

void nbdkit_start(struct srv *s, const char *dir, ...)
{
	va_list ap;

	s->port = 0;
	va_start(ap, dir);
	nbdkit_startv(s, dir, ap);
	va_end(ap);
}

void nbdkit_start_tcp(struct srv *s, const char *dir, ...)
{
	va_list ap;

	s->port = free_port();
	va_start(ap, dir);
	nbdkit_startv(s, dir, ap);
	va_end(ap);
}

bool srv_alive(struct srv *s)
{
	int st;

	if (s->pid <= 0)
		return false;
	if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
		s->pid = -1;
		return false;
	}
	return true;
}

/* SIGTERM, then SIGKILL if it is not gone within 3 s. */
static void stop_pid(pid_t pid, int sig)
{
	kill(pid, sig);
	for (int i = 0; sig != SIGKILL && i < 300; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		nap_ms(10);
	}
	if (sig != SIGKILL)
		fprintf(stderr,
			"  pid %d still there 3 s after SIGTERM: "
			"SIGKILL\n",
			(int)pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

void srv_signal(struct srv *s, int sig)
{
	if (s->pid <= 0)
		return;
	if (sig != SIGKILL && sig != SIGTERM) {
		kill(s->pid, sig);
		return;
	}
	stop_pid(s->pid, sig);
	track(s->pid, false);
	s->pid = -1;
}

int st_teardown(void **state)
{
	static const char *const files[] = {"nbd.sock", "nbdkit.log",
					    "copy.img", "export.img", "inject"};
	struct env *e = *state;
	char path[200];

	if (e->nq)
		env_close(e);
	if (e->d.pid > 0 && !daemon_alive(&e->d))
		daemon_dump_log(&e->d);
	/* The daemon first: nbdkit waits for its clients before exiting. */
	daemon_kill(&e->d);
	for (unsigned i = 0; i < 8; i++)
		if (running[i] > 0) {
			stop_pid(running[i], SIGTERM);
			running[i] = 0;
		}
	for (unsigned i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", e->d.dir, files[i]);
		unlink(path);
	}
	return env_teardown(state);
}

const char *nbd_uri(const struct srv *s, char *buf, size_t len)
{
	if (s->port)
		snprintf(buf, len, "nbd://127.0.0.1:%d/", s->port);
	else
		snprintf(buf, len, "nbd+unix:///?socket=%s", s->sock);
	return buf;
}

/* Runs a tool to its end (60 s at most), output to a log shown on failure. */
static int run_tool(const char *const *argv)
{
	char log[] = "/tmp/st-tool.XXXXXX";
	int fd = mkstemp(log), st = -1;
	pid_t pid;

	assert_true(fd >= 0);
	close(fd);
	pid = spawn(argv, log);
	for (int i = 0; i < 6000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		nap_ms(10);
		st = -1;
	}
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	st = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (st != 0) {
		fprintf(stderr, "  %s exited %d:\n", argv[0], st);
		dump(log);
	}
	unlink(log);
	return st;
}

void cmd_ok(const char *const *argv)
{
	assert_int_equal(run_tool(argv), 0);
}

void nbd_export_to(const char *uri, const char *file)
{
	const char *argv[] = {"nbdcopy", uri, file, NULL};

	unlink(file);
	cmd_ok(argv);
}

const char *ceph_conf(void)
{
	const char *c = getenv("ST_CEPH_CONF");

	if (!c || !*c)
		fail_msg("ST_CEPH_CONF is not set: run tests/storage/run.sh, "
			 "which starts the Ceph cluster");
	return c;
}

void rbd_cmd(const char *first, ...)
{
	const char *argv[24] = {"rbd", "-c", ceph_conf(), first};
	unsigned n = 4;
	va_list ap;

	va_start(ap, first);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	cmd_ok(argv);
}

void rbd_export_to(const char *image, const char *file)
{
	unlink(file);
	rbd_cmd("export", "--no-progress", image, file, NULL);
}

void rbd_image_name(char *buf, size_t len, const char *tag)
{
	static unsigned seq;

	snprintf(buf, len, "rbd/st-%s-%d-%u", tag, (int)getpid(), seq++);
}

void rbd_disk(char *buf, size_t len, const char *image)
{
	snprintf(buf, len, "rbd:%s:conf=%s", image, ceph_conf());
}

static bool file_range(const char *path, uint64_t off, size_t len, uint8_t *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len;
}

bool file_has_pattern(const char *path, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	bool ok;

	assert_non_null(buf);
	ok = file_range(path, off, len, buf) && check_pattern(buf, len, seed);
	free(buf);
	return ok;
}

bool file_is_zero(const char *path, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	bool ok;

	assert_non_null(buf);
	ok = file_range(path, off, len, buf);
	for (size_t i = 0; ok && i < len; i++)
		ok = buf[i] == 0;
	free(buf);
	return ok;
}

/* --------------------------------------------------------- guest side */

uint8_t blk_do_segs(struct ring *r, uint32_t type, uint64_t sector,
		    const uint64_t *gpa, const uint32_t *len, unsigned n)
{
	uint64_t hdr = gmem_alloc(r->m, sizeof(struct virtio_blk_outhdr), 16);
	uint64_t status = gmem_alloc(r->m, 1, 1);
	struct virtio_blk_outhdr *h = gmem_hva(r->m, hdr);
	struct buf b[10];
	uint16_t token;
	uint32_t used;
	int t;

	assert_true(n <= 8);
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	*(uint8_t *)gmem_hva(r->m, status) = 0xff;
	b[0] = (struct buf){hdr, sizeof(*h), false};
	for (unsigned i = 0; i < n; i++)
		b[1 + i] =
			(struct buf){gpa[i], len[i], type != VIRTIO_BLK_T_OUT};
	b[n + 1] = (struct buf){status, 1, true};
	t = ring_add(r, b, n + 2);
	ring_kick(r);
	assert_true(ring_get_used(r, &token, &used, 10000));
	assert_int_equal(token, t);
	return *(uint8_t *)gmem_hva(r->m, status);
}

uint8_t write_pattern(struct env *e, uint64_t sector, uint32_t len,
		      uint32_t seed)
{
	uint64_t data = gmem_alloc(&e->m, len, 4096);

	fill_pattern(gmem_hva(&e->m, data), len, seed);
	return blk_do_segs(&e->r[0], VIRTIO_BLK_T_OUT, sector, &data, &len, 1);
}

bool read_has_pattern(struct env *e, uint64_t sector, uint32_t len,
		      uint32_t seed)
{
	uint64_t data = gmem_alloc(&e->m, len, 4096);

	memset(gmem_hva(&e->m, data), 0xa5, len);
	return blk_do_segs(&e->r[0], VIRTIO_BLK_T_IN, sector, &data, &len, 1) ==
		       VIRTIO_BLK_S_OK &&
	       check_pattern(gmem_hva(&e->m, data), len, seed);
}

bool read_is_zero(struct env *e, uint64_t sector, uint32_t len)
{
	uint64_t data = gmem_alloc(&e->m, len, 4096);
	const uint8_t *p = gmem_hva(&e->m, data);

	memset(gmem_hva(&e->m, data), 0xa5, len);
	if (blk_do_segs(&e->r[0], VIRTIO_BLK_T_IN, sector, &data, &len, 1) !=
	    VIRTIO_BLK_S_OK)
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

uint8_t dwz(struct env *e, uint32_t type, uint64_t sector, uint32_t sectors,
	    bool unmap)
{
	uint64_t seg = gmem_alloc(&e->m, 16, 16);
	struct virtio_blk_discard_write_zeroes *s = gmem_hva(&e->m, seg);
	uint32_t len = sizeof(*s);
	struct ring *r = &e->r[0];
	uint64_t hdr = gmem_alloc(r->m, sizeof(struct virtio_blk_outhdr), 16);
	uint64_t status = gmem_alloc(r->m, 1, 1);
	struct virtio_blk_outhdr *h = gmem_hva(r->m, hdr);
	struct buf b[3];
	uint16_t token;
	uint32_t used;
	int t;

	s->sector = htole64(sector);
	s->num_sectors = htole32(sectors);
	s->flags = htole32(unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = 0;
	*(uint8_t *)gmem_hva(r->m, status) = 0xff;
	b[0] = (struct buf){hdr, sizeof(*h), false};
	b[1] = (struct buf){seg, len, false};
	b[2] = (struct buf){status, 1, true};
	t = ring_add(r, b, 3);
	ring_kick(r);
	assert_true(ring_get_used(r, &token, &used, 10000));
	assert_int_equal(token, t);
	return *(uint8_t *)gmem_hva(r->m, status);
}

uint8_t timed_do(struct env *e, uint32_t type, uint64_t sector, uint32_t len,
		 int timeout_ms, unsigned *ms)
{
	struct ring *r = &e->r[0];
	uint64_t data = len ? gmem_alloc(&e->m, len, 4096) : 0;
	uint64_t t0;
	struct blk_req q;
	uint16_t token;
	uint32_t used;

	if (len)
		fill_pattern(gmem_hva(&e->m, data), len, (uint32_t)sector);
	t0 = now_ms();
	blk_submit(r, &q, type, sector, data, len);
	ring_kick(r);
	if (!ring_get_used(r, &token, &used, timeout_ms))
		fail_msg("no answer within %d ms", timeout_ms);
	*ms = (unsigned)(now_ms() - t0);
	assert_int_equal(token, q.token);
	return *(uint8_t *)gmem_hva(r->m, q.status_gpa);
}

uint64_t cfg_capacity(struct env *e)
{
	uint64_t cap;

	assert_int_equal(
		vuf_get_config(&e->f,
			       offsetof(struct virtio_blk_config, capacity),
			       &cap, sizeof(cap)),
		0);
	return le64toh(cap);
}

uint64_t dev_features(struct env *e)
{
	return e->f.dev_features;
}

int backend_channel(struct env *e)
{
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp),
			 0);
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0,
				  &sp[1], 1),
			 0);
	close(sp[1]);
	return sp[0];
}

bool wait_config_change(int fd, int timeout_ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	struct vhost_user_hdr h;
	uint8_t payload[256];

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	if (read(fd, &h, sizeof(h)) != sizeof(h))
		return false;
	if (h.size && h.size <= sizeof(payload) &&
	    read(fd, payload, h.size) != (ssize_t)h.size)
		return false;
	return h.request == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG;
}

/* env_open, negotiating what a Linux driver would of what is offered. */
static void open_device(struct env *e)
{
	struct vuf_mem *mems[1] = {&e->m};
	uint64_t want = blk_features(false) | 1ull << VIRTIO_BLK_F_DISCARD |
			1ull << VIRTIO_BLK_F_WRITE_ZEROES |
			1ull << VIRTIO_BLK_F_RO;

	e->nq = 1;
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, e->f.dev_features & want);
	gmem_new(&e->m, 64u << 20, 0x100000000ull);
	fe_set_mem_table(&e->f, mems, 1);
	ring_init(&e->r[0], &e->m, 0, 128, false);
	fe_setup_ring(&e->f, &e->r[0], 0, false, true);
}

void serve(struct env *e, const char *disk, ...)
{
	const char *extra[24] = {"--disk", disk};
	unsigned n = 2;
	va_list ap;

	va_start(ap, disk);
	while (n < 23 && (extra[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	extra[n] = NULL;
	daemon_startv(&e->d, extra);
	open_device(e);
}

int serve_fails(const char *disk, char *err, size_t errlen, ...)
{
	const char *argv[24] = {virtiod_path(),	      "blk",	"--socket-path",
				"/tmp/st-never.sock", "--disk", disk};
	unsigned n = 6;
	char out[4096];
	va_list ap;

	va_start(ap, errlen);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_cmd(argv, out, sizeof(out), err, errlen);
}
