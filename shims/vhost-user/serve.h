/* A backend and its one connection (serve.c). The daemon's serve loop is
 * built from these; so is the fuzz target (tests/fuzz/fuzz_vhost_user.c). */
#ifndef VIRTIOD_SHIM_VU_SERVE_H
#define VIRTIOD_SHIM_VU_SERVE_H

#include "virtiod/device.h"

#include "vu_state.h"

/* A backend for the model, which it takes over: destroyed by
 * vu_backend_free, or at once if this fails (NULL, logged). */
struct vu_backend *vu_backend_new(const char *who, struct vd_model *model);
void vu_backend_free(struct vu_backend *b);
/* Serve a frontend connected on fd (owned from now on). */
void vu_connection_open(struct vu_backend *b, int fd);
/* Receive one message on the connection and act on it (replies sent): 0,
 * or <0 when the connection must be closed (logged; -ECONNRESET: the
 * frontend closed it). */
int vu_serve_message(struct vu_backend *b);
/* Close the connection; the device returns to a fresh connection's state. */
void vu_disconnect(struct vu_backend *b, const char *why);

#endif
