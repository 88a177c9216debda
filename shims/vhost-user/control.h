/* Device-level requests and the backend request channel (control.c). */
#ifndef VIRTIOD_SHIM_VU_CONTROL_H
#define VIRTIOD_SHIM_VU_CONTROL_H

#include <stdbool.h>

#include "messages.h"
#include "vu_state.h"

/* What this backend offers ("Protocol features"). */
#define VU_PROTOCOL_FEATURES                                                   \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_LOG_SHMFD) |                      \
	 (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_BACKEND_REQ) |             \
	 (1ull << VU_PF_CONFIG) | (1ull << VU_PF_INFLIGHT_SHMFD) |             \
	 (1ull << VU_PF_RESET_DEVICE) | (1ull << VU_PF_CONFIGURE_MEM_SLOTS) |  \
	 (1ull << VU_PF_STATUS))

vu_handler vu_get_features, vu_set_features, vu_get_protocol_features,
	vu_set_protocol_features, vu_set_owner, vu_reset_owner,
	vu_get_queue_num, vu_get_config, vu_set_config, vu_set_status,
	vu_get_status, vu_reset_device, vu_set_backend_req_fd;

/* The core's notify_config (any thread): a config-change message on the
 * backend channel, when negotiated. */
void vu_notify_config(void *shim);
/* Back to the state of a fresh connection (after a disconnect). */
void vu_connection_reset(struct vu_backend *b);
bool vu_has_protocol(const struct vu_backend *b, unsigned bit);

#endif
