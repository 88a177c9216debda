/* vhost-user frontend messages over a Unix socket: send a request with its
 * fds, read the reply, and with REPLY_ACK wait for the backend's verdict so
 * a refused step is reported at that step, not as a later hang. */
#include "vuf_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void say(const struct vuf_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void say(const struct vuf_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->who)
		return;
	fprintf(stderr, "%s: ", c->who);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *vuf_request_name(uint32_t request)
{
	static const char *const names[] = {
		[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
		[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
		[VHOST_USER_SET_OWNER] = "SET_OWNER",
		[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
		[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
		[VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
		[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
		[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
		[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
		[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
		[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
		[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
		[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VHOST_USER_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
		[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
		[VHOST_USER_SET_CONFIG] = "SET_CONFIG",
		[VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
		[VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
		[VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
		[VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
		[VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
		[VHOST_USER_REM_MEM_REG] = "REM_MEM_REG",
		[VHOST_USER_SET_STATUS] = "SET_STATUS",
		[VHOST_USER_GET_STATUS] = "GET_STATUS",
	};

	if (request >= sizeof(names) / sizeof(names[0]) || !names[request])
		return "?";
	return names[request];
}

/* ------------------------------------------------------------ the socket */

int vuf_connect(struct vuf_conn *c, const char *path, int timeout_ms,
		const char *who)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(c, 0, sizeof(*c));
	c->sock = -1;
	c->who = who;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		say(c, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	for (int waited = 0;; waited += 20) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

		if (s < 0)
			return -errno;
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			struct timeval tv = {.tv_sec = VUF_REPLY_TIMEOUT_S};

			setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			c->sock = s;
			return 0;
		}
		err = errno;
		close(s);
		/* ENOENT: not created yet; ECONNREFUSED: not listening yet. */
		if ((err != ENOENT && err != ECONNREFUSED) ||
		    waited >= timeout_ms) {
			say(c, "connect %s: %s", path, strerror(err));
			return -err;
		}
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
	}
}

void vuf_close(struct vuf_conn *c)
{
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
}

ssize_t vuf_send_raw(int sock, const struct vhost_user_hdr *h,
		     const void *payload, size_t len, const int *fds,
		     unsigned n_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov[2] = {{(void *)h, sizeof(*h)}, {(void *)payload, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	ssize_t n;

	if (n_fds > 16)
		return -EINVAL;
	if (n_fds) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int vuf_send(struct vuf_conn *c, uint32_t request, uint32_t flags,
	     const void *payload, uint32_t size, const int *fds, unsigned n_fds)
{
	struct vhost_user_hdr h = {request, flags, size};
	ssize_t n = vuf_send_raw(c->sock, &h, payload, size, fds, n_fds);

	if (n == (ssize_t)(sizeof(h) + size))
		return 0;
	n = n < 0 ? n : -EIO;
	say(c, "send %s: %s", vuf_request_name(request), strerror((int)-n));
	return (int)n;
}

ssize_t vuf_recvmsg(int sock, void *buf, size_t len, int flags, int *fds,
		    unsigned max_fds, unsigned *n_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_REGIONS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {buf, len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf.buf,
			    .msg_controllen = sizeof(cbuf.buf)};
	ssize_t n;

	*n_fds = 0;
	do
		n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < k; i++) {
			int x;

			memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(x));
			if (*n_fds < max_fds)
				fds[(*n_fds)++] = x;
			else
				close(x);
		}
	}
	return n;
}

/* len bytes; the first fd that comes with them goes to *fd (if not NULL
 * and still -1), every other one is closed. */
static int recv_all(int sock, void *buf, size_t len, int *fd)
{
	size_t got = 0;

	while (got < len) {
		int fds[VHOST_USER_MAX_REGIONS];
		unsigned n_fds;
		ssize_t n = vuf_recvmsg(sock, (char *)buf + got, len - got, 0,
					fds, VHOST_USER_MAX_REGIONS, &n_fds);

		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return -ETIMEDOUT; /* SO_RCVTIMEO */
		if (n < 0)
			return (int)n;
		for (unsigned i = 0; i < n_fds; i++) {
			if (fd && *fd < 0)
				*fd = fds[i];
			else
				close(fds[i]);
		}
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int vuf_recv(struct vuf_conn *c, struct vhost_user_hdr *h, void *payload,
	     size_t max, int *fd, int timeout_ms)
{
	int r;

	if (fd)
		*fd = -1;
	if (timeout_ms >= 0) {
		struct pollfd p = {c->sock, POLLIN, 0};

		if (poll(&p, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
	}
	r = recv_all(c->sock, h, sizeof(*h), fd);
	if (r)
		return r;
	if (h->size > max)
		return -EMSGSIZE;
	r = recv_all(c->sock, payload, h->size, fd);
	return r ? r : (int)h->size;
}

/* -------------------------------------------------------------- requests */

int vuf_reply(struct vuf_conn *c, uint32_t request, void *payload,
	      uint32_t size, bool exact)
{
	union vhost_user_payload p;
	struct vhost_user_hdr h;
	int rc = vuf_recv(c, &h, &p, sizeof(p), NULL, -1);

	if (rc == -EMSGSIZE ||
	    (rc >= 0 &&
	     (h.request != request || !(h.flags & VHOST_USER_REPLY_MASK) ||
	      (exact ? h.size != size : h.size > size))))
		rc = -EPROTO;
	if (rc < 0) {
		if (rc == -ETIMEDOUT)
			say(c,
			    "reply to %s: backend did not answer within %d s",
			    vuf_request_name(request), VUF_REPLY_TIMEOUT_S);
		else
			say(c, "reply to %s: %s", vuf_request_name(request),
			    strerror(-rc));
		return rc;
	}
	memcpy(payload, &p, h.size);
	return 0;
}

int vuf_request_acked(struct vuf_conn *c, uint32_t request, const void *payload,
		      uint32_t size, const int *fds, unsigned n_fds,
		      uint64_t *ack)
{
	int rc = vuf_send(c, request,
			  VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
			  payload, size, fds, n_fds);

	return rc ? rc : vuf_reply(c, request, ack, sizeof(*ack), true);
}

int vuf_request(struct vuf_conn *c, uint32_t request, const void *payload,
		uint32_t size, const int *fds, unsigned n_fds)
{
	uint64_t ack;
	int rc;

	if (!(c->protocol & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		return vuf_send(c, request, VHOST_USER_VERSION, payload, size,
				fds, n_fds);
	rc = vuf_request_acked(c, request, payload, size, fds, n_fds, &ack);
	if (rc == 0 && ack != 0) {
		say(c, "backend refused %s (ack %llu)",
		    vuf_request_name(request), (unsigned long long)ack);
		rc = -EREMOTEIO;
	}
	return rc;
}

int vuf_get_u64(struct vuf_conn *c, uint32_t request, uint64_t *v)
{
	int rc = vuf_send(c, request, VHOST_USER_VERSION, NULL, 0, NULL, 0);

	return rc ? rc : vuf_reply(c, request, v, sizeof(*v), true);
}

int vuf_set_u64(struct vuf_conn *c, uint32_t request, uint64_t v)
{
	return vuf_request(c, request, &v, sizeof(v), NULL, 0);
}

/* ------------------------------------------------------------ set-up steps */

int vuf_negotiate(struct vuf_conn *c, uint64_t want_protocol)
{
	int rc = vuf_get_u64(c, VHOST_USER_GET_FEATURES, &c->dev_features);

	if (rc < 0)
		return rc;
	c->max_queues = 1;
	if (c->dev_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		uint64_t offered, n;

		rc = vuf_get_u64(c, VHOST_USER_GET_PROTOCOL_FEATURES, &offered);
		if (rc < 0)
			return rc;
		/* Sent before c->protocol is set: the set itself is
		 * unacked. */
		rc = vuf_set_u64(c, VHOST_USER_SET_PROTOCOL_FEATURES,
				 offered & want_protocol);
		if (rc < 0)
			return rc;
		c->protocol = offered & want_protocol;
		if (c->protocol & (1ull << VHOST_USER_PROTOCOL_F_MQ)) {
			rc = vuf_get_u64(c, VHOST_USER_GET_QUEUE_NUM, &n);
			if (rc < 0)
				return rc;
			c->max_queues = n > 0xffff ? 0xffff : (unsigned)n;
		}
	}
	return vuf_request(c, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
}

int vuf_set_features(struct vuf_conn *c, uint64_t features)
{
	return vuf_set_u64(c, VHOST_USER_SET_FEATURES, features);
}

int vuf_get_config(struct vuf_conn *c, uint32_t off, void *buf, uint32_t len)
{
	struct vhost_user_config cfg = {.offset = off, .size = len};
	uint32_t size = (uint32_t)VHOST_USER_CONFIG_HDR_SIZE + len;
	int rc;

	if (!(c->protocol & (1ull << VHOST_USER_PROTOCOL_F_CONFIG))) {
		say(c, "backend lacks VHOST_USER_PROTOCOL_F_CONFIG; cannot "
		       "read the disk capacity");
		return -ENOTSUP;
	}
	if (len > VHOST_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	rc = vuf_send(c, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, &cfg, size,
		      NULL, 0);
	if (rc == 0)
		rc = vuf_reply(c, VHOST_USER_GET_CONFIG, &cfg, size, true);
	if (rc == 0 && cfg.size != len) {
		say(c, "GET_CONFIG: backend refused the read of %u bytes at %u",
		    len, off);
		rc = -EREMOTEIO;
	}
	if (rc == 0)
		memcpy(buf, cfg.region, len);
	return rc;
}

struct vhost_user_memory_region vuf_region_wire(const struct vuf_region *r)
{
	return (struct vhost_user_memory_region){
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = r->uaddr,
		.mmap_offset = r->mmap_offset,
	};
}

int vuf_set_mem_table(struct vuf_conn *c, const struct vuf_region *r,
		      unsigned n)
{
	struct vhost_user_memory t = {.nregions = n};
	int fds[VHOST_USER_MAX_REGIONS];

	if (n > VHOST_USER_MAX_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		t.regions[i] = vuf_region_wire(&r[i]);
		fds[i] = r[i].fd;
	}
	return vuf_request(
		c, VHOST_USER_SET_MEM_TABLE, &t,
		(uint32_t)(offsetof(struct vhost_user_memory, regions) +
			   n * sizeof(t.regions[0])),
		fds, n);
}

int vuf_set_vring_state(struct vuf_conn *c, uint32_t request, unsigned index,
			uint32_t num)
{
	struct vhost_vring_state st = {.index = index, .num = num};

	return vuf_request(c, request, &st, sizeof(st), NULL, 0);
}

int vuf_set_vring_addr(struct vuf_conn *c, const struct vhost_vring_addr *a)
{
	return vuf_request(c, VHOST_USER_SET_VRING_ADDR, a, sizeof(*a), NULL,
			   0);
}

int vuf_set_vring_fd(struct vuf_conn *c, uint32_t request, unsigned index,
		     int fd)
{
	uint64_t v = index & VHOST_USER_VRING_IDX_MASK;

	if (fd < 0)
		v |= VHOST_USER_VRING_NOFD_MASK;
	return vuf_request(c, request, &v, sizeof(v), &fd, fd < 0 ? 0 : 1);
}

int vuf_setup_vring(struct vuf_conn *c, const struct vuf_vring_setup *s)
{
	struct vhost_vring_addr a = {
		.index = s->index,
		.desc_user_addr = s->desc_uaddr,
		.used_user_addr = s->used_uaddr,
		.avail_user_addr = s->avail_uaddr,
	};
	int rc = vuf_set_vring_state(c, VHOST_USER_SET_VRING_NUM, s->index,
				     s->num);

	if (rc == 0)
		rc = vuf_set_vring_state(c, VHOST_USER_SET_VRING_BASE, s->index,
					 s->base);
	if (rc == 0)
		rc = vuf_set_vring_addr(c, &a);
	if (rc == 0)
		rc = vuf_set_vring_fd(c, VHOST_USER_SET_VRING_CALL, s->index,
				      s->call_fd);
	if (rc == 0)
		rc = vuf_set_vring_fd(c, VHOST_USER_SET_VRING_KICK, s->index,
				      s->kick_fd);
	if (rc == 0 &&
	    (c->dev_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		rc = vuf_set_vring_state(c, VHOST_USER_SET_VRING_ENABLE,
					 s->index, 1);
	return rc;
}

int vuf_get_vring_base(struct vuf_conn *c, unsigned index, uint32_t *base)
{
	struct vhost_vring_state st = {.index = index};
	int rc = vuf_send(c, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &st,
			  sizeof(st), NULL, 0);

	if (rc == 0)
		rc = vuf_reply(c, VHOST_USER_GET_VRING_BASE, &st, sizeof(st),
			       true);
	if (rc == 0)
		*base = st.num;
	return rc;
}

/* ----------------------------------------------------------- the inflight */

int vuf_get_inflight_fd(struct vuf_conn *c, uint16_t nq, uint16_t qs,
			struct vhost_user_inflight *out, int *fd)
{
	struct vhost_user_inflight in = {.num_queues = nq, .queue_size = qs};
	struct vhost_user_hdr h;
	int rc = vuf_send(c, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION,
			  &in, sizeof(in), NULL, 0);

	if (rc)
		return rc;
	rc = vuf_recv(c, &h, out, sizeof(*out), fd, -1);
	if (rc >= 0 && (h.request != VHOST_USER_GET_INFLIGHT_FD ||
			rc != (int)sizeof(*out) || *fd < 0))
		rc = -EPROTO;
	if (rc < 0) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		say(c, "reply to GET_INFLIGHT_FD: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

int vuf_set_inflight_fd(struct vuf_conn *c,
			const struct vhost_user_inflight *in, int fd)
{
	return vuf_request(c, VHOST_USER_SET_INFLIGHT_FD, in, sizeof(*in), &fd,
			   1);
}
