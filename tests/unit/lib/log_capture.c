/* stderr into a memfd and back, and counting matching lines. A memfd never
 * blocks the writer, so no reader thread is needed. Test-only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log_capture.h"

static int saved = -1, mfd = -1;
static char *text;

void lc_begin(void)
{
	fflush(stderr);
	free(text);
	text = NULL;
	mfd = memfd_create("log-capture", MFD_CLOEXEC);
	saved = dup(STDERR_FILENO);
	if (mfd < 0 || saved < 0 || dup2(mfd, STDERR_FILENO) < 0)
		abort();
}

const char *lc_end(void)
{
	off_t len;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	len = lseek(mfd, 0, SEEK_END);
	text = malloc((size_t)len + 1);
	if (!text || pread(mfd, text, (size_t)len, 0) != len)
		abort();
	text[len] = '\0';
	close(mfd);
	mfd = saved = -1;
	return text;
}

unsigned lc_count(const char *t, const char *needle)
{
	unsigned n = 0;

	while (t && *t) {
		const char *eol = strchr(t, '\n');
		size_t len = eol ? (size_t)(eol - t) : strlen(t);
		const char *hit = strstr(t, needle);

		if (hit && hit < t + len)
			n++;
		t += len + (eol != NULL);
	}
	return n;
}
