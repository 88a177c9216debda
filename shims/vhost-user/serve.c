/* vd_vu_serve: one frontend at a time; after a disconnect every ring stops,
 * the device is reset and the socket listens again (QEMU's reconnect=).
 * Never exits the process: failures go back to main. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "virtiod/ready.h"
#include "virtiod/sandbox.h"

#include "connection.h"
#include "control.h"
#include "dirty_log.h"
#include "inflight.h"
#include "messages.h"
#include "serve.h"
#include "vhost_user.h"
#include "vring.h"

/* Once a message has begun, all of it must follow promptly: a frontend that
 * stalls (or drips) mid-message is dropped instead of holding the daemon. */
#define VU_MSG_TIMEOUT_MS 1000
/* Replies are small: a frontend that does not read them is dropped. */
#define VU_SEND_TIMEOUT_S 1

static const struct vd_dev_shim_ops shim_ops = {
	.notify_queue = vu_notify_queue,
	.notify_config = vu_notify_config,
};

void vu_backend_free(struct vu_backend *b)
{
	if (b->dev)
		vd_dev_free(b->dev); /* stops the queues, destroys the model */
	else if (b->model && b->model->ops->destroy)
		b->model->ops->destroy(b->model);
	if (b->mem)
		vd_mem_free(b->mem); /* releases (unmaps) what is left */
	/* Normally gone with the last disconnect; the queues are stopped. */
	if (b->vrings) {
		vu_inflight_unmap(b);
		vu_log_unmap(b);
	}
	vu_vrings_free(b);
	vu_close_fd(&b->req_fd);
	pthread_mutex_destroy(&b->req_lock);
	free(b->regions);
	free(b);
}

struct vu_backend *vu_backend_new(const char *who, struct vd_model *model)
{
	struct vu_backend *b = calloc(1, sizeof(*b));

	if (!b) {
		if (model->ops->destroy)
			model->ops->destroy(model);
		return NULL;
	}
	b->who = who ? who : model->type_name;
	b->model = model;
	b->num_queues = model->num_queues;
	b->max_queue_size =
		model->max_queue_size ? model->max_queue_size : VD_VQ_MAX_SIZE;
	b->listen_fd = -1;
	b->conn_fd = -1;
	b->req_fd = -1;
	b->req_rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	pthread_mutex_init(&b->req_lock, NULL);
	atomic_init(&b->log, NULL);
	atomic_init(&b->config_notify, false);
	b->regions = calloc(VU_MAX_MEM_SLOTS, sizeof(*b->regions));
	/* One reader slot per queue thread. */
	b->mem = vd_mem_new_table(model->num_queues);
	if (b->regions && b->mem && vu_vrings_new(b) == 0)
		b->dev = vd_dev_new(model, b->mem, &shim_ops, b, b->who);
	if (!b->dev) {
		vd_err(b->who, "cannot set up the device (out of memory?)");
		vu_backend_free(b);
		return NULL;
	}
	return b;
}

void vu_connection_open(struct vu_backend *b, int fd)
{
	b->conn_fd = fd;
	vd_info(b->who, "frontend connected");
}

int vu_serve_message(struct vu_backend *b)
{
	int r = vu_recv_msg(b, &b->msg);

	return r ? r : vu_dispatch(b, &b->msg);
}

/* listening: the socket will accept the next frontend (not when stopping). */
static void disconnect(struct vu_backend *b, const char *why, bool listening)
{
	vd_info(b->who, "frontend disconnected (%s); device reset%s", why,
		listening ? ", listening" : "");
	vu_connection_reset(b);
	vu_close_fd(&b->conn_fd);
}

void vu_disconnect(struct vu_backend *b, const char *why)
{
	disconnect(b, why, b->listen_fd >= 0);
}

