/* Log lines to stderr or syslog. Each stderr line goes out in one write()
 * from a stack buffer, so threads never interleave; never allocates. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "virtiod/log.h"

/* At most PIPE_BUF, so one write() to a pipe is atomic too. */
#define LOG_LINE_MAX 1024

static atomic_int log_level = VD_LOG_INFO;
static atomic_bool log_syslog;
static atomic_bool log_timestamps;

void vd_log_init(enum vd_log_level level, bool use_syslog)
{
	atomic_store(&log_level, level);
	if (use_syslog)
		openlog("virtiod", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	atomic_store(&log_syslog, use_syslog);
}

void vd_log_set_level(enum vd_log_level level)
{
	atomic_store(&log_level, level);
}

enum vd_log_level vd_log_get_level(void)
{
	return (enum vd_log_level)atomic_load_explicit(&log_level,
						       memory_order_relaxed);
}

void vd_log_set_timestamps(bool on)
{
	atomic_store(&log_timestamps, on);
}

int vd_log_level_parse(const char *s, enum vd_log_level *out)
{
	static const struct {
		const char *name;
		enum vd_log_level level;
	} names[] = {
		{"err", VD_LOG_ERR},   {"error", VD_LOG_ERR},
		{"warn", VD_LOG_WARN}, {"warning", VD_LOG_WARN},
		{"info", VD_LOG_INFO}, {"debug", VD_LOG_DEBUG},
		{"0", VD_LOG_ERR},     {"1", VD_LOG_WARN},
		{"2", VD_LOG_INFO},    {"3", VD_LOG_DEBUG},
	};

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

/* Appends to buf[*len..LOG_LINE_MAX-1); on truncation *len stays at the
 * limit and the line is marked later. */
static void append(char *buf, size_t *len, const char *fmt, va_list ap)
{
	size_t room = LOG_LINE_MAX - 1 - *len;
	int n = vsnprintf(buf + *len, room + 1, fmt, ap);

	if (n < 0)
		return;
	*len += (size_t)n < room ? (size_t)n : room;
}

static void appendf(char *buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t *len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	append(buf, len, fmt, ap);
	va_end(ap);
}

static void emit(enum vd_log_level level, const char *who, unsigned suppressed,
		 const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	bool to_syslog = atomic_load(&log_syslog);
	char buf[LOG_LINE_MAX];
	size_t len = 0;
	int saved_errno = errno; /* callers may log between a failure and
				    reading errno */

	buf[0] = '\0';
	if (!to_syslog && atomic_load(&log_timestamps)) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		appendf(buf, &len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
			tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	}
	if (to_syslog && who)
		appendf(buf, &len, "[%s] ", who);
	else if (who)
		appendf(buf, &len, "virtiod[%s]: ", who);
	else if (!to_syslog)
		appendf(buf, &len, "virtiod: ");
	append(buf, &len, fmt, ap);
	if (suppressed)
		appendf(buf, &len, " (%u similar messages suppressed)",
			suppressed);
	if (len == LOG_LINE_MAX - 1)
		memcpy(buf + len - 3, "...", 3);

	if (to_syslog) {
		syslog(prio[level <= VD_LOG_DEBUG ? level : VD_LOG_DEBUG], "%s",
		       buf);
	} else {
		buf[len++] = '\n';
		while (write(STDERR_FILENO, buf, len) < 0 && errno == EINTR)
			;
	}
	errno = saved_errno;
}

void vd_log(enum vd_log_level level, const char *who, const char *fmt, ...)
{
	va_list ap;

	if (level > vd_log_get_level())
		return;
	va_start(ap, fmt);
	emit(level, who, 0, fmt, ap);
	va_end(ap);
}

bool vd_ratelimit_ok(struct vd_ratelimit *rl)
{
	struct timespec ts;
	uint64_t now;

	/* CLOCK_MONOTONIC is served by the vDSO: no system call. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (now - rl->window_start_ns >= (uint64_t)rl->interval_ms * 1000000u) {
		rl->window_start_ns = now;
		rl->printed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}

void vd_log_ratelimited(struct vd_ratelimit *rl, enum vd_log_level level,
			const char *who, const char *fmt, ...)
{
	va_list ap;

	if (level > vd_log_get_level() || !vd_ratelimit_ok(rl))
		return;
	va_start(ap, fmt);
	emit(level, who, rl->suppressed, fmt, ap);
	va_end(ap);
	rl->suppressed = 0;
}
