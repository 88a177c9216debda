/* Logging with levels to stderr or syslog. Every line names who it is about
 * ("virtiod[blk0 q1]: ..."); data-path lines go through a rate limit. */
#ifndef VIRTIOD_LOG_H
#define VIRTIOD_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum vd_log_level {
	VD_LOG_ERR = 0,
	VD_LOG_WARN,
	VD_LOG_INFO,
	VD_LOG_DEBUG,
};

/* Called once from main; before that, logging goes to stderr at INFO. */
void vd_log_init(enum vd_log_level level, bool use_syslog);
/* Prefix stderr lines with a UTC timestamp (syslog adds its own). */
void vd_log_set_timestamps(bool on);
void vd_log_set_level(enum vd_log_level level);
enum vd_log_level vd_log_get_level(void);
/* "err", "warn", "info", "debug" (any case; also "error", "warning") or
 * 0..3; returns 0 or -EINVAL. */
int vd_log_level_parse(const char *s, enum vd_log_level *out);

/* who: a short subject such as "blk0 q1", or NULL for the daemon itself. */
void vd_log(enum vd_log_level level, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define vd_err(who, ...)  vd_log(VD_LOG_ERR, who, __VA_ARGS__)
#define vd_warn(who, ...) vd_log(VD_LOG_WARN, who, __VA_ARGS__)
#define vd_info(who, ...) vd_log(VD_LOG_INFO, who, __VA_ARGS__)
#define vd_debug(who, ...)                                                     \
	do {                                                                   \
		if (vd_log_get_level() >= VD_LOG_DEBUG)                        \
			vd_log(VD_LOG_DEBUG, who, __VA_ARGS__);                \
	} while (0)

/* At most `burst` lines per `interval_ms`; the rest are counted and reported
 * as "N similar messages suppressed" with the next line that passes. Owned by
 * one thread; zero-initialise, then set burst and interval_ms. */
struct vd_ratelimit {
	unsigned burst;
	unsigned interval_ms;
	uint64_t window_start_ns; /* CLOCK_MONOTONIC */
	unsigned printed;	  /* lines passed in this window */
	unsigned suppressed;	  /* refused since the last report */
};

#define VD_RATELIMIT_INIT                                                      \
	{                                                                      \
		.burst = 10, .interval_ms = 5000                               \
	}

/* Returns true when a line may be printed now. */
bool vd_ratelimit_ok(struct vd_ratelimit *rl);

/* vd_log behind a rate limit; the line that passes after a suppressed run
 * ends with "(N similar messages suppressed)" and clears the count. */
void vd_log_ratelimited(struct vd_ratelimit *rl, enum vd_log_level level,
			const char *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
