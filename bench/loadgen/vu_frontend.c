/* vhost-user frontend messages over a Unix socket: send a request (with
 * fds), read its reply, and with REPLY_ACK wait for the backend's verdict so
 * a refused setup step is reported at that step, not as a later hang. */
#include "vu_frontend.h"

#include <errno.h>
#include <linux/vhost_types.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VU_VERSION	   0x1
#define VU_FLAG_REPLY	   (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)
#define VU_MAX_FDS	   8
#define VU_REPLY_TIMEOUT_S 10
#define VU_CONFIG_MAX	   256

struct vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	union {
		uint64_t u64;
		struct vhost_vring_state state;
		struct vhost_vring_addr addr;
		struct {
			uint32_t nregions;
			uint32_t padding;
			struct vu_region regions[8];
		} mem;
		struct {
			uint32_t offset;
			uint32_t size;
			uint32_t flags;
			uint8_t data[VU_CONFIG_MAX];
		} config;
	} p;
} __attribute__((packed));

#define VU_HDR_SIZE 12u

static const char *req_name(uint32_t r)
{
	switch (r) {
	case VHOST_USER_GET_FEATURES:
		return "GET_FEATURES";
	case VHOST_USER_SET_FEATURES:
		return "SET_FEATURES";
	case VHOST_USER_SET_OWNER:
		return "SET_OWNER";
	case VHOST_USER_SET_MEM_TABLE:
		return "SET_MEM_TABLE";
	case VHOST_USER_SET_VRING_NUM:
		return "SET_VRING_NUM";
	case VHOST_USER_SET_VRING_ADDR:
		return "SET_VRING_ADDR";
	case VHOST_USER_SET_VRING_BASE:
		return "SET_VRING_BASE";
	case VHOST_USER_GET_VRING_BASE:
		return "GET_VRING_BASE";
	case VHOST_USER_SET_VRING_KICK:
		return "SET_VRING_KICK";
	case VHOST_USER_SET_VRING_CALL:
		return "SET_VRING_CALL";
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return "GET_PROTOCOL_FEATURES";
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		return "SET_PROTOCOL_FEATURES";
	case VHOST_USER_GET_QUEUE_NUM:
		return "GET_QUEUE_NUM";
	case VHOST_USER_SET_VRING_ENABLE:
		return "SET_VRING_ENABLE";
	case VHOST_USER_GET_CONFIG:
		return "GET_CONFIG";
	default:
		return "?";
	}
}

int vu_connect(struct vu_front *f, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vd-loadgen: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	memset(f, 0, sizeof(*f));
	f->sock = -1;
	for (int waited = 0;; waited += 20) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			return -errno;
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			struct timeval tv = {.tv_sec = VU_REPLY_TIMEOUT_S};
			setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			f->sock = s;
			return 0;
		}
		int err = errno;
		close(s);
		/* ENOENT: not created yet; ECONNREFUSED: not listening yet. */
		if ((err != ENOENT && err != ECONNREFUSED) ||
		    waited >= timeout_ms) {
			fprintf(stderr, "vd-loadgen: connect %s: %s\n", path,
				strerror(err));
			return -err;
		}
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
	}
}

void vu_close(struct vu_front *f)
{
	if (f->sock >= 0)
		close(f->sock);
	f->sock = -1;
}

