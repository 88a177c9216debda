/* The vhost-user wire format as this backend reads and writes it (QEMU's
 * docs/interop/vhost-user.rst): header, request ids, protocol features,
 * payloads, and the inflight area's layout. Only what is on the wire or in
 * shared memory; the kernel's linux/vhost_types.h supplies the vring state
 * and address payloads, VHOST_F_LOG_ALL and VHOST_VRING_F_LOG. */
#ifndef VIRTIOD_SHIM_VU_WIRE_H
#define VIRTIOD_SHIM_VU_WIRE_H

#include <linux/vhost_types.h>
#include <stddef.h>
#include <stdint.h>

#include "virtiod/inflight.h"

/* "Header": version in the low 2 bits, then REPLY, NEED_REPLY */
#define VU_VERSION	     0x1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY	     (1u << 2)
#define VU_FLAG_NEED_REPLY   (1u << 3)

/* "Communication": VHOST_USER_F_PROTOCOL_FEATURES is feature bit 30. */
#define VU_F_PROTOCOL_FEATURES 30

/* "Protocol features": the bits this backend knows. */
enum vu_protocol_feature {
	VU_PF_MQ = 0,
	VU_PF_LOG_SHMFD = 1,
	VU_PF_REPLY_ACK = 3,
	VU_PF_BACKEND_REQ = 5,
	VU_PF_CONFIG = 9,
	VU_PF_INFLIGHT_SHMFD = 12,
	VU_PF_RESET_DEVICE = 13,
	VU_PF_CONFIGURE_MEM_SLOTS = 15,
	VU_PF_STATUS = 16,
};

/* "Front-end message types": the requests this backend serves. */
enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SET_BACKEND_REQ_FD = 21,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_SET_STATUS = 39,
	VU_GET_STATUS = 40,
};

/* "Back-end message types" (sent on the backend request channel). */
#define VU_BACKEND_CONFIG_CHANGE_MSG 2

#define VU_MAX_FDS		 8 /* VHOST_MEMORY_BASELINE_NREGIONS: fds per message */
#define VU_MAX_CONFIG_SIZE	 256
#define VU_VRING_IDX_MASK	 0xffu	   /* SET_VRING_KICK/CALL/ERR payload */
#define VU_VRING_NOFD_MASK	 (1u << 8) /* "invalid FD flag" */
#define VU_LOG_PAGE		 0x1000u   /* "Migration": VHOST_LOG_PAGE */
#define VU_CONFIG_TYPE_MIGRATION 1	   /* SET_CONFIG flags */

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

/* "Memory regions description" */
struct vu_region_wire {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_mem_table_wire {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region_wire regions[VU_MAX_FDS];
};

/* "Single memory region description" */
struct vu_mem_reg_wire {
	uint64_t padding;
	struct vu_region_wire region;
};

/* "Log description" */
struct vu_log_wire {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

/* "Virtio device config space" */
struct vu_config_wire {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VU_MAX_CONFIG_SIZE];
};
#define VU_CONFIG_HDR_SIZE offsetof(struct vu_config_wire, payload)

/* "Inflight description" (24 bytes with C padding, as QEMU sends it) */
struct vu_inflight_wire {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

union vu_payload {
	uint64_t u64;
	struct vhost_vring_state state;
	struct vhost_vring_addr addr;
	struct vu_mem_table_wire mem;
	struct vu_mem_reg_wire memreg;
	struct vu_log_wire log;
	struct vu_config_wire config;
	struct vu_inflight_wire inflight;
	uint8_t raw[sizeof(struct vu_config_wire)];
};

#define VU_MAX_PAYLOAD sizeof(union vu_payload)

/* A request as received; fds are owned until a handler takes one (sets it
 * to -1), the rest are closed by the dispatcher. */
struct vu_msg {
	struct vu_hdr hdr;
	union vu_payload p;
	int fds[VU_MAX_FDS];
	unsigned n_fds;
};

/* A reply to send. */
struct vu_reply {
	struct vu_hdr hdr;
	union vu_payload p;
	int fds[1];
	unsigned n_fds;
};

/* The inflight area's per-queue regions: virtiod/inflight.h. */

#endif
