/* The sandbox's mechanism: at the end of start-up (a serving loop enters
 * its role) privileges are dropped and one filter covering every role of
 * the process is installed on all threads (TSYNC); then each thread adds
 * its own role's filter. Filters only ever narrow: a thread inherits its
 * creator's, so a role's filter includes what the threads it starts do
 * (sandbox_spawns). What each role may call is in sandbox_table.c. */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <cap-ng.h>

#include "virtiod/log.h"

#include "sandbox.h"

#define MAX_NEEDED 8

static struct sandbox_config cfg;
static const char *needed[MAX_NEEDED];
static unsigned n_needed;
static pthread_mutex_t seal_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sealed;
static int seal_err;
/* Whether this thread has its role's filter. */
static _Thread_local bool entered;

int sandbox_parse_mode(const char *s, enum sandbox_mode *out)
{
	if (!strcmp(s, "seccomp"))
		*out = SANDBOX_SECCOMP;
	else if (!strcmp(s, "none"))
		*out = SANDBOX_NONE;
	else
		return -EINVAL;
	return 0;
}

/* A decimal id, or -1. */
static long parse_id(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || v < 0 || v >= 0xffffffffL ? -1 : v;
}

int sandbox_parse_user(const char *s, struct sandbox_config *c, char *err,
		       size_t errlen)
{
	struct passwd *pw = getpwnam(s);
	long id = parse_id(s);

	if (!pw && id < 0) {
		snprintf(err, errlen,
			 "--user %s: no such user (give a name from "
			 "/etc/passwd or a number)",
			 s);
		return -ENOENT;
	}
	c->uid = pw ? pw->pw_uid : (uid_t)id;
	c->set_user = true;
	c->user = s;
	/* The user's own group unless --group says otherwise. */
	if (pw && !c->set_group)
		c->gid = pw->pw_gid;
	return 0;
}

int sandbox_parse_group(const char *s, struct sandbox_config *c, char *err,
			size_t errlen)
{
	struct group *gr = getgrnam(s);
	long id = parse_id(s);

	if (!gr && id < 0) {
		snprintf(err, errlen,
			 "--group %s: no such group (give a name from "
			 "/etc/group or a number)",
			 s);
		return -ENOENT;
	}
	c->gid = gr ? gr->gr_gid : (gid_t)id;
	c->set_group = true;
	return 0;
}

static bool profile_on(const char *p)
{
	if (!p || (cfg.shim && !strcmp(p, cfg.shim)) ||
	    (cfg.device && !strcmp(p, cfg.device)))
		return true;
	for (unsigned i = 0; i < n_needed; i++)
		if (!strcmp(p, needed[i]))
			return true;
	return false;
}

/* role and every role its threads may start, as bits. */
static unsigned closure(unsigned roles)
{
	unsigned prev;

	do {
		prev = roles;
		for (unsigned r = 0; r < VD_SANDBOX_ROLES; r++)
			if (roles & (1u << r))
				roles |= sandbox_spawns[r];
	} while (roles != prev);
	return roles;
}

static int add_row(scmp_filter_ctx f, const struct sandbox_row *row)
{
	int nr, r = 0;

	for (const char *const *c = row->calls; c && *c && !r; c++) {
		nr = seccomp_syscall_resolve_name(*c);
		/* A name this architecture lacks (poll, open on arm64). */
		if (nr == __NR_SCMP_ERROR)
			continue;
		if (nr == SCMP_SYS(clone))
			/* Threads only, never a new process. */
			r = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 1,
					     SCMP_A0(SCMP_CMP_MASKED_EQ,
						     CLONE_THREAD,
						     CLONE_THREAD));
		else if (nr == SCMP_SYS(clone3))
			/* Its flags are behind a pointer a filter cannot
			 * read: ENOSYS makes glibc fall back to clone. */
			r = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
		else
			r = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
	}
	for (const unsigned char *t = row->ioctl_types; t && *t && !r; t++)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00u,
					     (unsigned)*t << 8));
	for (const unsigned long *q = row->ioctls; q && *q && !r; q++)
		r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_EQ, *q, 0));
	return r;
}

/* The filter of every row of roles in use; tsync: for all threads. */
static int load(unsigned roles, bool tsync)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = f ? 0 : -ENOMEM;

	if (!r && tsync)
		r = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
	/* The seal set no_new_privs on every thread (TSYNC carries it). */
	if (!r && !tsync)
		r = seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 0);
	for (unsigned i = 0; i < sandbox_table_len && !r; i++)
		if ((roles & (1u << sandbox_table[i].role)) &&
		    profile_on(sandbox_table[i].profile))
			r = add_row(f, &sandbox_table[i]);
	if (!r)
		r = seccomp_load(f);
	seccomp_release(f);
	/* libseccomp: TSYNC failing on another thread is a positive tid. */
	return r > 0 ? -ESRCH : r;
}

/* A thread started before the seal: its own capabilities (capset is per
 * thread) go too, without reading /proc as capng_get_caps_process does. */
