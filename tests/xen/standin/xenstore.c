/* Stand-in libxenstore: a tree of nodes in the shared state, watches
 * queued per connection with a pollable fd (xs_fileno), the initial event
 * xenstored sends on xs_watch, parents made implicitly on write, and
 * relative paths resolved under the backend domain's home. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "hv.h"

struct xs_handle {
	int conn;
};

static void abs_path(char *out, const char *path)
{
	if (path[0] == '/' || path[0] == '@')
		snprintf(out, SX_PATH, "%s", path);
	else
		snprintf(out, SX_PATH, "/local/domain/%u/%s", sx->self_domid,
			 path);
}

static bool under(const char *parent, const char *path)
{
	size_t n = strlen(parent);

	return strncmp(parent, path, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/' ||
		(n == 1 && parent[0] == '/'));
}

static struct sx_xs_node *node(const char *path)
{
	for (int i = 0; i < SX_XS_NODES; i++)
		if (sx->xs[i].used && strcmp(sx->xs[i].path, path) == 0)
			return &sx->xs[i];
	return NULL;
}

static void queue_event(int conn, const char *path, const char *token)
{
	struct sx_xs_conn *c = &sx->conns[conn];
	uint64_t x = 1;

	if (c->tail - c->head >= SX_XS_QUEUE)
		return; /* overflow: xenstored would drop the connection */
	snprintf(c->q[c->tail % SX_XS_QUEUE].path, SX_PATH, "%s", path);
	snprintf(c->q[c->tail % SX_XS_QUEUE].token, 64, "%s", token);
	c->tail++;
	if (write(sx->xs_fd[conn], &x, 8) != 8)
		perror("xs event");
}

void sx_xs_fire(const char *path, int removed)
{
	for (int i = 0; i < SX_XS_WATCHES; i++) {
		struct sx_xs_watch *w = &sx->watches[i];

		if (!w->used)
			continue;
		if (under(w->path, path))
			queue_event(w->conn, path, w->token);
		else if (removed && under(path, w->path))
			queue_event(w->conn, w->path, w->token);
	}
}

void sx_xs_fire_special(const char *name)
{
	for (int i = 0; i < SX_XS_WATCHES; i++)
		if (sx->watches[i].used && !strcmp(sx->watches[i].path, name))
			queue_event(sx->watches[i].conn, name,
				    sx->watches[i].token);
}

/* Under the lock. */
static int do_write(const char *path, const char *val, size_t len)
{
	char p[SX_PATH];
	struct sx_xs_node *n;

	if (len >= SX_VAL)
		return -E2BIG;
	/* Parents first, as xenstored makes them. */
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (!node(p)) {
			int rc = do_write(p, "", 0);

			if (rc)
				return rc;
		}
		*s = '/';
	}
	n = node(path);
	for (int i = 0; !n && i < SX_XS_NODES; i++) {
		if (!sx->xs[i].used) {
			n = &sx->xs[i];
			n->used = 1;
			snprintf(n->path, SX_PATH, "%s", path);
		}
	}
	if (!n)
		return -ENOSPC;
	memcpy(n->val, val, len);
	n->val[len] = '\0';
	sx_xs_fire(path, 0);
	return 0;
}

static int do_rm(const char *path)
{
	int found = 0;

	for (int i = 0; i < SX_XS_NODES; i++) {
		if (sx->xs[i].used && under(path, sx->xs[i].path)) {
			sx->xs[i].used = 0;
			found = 1;
		}
	}
	if (found)
		sx_xs_fire(path, 1);
	return found ? 0 : -ENOENT;
}

struct xs_handle *xs_open(unsigned long flags)
{
	struct xs_handle *h = calloc(1, sizeof(*h));