static void accept_one(struct vu_backend *b)
{
	struct timeval tv = {.tv_sec = VU_SEND_TIMEOUT_S};
	char peer[64];
	int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			vd_warn(b->who, "accept: %s", strerror(errno));
		return;
	}
	if (b->conn_fd >= 0) {
		/* One frontend at a time: a second one learns at once. */
		vu_peer_describe(fd, peer, sizeof(peer));
		vd_warn(b->who,
			"a second frontend connected (%s); refused while "
			"one is being served",
			peer);
		close(fd);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	b->msg_timeout_ms = VU_MSG_TIMEOUT_MS;
	vu_peer_describe(fd, peer, sizeof(peer));
	b->conn_fd = fd;
	vd_info(b->who, "frontend connected (%s)", peer);
}

/* Signals are delivered to this thread only inside ppoll, so a stop
 * request can never slip in between checking *stop and going to sleep.
 * Synchronous signals stay unblocked (they cannot be deferred anyway). */
static void block_async_signals(sigset_t *orig)
{
	sigset_t set;

	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGTRAP);
	sigdelset(&set, SIGABRT);
	sigdelset(&set, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &set, orig);
}

static int serve_loop(struct vu_backend *b, volatile int *stop,
		      const sigset_t *wait_mask)
{
	while (!*stop) {
		struct pollfd pfd[2] = {
			{.fd = b->conn_fd, .events = POLLIN},
			{.fd = b->listen_fd, .events = POLLIN},
		};
		int n = ppoll(pfd, 2, NULL, wait_mask);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			vd_err(b->who, "poll: %s", strerror(errno));
			return -errno;
		}
		/* The connection first: a frontend that closed and came back
		 * is seen leaving before it is seen arriving. */
		if (b->conn_fd >= 0 && pfd[0].revents) {
			int r = vu_serve_message(b);

			if (r < 0)
				vu_disconnect(b,
					      r == -ECONNRESET
						      ? "closed by the frontend"
						      : "protocol error");
		}
		if (pfd[1].revents & POLLIN)
			accept_one(b);
		else if (pfd[1].revents) {
			vd_err(b->who, "listening socket failed");
			return -EIO;
		}
	}
	return 0;
}

int vd_vu_serve(const struct vd_vu_config *cfg, struct vd_model *model,
		volatile int *stop)
{
	struct vu_backend *b = vu_backend_new(cfg->who, model);
	bool created = false;
	struct stat st = {0};
	sigset_t orig;
	int r;

	if (!b)
		return -ENOMEM;
	if (cfg->socket_path) {
		r = vu_listen_path(cfg->socket_path, b->who,
				   cfg->group_set ? cfg->socket_group
						  : (gid_t)-1,
				   &b->listen_fd, &created);
		if (r == 0)
			stat(cfg->socket_path, &st);
	} else {
		r = vu_check_listen_fd(cfg->listen_fd, b->who);
		if (r == 0)
			b->listen_fd = cfg->listen_fd;
	}
	if (r) {
		vu_backend_free(b);
		return r;
	}
	vd_info(b->who, "listening on %s",
		cfg->socket_path ? cfg->socket_path
				 : "the socket passed by --fd");
	vd_ready("listening");
	block_async_signals(&orig);
	/* Start-up is over: the socket listens, the model's files are
	 * open. */
	r = vd_sandbox_enter(VD_SANDBOX_VU_LOOP, b->who);
	if (r == 0)
		r = serve_loop(b, stop, &orig);
	pthread_sigmask(SIG_SETMASK, &orig, NULL);
	if (b->conn_fd >= 0)
		disconnect(b, "stopping", false);
	vu_close_fd(&b->listen_fd);
	/* Remove our socket, not one a successor may have put there. */
	if (created) {
		struct stat now;

		if (stat(cfg->socket_path, &now) == 0 &&
		    now.st_ino == st.st_ino && now.st_dev == st.st_dev)
			unlink(cfg->socket_path);
	}
	vu_backend_free(b);
	return r;
}
