/* The request table and the dispatcher (messages.c), and the shape of a
 * request's handler: it runs only once the dispatcher's checks passed. */
#ifndef VIRTIOD_SHIM_VU_MESSAGES_H
#define VIRTIOD_SHIM_VU_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

#include "vu_state.h"

/* Handler results besides 0: the request was understood but refused (an
 * operation the device says no to): an error reply if the frontend asked
 * for one, the connection stays. Negative errno: a protocol violation. */
#define VU_REFUSED 1

/* One request's handler (declared with this type in each file's header).
 * 0, VU_REFUSED, or a negative errno, with the reason in why. Fills r for
 * requests that have a reply of their own. */
typedef int vu_handler(struct vu_backend *b, struct vu_msg *m,
		       struct vu_reply *r, char *why, size_t whylen);

const char *vu_request_name(uint32_t request);
/* Validate and run one received message; sends the replies. 0, or <0 when
 * the connection must be closed (already logged). */
int vu_dispatch(struct vu_backend *b, struct vu_msg *m);

#endif