	(void)flags;
	if (!h)
		return NULL;
	sx_lock();
	for (int i = 0; i < SX_XS_CONNS; i++) {
		struct sx_xs_conn *c = &sx->conns[i];

		/* A connection of a process that died is free again. */
		if (c->used && kill(c->pid, 0) < 0 && errno == ESRCH)
			c->used = 0;
		if (!c->used) {
			uint64_t x;

			memset(c, 0, sizeof(*c));
			c->used = 1;
			c->pid = getpid();
			while (read(sx->xs_fd[i], &x, 8) == 8)
				;
			for (int w = 0; w < SX_XS_WATCHES; w++)
				if (sx->watches[w].conn == i)
					sx->watches[w].used = 0;
			h->conn = i;
			sx_unlock();
			return h;
		}
	}
	sx_unlock();
	free(h);
	errno = EMFILE;
	return NULL;
}

void xs_close(struct xs_handle *h)
{
	if (!h)
		return;
	sx_lock();
	for (int w = 0; w < SX_XS_WATCHES; w++)
		if (sx->watches[w].used && sx->watches[w].conn == h->conn)
			sx->watches[w].used = 0;
	sx->conns[h->conn].used = 0;
	sx_unlock();
	free(h);
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path,
	      unsigned int *len)
{
	char p[SX_PATH];
	struct sx_xs_node *n;
	char *v = NULL;

	(void)h;
	(void)t;
	SX_COUNT(xs_read, 1);
	abs_path(p, path);
	sx_lock();
	n = node(p);
	if (n)
		v = strdup(n->val);
	sx_unlock();
	if (!v) {
		errno = ENOENT;
		return NULL;
	}
	if (len)
		*len = (unsigned)strlen(v);
	return v;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path,
	      const void *data, unsigned int len)
{
	char p[SX_PATH];
	int rc;

	(void)h;
	(void)t;
	SX_COUNT(xs_write, 1);
	abs_path(p, path);
	sx_lock();
	rc = do_write(p, data, len);
	sx_unlock();
	if (rc)
		errno = -rc;
	return rc == 0;
}

bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	char p[SX_PATH];
	int rc = 0;

	(void)h;
	(void)t;
	abs_path(p, path);
	sx_lock();
	if (!node(p))
		rc = do_write(p, "", 0);
	sx_unlock();
	return rc == 0;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	char p[SX_PATH];
	int rc;

	(void)h;
	(void)t;
	SX_COUNT(xs_rm, 1);
	abs_path(p, path);
	sx_lock();
	rc = do_rm(p);
	sx_unlock();
	if (rc)
		errno = -rc;
	return rc == 0;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path,
		    unsigned int *num)
{
	char p[SX_PATH];
	const char *names[SX_XS_NODES];
	size_t plen, total = 0;
	unsigned n = 0;
	char **vec, *s;

	(void)h;
	(void)t;
	SX_COUNT(xs_directory, 1);
	abs_path(p, path);
	plen = strlen(p);
	sx_lock();
	if (!node(p)) {
		sx_unlock();
		errno = ENOENT;
		return NULL;
	}
	for (int i = 0; i < SX_XS_NODES; i++) {
		const char *c = sx->xs[i].path;

		if (sx->xs[i].used && strncmp(c, p, plen) == 0 &&
		    c[plen] == '/' && !strchr(c + plen + 1, '/')) {
			names[n++] = c + plen + 1;
			total += strlen(c + plen + 1) + 1;
		}
	}
	/* One block, as libxenstore returns it: free(vec) frees all. */
	vec = malloc(n * sizeof(char *) + total + 1);
	if (vec) {
		s = (char *)(vec + n);
		for (unsigned i = 0; i < n; i++) {
			strcpy(s, names[i]);
			vec[i] = s;
			s += strlen(s) + 1;
		}
		*num = n;
	}
	sx_unlock();
	return vec;
}

