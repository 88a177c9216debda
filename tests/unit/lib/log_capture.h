/* Capture what the daemon logs to stderr, for tests that count log lines
 * (rate limits on lines a driver can trigger). Test-only. */
#ifndef VIRTIOD_TEST_LOG_CAPTURE_H
#define VIRTIOD_TEST_LOG_CAPTURE_H

#include <stddef.h>

/* From now on stderr goes to a memory file. */
void lc_begin(void);
/* Restores stderr and returns what was logged meanwhile (NUL-terminated,
 * valid until the next lc_begin). */
const char *lc_end(void);
/* Lines of `text` that contain `needle`. */
unsigned lc_count(const char *text, const char *needle);

#endif