static void drop_thread_caps(void)
{
	capng_clear(CAPNG_SELECT_CAPS);
	capng_apply(CAPNG_SELECT_CAPS);
}

/* Capabilities of this thread (capset is per thread), none kept. */
static int drop_caps(void)
{
	if (capng_get_caps_process() < 0)
		return -EPERM;
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE)
		return 0;
	capng_clear(CAPNG_SELECT_BOTH);
	/* The bounding set needs CAP_SETPCAP; without it the caps alone. */
	if (capng_apply(CAPNG_SELECT_BOTH) == 0)
		return 0;
	return capng_apply(CAPNG_SELECT_CAPS) == 0 ? 0 : -EPERM;
}

/* Another user and group for every thread (glibc's setresuid reaches
 * them all), supplementary groups gone, no capabilities kept. */
static int change_id(const char *who)
{
	int uid = cfg.set_user ? (int)cfg.uid : -1;
	int gid = cfg.set_group || cfg.set_user ? (int)cfg.gid : -1;
	int r;

	capng_get_caps_process();
	capng_clear(CAPNG_SELECT_BOTH);
	r = capng_change_id(uid, gid,
			    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
	if (r < 0)
		vd_err(who,
		       "cannot become user %d group %d (capng_change_id %d): "
		       "start virtiod as root to use --user/--group",
		       uid, gid, r);
	return r < 0 ? -EPERM : 0;
}

/* The roles of this process: its loop's, and the control thread. */
static void log_profiles(enum vd_sandbox_role loop, const char *who)
{
	unsigned roles = closure(1u << loop) | 1u << VD_SANDBOX_CONTROL;

	for (unsigned role = 0; role < VD_SANDBOX_ROLES; role++) {
		char from[128] = "";
		size_t at = 0;
		unsigned n = 0;
		bool loose = false;

		if (!(roles & (1u << role)))
			continue;
		for (unsigned i = 0; i < sandbox_table_len; i++) {
			const struct sandbox_row *row = &sandbox_table[i];

			if (row->role != role || !profile_on(row->profile))
				continue;
			for (const char *const *c = row->calls; c && *c; c++)
				n++;
			loose |= row->loose;
			if (row->profile && at < sizeof(from))
				at += (size_t)snprintf(from + at,
						       sizeof(from) - at,
						       " +%s", row->profile);
		}
		vd_info(who, "sandbox: %s role: %u calls%s%s",
			sandbox_role_name[role], n, from,
			loose ? " (loose: a store library's threads)" : "");
	}
}

static int seal(enum vd_sandbox_role loop, const char *who)
{
	int r;

	if (cfg.set_user || cfg.set_group)
		r = change_id(who);
	else
		r = drop_caps();
	if (r < 0) {
		if (!cfg.set_user && !cfg.set_group)
			vd_err(who, "sandbox: cannot drop capabilities");
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		vd_err(who, "sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(-r));
		return r;
	}
	if (cfg.mode == SANDBOX_NONE) {
		vd_info(who, "sandbox: no system call filter (--sandbox=none)");
		return 0;
	}
	r = load((1u << VD_SANDBOX_ROLES) - 1, true);
	if (r < 0) {
		vd_err(who,
		       "sandbox: cannot install the seccomp filter: %s; "
		       "--sandbox=none runs without it",
		       strerror(-r));
		return r;
	}
	log_profiles(loop, who);
	return 0;
}

static int enter(enum vd_sandbox_role role, const char *who)
{
	bool loop = role == VD_SANDBOX_VU_LOOP || role == VD_SANDBOX_XEN_LOOP;
	int r = 0;

	if (entered)
		return 0;
	pthread_mutex_lock(&seal_lock);
	if (loop && !sealed) {
		seal_err = seal(role, who);
		sealed = true;
	}
	r = sealed ? seal_err : 0;
	pthread_mutex_unlock(&seal_lock);
	/* Started before the end of start-up (the control thread): it
	 * takes its role at its next call. */
	if (!sealed || r < 0)
		return r;
	/* A thread older than the seal kept its own capabilities, and
	 * without a filter (whose TSYNC carries it) its privileges. */
	if (!loop && !cfg.set_user)
		drop_thread_caps();
	if (!loop && cfg.mode == SANDBOX_NONE)
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (cfg.mode == SANDBOX_SECCOMP) {
		r = load(closure(1u << role), false);
		if (r < 0) {
			/* The process filter still holds; say so loudly. */
			vd_err(who, "sandbox: %s role filter: %s",
			       sandbox_role_name[role], strerror(-r));
			return r;
		}
	}
	entered = true;
	return 0;
}

static void need(const char *profile)
{
	pthread_mutex_lock(&seal_lock);
	if (!sealed && n_needed < MAX_NEEDED)
		needed[n_needed++] = profile;
	pthread_mutex_unlock(&seal_lock);
}

static const struct vd_sandbox_hooks hooks = {.enter = enter, .need = need};

void sandbox_setup(const struct sandbox_config *c)
{
	cfg = *c;
	vd_sandbox_set_hooks(&hooks);
}

void sandbox_set_device(const char *type)
{
	cfg.device = type;
}