bool xs_watch(struct xs_handle *h, const char *path, const char *token)
{
	char p[SX_PATH];

	SX_COUNT(xs_watch, 1);
	abs_path(p, path);
	sx_lock();
	for (int i = 0; i < SX_XS_WATCHES; i++) {
		struct sx_xs_watch *w = &sx->watches[i];

		if (w->used)
			continue;
		w->used = 1;
		w->conn = h->conn;
		snprintf(w->path, SX_PATH, "%s", p);
		snprintf(w->token, sizeof(w->token), "%s", token);
		/* xenstored fires every new watch once. */
		queue_event(h->conn, p, token);
		sx_unlock();
		return true;
	}
	sx_unlock();
	errno = ENOSPC;
	return false;
}

bool xs_unwatch(struct xs_handle *h, const char *path, const char *token)
{
	char p[SX_PATH];
	bool found = false;

	abs_path(p, path);
	sx_lock();
	for (int i = 0; i < SX_XS_WATCHES; i++) {
		struct sx_xs_watch *w = &sx->watches[i];

		if (w->used && w->conn == h->conn && !strcmp(w->path, p) &&
		    !strcmp(w->token, token)) {
			w->used = 0;
			found = true;
		}
	}
	sx_unlock();
	return found;
}

int xs_fileno(struct xs_handle *h)
{
	return sx->xs_fd[h->conn];
}

static char **pop_event(struct xs_handle *h)
{
	struct sx_xs_conn *c = &sx->conns[h->conn];
	struct sx_xs_event *e;
	char **vec = NULL;

	sx_lock();
	if (c->head != c->tail) {
		size_t lp, lt;

		e = &c->q[c->head % SX_XS_QUEUE];
		lp = strlen(e->path) + 1;
		lt = strlen(e->token) + 1;
		vec = malloc(2 * sizeof(char *) + lp + lt);
		if (vec) {
			vec[XS_WATCH_PATH] = (char *)(vec + 2);
			vec[XS_WATCH_TOKEN] = vec[XS_WATCH_PATH] + lp;
			memcpy(vec[XS_WATCH_PATH], e->path, lp);
			memcpy(vec[XS_WATCH_TOKEN], e->token, lt);
			c->head++;
		}
	}
	if (c->head == c->tail) {
		uint64_t x;

		while (read(sx->xs_fd[h->conn], &x, 8) == 8)
			;
	}
	sx_unlock();
	if (!vec)
		errno = EAGAIN;
	return vec;
}

char **xs_check_watch(struct xs_handle *h)
{
	return pop_event(h);
}

char **xs_read_watch(struct xs_handle *h, unsigned int *num)
{
	char **vec;

	while (!(vec = pop_event(h))) {
		struct pollfd p = {.fd = sx->xs_fd[h->conn], .events = POLLIN};

		poll(&p, 1, 100);
	}
	if (num)
		*num = 2;
	return vec;
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
	(void)h;
	return 1;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort)
{
	(void)h;
	(void)t;
	(void)abort;
	return true;
}

char *xs_get_domain_path(struct xs_handle *h, unsigned int domid)
{
	char *p;

	(void)h;
	if (asprintf(&p, "/local/domain/%u", domid) < 0)
		return NULL;
	return p;
}

/* ---- the test's side (the toolstack) */

int sx_xs_write(const char *path, const char *val)
{
	int rc;

	sx_lock();
	rc = do_write(path, val, strlen(val));
	sx_unlock();
	return rc;
}

int sx_xs_rm(const char *path)
{
	int rc;

	sx_lock();
	rc = do_rm(path);
	sx_unlock();
	return rc;
}

char *sx_xs_read(const char *path)
{
	struct sx_xs_node *n;
	char *v = NULL;

	sx_lock();
	n = node(path);
	if (n)
		v = strdup(n->val);
	sx_unlock();
	return v;
}

int sx_xs_wait(const char *path, const char *val, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 5) {
		char *v = sx_xs_read(path);
		bool ok = v && !strcmp(v, val);

		free(v);
		if (ok)
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}
