/* The memory table: SET_MEM_TABLE, GET_MAX_MEM_SLOTS, ADD/REM_MEM_REG
 * (mem_table.c). */
#ifndef VIRTIOD_SHIM_VU_MEM_TABLE_H
#define VIRTIOD_SHIM_VU_MEM_TABLE_H

#include "messages.h"
#include "vu_state.h"

vu_handler vu_set_mem_table, vu_get_max_mem_slots, vu_add_mem_reg,
	vu_rem_mem_reg;

/* Forget every region (the rings no longer run). */
void vu_mem_clear(struct vu_backend *b);

#endif