static int send_msg(struct vu_front *f, struct vu_msg *m, const int *fds,
		    unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = m, .iov_len = VU_HDR_SIZE + m->size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)iov.iov_len) {
		int err = n < 0 ? errno : EPIPE;
		fprintf(stderr, "vd-loadgen: send %s: %s\n",
			req_name(m->request), strerror(err));
		return -err;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

/* Reads the reply to `request` into *m; its payload must be `size` bytes
 * (or at most size when exact is false). */
static int recv_reply(struct vu_front *f, uint32_t request, struct vu_msg *m,
		      uint32_t size, bool exact)
{
	int rc = read_full(f->sock, m, VU_HDR_SIZE);
	if (rc == 0 && (m->request != request || !(m->flags & VU_FLAG_REPLY) ||
			m->size > sizeof(m->p) ||
			(exact ? m->size != size : m->size > size)))
		rc = -EPROTO;
	if (rc == 0)
		rc = read_full(f->sock, &m->p, m->size);
	if (rc < 0)
		fprintf(stderr, "vd-loadgen: reply to %s: %s\n",
			req_name(request),
			rc == -EAGAIN ? "backend did not answer within 10 s"
				      : strerror(-rc));
	return rc;
}

/* A request that has no reply of its own; with REPLY_ACK it asks for one. */
static int set_req(struct vu_front *f, struct vu_msg *m, const int *fds,
		   unsigned nfds)
{
	bool ack = f->protocol & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
	uint32_t request = m->request;
	m->flags = VU_VERSION | (ack ? VU_FLAG_NEED_REPLY : 0);
	int rc = send_msg(f, m, fds, nfds);
	if (rc < 0 || !ack)
		return rc;
	rc = recv_reply(f, request, m, sizeof(uint64_t), true);
	if (rc == 0 && m->p.u64 != 0) {
		fprintf(stderr, "vd-loadgen: backend refused %s (ack %llu)\n",
			req_name(request), (unsigned long long)m->p.u64);
		rc = -EREMOTEIO;
	}
	return rc;
}

static int get_u64(struct vu_front *f, uint32_t request, uint64_t *out)
{
	struct vu_msg m = {.request = request, .flags = VU_VERSION};
	int rc = send_msg(f, &m, NULL, 0);
	if (rc == 0)
		rc = recv_reply(f, request, &m, sizeof(uint64_t), true);
	if (rc == 0)
		*out = m.p.u64;
	return rc;
}

static int set_u64(struct vu_front *f, uint32_t request, uint64_t v)
{
	struct vu_msg m = {.request = request, .size = sizeof(uint64_t)};
	m.p.u64 = v;
	return set_req(f, &m, NULL, 0);
}

int vu_negotiate(struct vu_front *f)
{
	int rc = get_u64(f, VHOST_USER_GET_FEATURES, &f->dev_features);
	if (rc < 0)
		return rc;
	f->max_queues = 1;
	if (f->dev_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		uint64_t offered;
		const uint64_t want =
			(1ull << VHOST_USER_PROTOCOL_F_MQ) |
			(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
			(1ull << VHOST_USER_PROTOCOL_F_CONFIG);
		rc = get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES, &offered);
		if (rc < 0)
			return rc;
		/* Sent before f->protocol is set: the set itself is unacked. */
		rc = set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES,
			     offered & want);
		if (rc < 0)
			return rc;
		f->protocol = offered & want;
		if (f->protocol & (1ull << VHOST_USER_PROTOCOL_F_MQ)) {
			uint64_t n;
			rc = get_u64(f, VHOST_USER_GET_QUEUE_NUM, &n);
			if (rc < 0)
				return rc;
			f->max_queues = n > 0xffff ? 0xffff : (unsigned)n;
		}
	}
	struct vu_msg m = {.request = VHOST_USER_SET_OWNER};
	return set_req(f, &m, NULL, 0);
}

int vu_get_config(struct vu_front *f, uint32_t off, void *buf, uint32_t len)
{
	if (!(f->protocol & (1ull << VHOST_USER_PROTOCOL_F_CONFIG))) {
		fprintf(stderr, "vd-loadgen: backend lacks "
				"VHOST_USER_PROTOCOL_F_CONFIG; cannot read the "
				"disk capacity\n");
		return -ENOTSUP;
	}
	if (len > VU_CONFIG_MAX)
		return -EINVAL;
	struct vu_msg m = {.request = VHOST_USER_GET_CONFIG,
			   .flags = VU_VERSION,
			   .size = 12 + len};
	m.p.config.offset = off;
	m.p.config.size = len;
	int rc = send_msg(f, &m, NULL, 0);
	if (rc == 0)
		rc = recv_reply(f, VHOST_USER_GET_CONFIG, &m, 12 + len, true);
	if (rc == 0 && m.p.config.size != len) {
		fprintf(stderr,
			"vd-loadgen: GET_CONFIG: backend refused the "
			"read of %u bytes at %u\n",
			len, off);
		rc = -EREMOTEIO;
	}
	if (rc == 0)
		memcpy(buf, m.p.config.data, len);
	return rc;
}

