/* Shared by the validation suites: one daemon per group, started with
 * two queues of 256, and the checks every refusal ends with. */
#ifndef VIRTIOD_TESTS_VALIDATION_H
#define VIRTIOD_TESTS_VALIDATION_H

#include "vu_test.h"

struct vstate {
	struct daemon d;
	int idle_fds; /* the daemon's fds with no frontend */
	struct vuf_conn f;
	struct vuf_mem m;
};

extern struct vstate *vs;

/* Levels of preparation before the bad message. */
enum prep {
	RAW,	   /* connected, nothing sent */
	HANDSHAKE, /* protocol features (all), owner */
	MEMORY,	   /* + features and a 4 MiB memory table */
};

int validation_setup(void **state);
int validation_teardown(void **state);
int validation_test_teardown(void **state);
void prepare(enum prep p);
/* After any refusal: alive, no leaked fd, a new frontend is served. */
void daemon_still_serves(void);
/* Send, expect the connection closed and the rule in the log. */
void refused(uint32_t req, uint32_t flags, const void *p, uint32_t size,
	     const int *fds, unsigned n_fds, const char *name,
	     const char *rule);
/* With NEED_REPLY: an error reply, and the connection stays usable. */
void refused_with_reply(uint32_t req, const void *p, uint32_t size,
			const int *fds, unsigned n_fds, const char *name,
			const char *rule);
int memfd_of(size_t size);

#endif
