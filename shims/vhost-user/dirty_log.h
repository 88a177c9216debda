/* SET_LOG_BASE and marking pages for live migration (dirty_log.c). */
#ifndef VIRTIOD_SHIM_VU_DIRTY_LOG_H
#define VIRTIOD_SHIM_VU_DIRTY_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "messages.h"
#include "vu_state.h"

vu_handler vu_set_log_base;

void vu_log_unmap(struct vu_backend *b);
bool vu_log_active(const struct vu_backend *b);
/* The queue thread's log_write hook: mark [gpa, gpa+len). */
void vu_log_write(void *ctx, uint64_t gpa, uint64_t len);

#endif
