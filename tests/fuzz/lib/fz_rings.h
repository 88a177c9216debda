/* fuzz_vhost_user's ring actions (lib/fz_rings.c), each reading its
 * parameters from the input. */
#ifndef VIRTIOD_FUZZ_FZ_RINGS_H
#define VIRTIOD_FUZZ_FZ_RINGS_H

#include "fz_frontend.h"

/* One SET_VRING_NUM/ADDR/BASE/KICK/CALL/ERR/ENABLE or GET_VRING_BASE. */
void fz_op_vring(struct fz *z, struct input *in);
/* A blk request made available on a ring, and a kick. */
void fz_op_request(struct fz *z, struct input *in);
/* A dead daemon's records in the inflight area, then maybe a restart. */
void fz_op_forge_inflight(struct fz *z, struct input *in);

#endif