int vu_set_features(struct vu_front *f, uint64_t features)
{
	return set_u64(f, VHOST_USER_SET_FEATURES, features);
}

int vu_set_mem_table(struct vu_front *f, int fd, uint64_t gpa, uint64_t size,
		     uint64_t uaddr)
{
	struct vu_msg m = {.request = VHOST_USER_SET_MEM_TABLE,
			   .size = 8 + sizeof(struct vu_region)};
	m.p.mem.nregions = 1;
	m.p.mem.regions[0] = (struct vu_region){
		.gpa = gpa, .size = size, .uaddr = uaddr, .mmap_offset = 0};
	return set_req(f, &m, &fd, 1);
}

static int set_state(struct vu_front *f, uint32_t request, unsigned index,
		     unsigned num)
{
	struct vu_msg m = {.request = request,
			   .size = sizeof(struct vhost_vring_state)};
	m.p.state.index = index;
	m.p.state.num = num;
	return set_req(f, &m, NULL, 0);
}

static int set_fd(struct vu_front *f, uint32_t request, unsigned index, int fd)
{
	struct vu_msg m = {.request = request, .size = sizeof(uint64_t)};
	m.p.u64 = index; /* bit 8 clear: an fd comes with the message */
	return set_req(f, &m, &fd, 1);
}

int vu_setup_vring(struct vu_front *f, const struct vu_vring_setup *s)
{
	int rc = set_state(f, VHOST_USER_SET_VRING_NUM, s->index, s->num);
	if (rc == 0)
		rc = set_state(f, VHOST_USER_SET_VRING_BASE, s->index, 0);
	if (rc == 0) {
		struct vu_msg m = {.request = VHOST_USER_SET_VRING_ADDR,
				   .size = sizeof(struct vhost_vring_addr)};
		m.p.addr = (struct vhost_vring_addr){
			.index = s->index,
			.desc_user_addr = s->desc_uaddr,
			.used_user_addr = s->used_uaddr,
			.avail_user_addr = s->avail_uaddr,
		};
		rc = set_req(f, &m, NULL, 0);
	}
	/* CALL before KICK: a backend may start the ring on the kick fd. */
	if (rc == 0)
		rc = set_fd(f, VHOST_USER_SET_VRING_CALL, s->index, s->call_fd);
	if (rc == 0)
		rc = set_fd(f, VHOST_USER_SET_VRING_KICK, s->index, s->kick_fd);
	/* With PROTOCOL_FEATURES rings start disabled (vhost-user.rst,
	 * "Ring states"). */
	if (rc == 0 &&
	    (f->dev_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		rc = set_state(f, VHOST_USER_SET_VRING_ENABLE, s->index, 1);
	return rc;
}

int vu_get_vring_base(struct vu_front *f, unsigned index, uint32_t *base)
{
	struct vu_msg m = {.request = VHOST_USER_GET_VRING_BASE,
			   .flags = VU_VERSION,
			   .size = sizeof(struct vhost_vring_state)};
	m.p.state.index = index;
	int rc = send_msg(f, &m, NULL, 0);
	if (rc == 0)
		rc = recv_reply(f, VHOST_USER_GET_VRING_BASE, &m,
				sizeof(struct vhost_vring_state), true);
	if (rc == 0)
		*base = m.p.state.num;
	return rc;
}
