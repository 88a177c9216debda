/* The vhost-user request table and one validator per wire structure: no
 * handler runs before header, size, fd count, feature gate and payload are
 * checked, and no fd a frontend sends is ever leaked. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vu_priv.h"

typedef int (*vu_handler)(struct vu_backend *b, struct vu_msg *m,
			  struct vu_reply *r, char *why, size_t whylen);
typedef int (*vu_validator)(const struct vu_backend *b, const struct vu_msg *m,
			    char *why, size_t whylen);

/* Gate values besides a protocol feature bit. */
#define GATE_NONE     -1
#define GATE_PROTOCOL -2 /* SET_PROTOCOL_FEATURES must have been received */

struct vu_rule {
	const char *name;
	vu_handler fn;
	uint32_t min_size, max_size; /* payload bytes; equal: exact */
	uint8_t min_fds, max_fds;
	int8_t gate; /* protocol feature bit the request needs, or GATE_* */
	bool reply;  /* the request has its own reply ("Communication") */
	vu_validator check; /* the payload's wire structure, or NULL */
};

/* ------------------------------------------------------------ validators */

static int bad(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int check_index(const struct vu_backend *b, uint32_t index, char *why,
		       size_t whylen)
{
	if (index >= b->num_queues)
		return bad(why, whylen, "queue index %u, device has %u queues",
			   index, b->num_queues);
	return 0;
}

/* "A vring state description" */
static int check_vring_state(const struct vu_backend *b, const struct vu_msg *m,
			     char *why, size_t whylen)
{
	return check_index(b, m->p.state.index, why, whylen);
}

/* "A vring address description" */
static int check_vring_addr(const struct vu_backend *b, const struct vu_msg *m,
			    char *why, size_t whylen)
{
	const struct vhost_vring_addr *a = &m->p.addr;

	if (a->flags & ~(1u << VHOST_VRING_F_LOG))
		return bad(why, whylen, "unknown vring flags 0x%x", a->flags);
	return check_index(b, a->index, why, whylen);
}

/* The u64 of SET_VRING_KICK/CALL/ERR: index in bits 0-7, bit 8 "no fd",
 * which must agree with the fds attached. */
static int check_vring_file(const struct vu_backend *b, const struct vu_msg *m,
			    char *why, size_t whylen)
{
	uint64_t v = m->p.u64;
	bool nofd = v & VU_VRING_NOFD_MASK;

	if (v & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD_MASK))
		return bad(why, whylen, "reserved bits set in 0x%" PRIx64, v);
	if (nofd && m->n_fds)
		return bad(why, whylen, "invalid-fd flag set but an fd sent");
	if (!nofd && !m->n_fds)
		return bad(why, whylen, "no fd and no invalid-fd flag");
	return check_index(b, (uint32_t)(v & VU_VRING_IDX_MASK), why, whylen);
}

/* One region of a memory table or ADD/REM_MEM_REG. */
static int check_region(const struct vu_region_wire *r, unsigned i, char *why,
			size_t whylen)
{
	uint64_t end;

	if (r->size == 0)
		return bad(why, whylen, "region %u: size 0", i);
	if (__builtin_add_overflow(r->gpa, r->size, &end))
		return bad(why, whylen, "region %u: guest address + size wraps",
			   i);
	if (__builtin_add_overflow(r->uaddr, r->size, &end))
		return bad(why, whylen, "region %u: user address + size wraps",
			   i);
	if (__builtin_add_overflow(r->mmap_offset, r->size, &end))
		return bad(why, whylen, "region %u: mmap offset + size wraps",
			   i);
	return 0;
}

/* "Memory regions description": the count fixes both the size and the
 * number of fds (one per region, in order). */
static int check_mem_table(const struct vu_backend *b, const struct vu_msg *m,
			   char *why, size_t whylen)
{
	uint32_t n = m->p.mem.nregions;

	(void)b;
	if (n > VU_MAX_FDS)
		return bad(why, whylen, "%u regions, at most %u", n,
			   VU_MAX_FDS);
	if (m->hdr.size != 8 + n * sizeof(struct vu_region_wire))
		return bad(why, whylen,
			   "%u regions need %zu payload bytes, got %u", n,
			   8 + n * sizeof(struct vu_region_wire), m->hdr.size);
	if (m->n_fds != n)
		return bad(why, whylen, "%u regions but %u fds", n, m->n_fds);
	for (uint32_t i = 0; i < n; i++)
		if (check_region(&m->p.mem.regions[i], i, why, whylen))
			return -EINVAL;
	return 0;
}

/* "Single memory region description" */
static int check_mem_reg(const struct vu_backend *b, const struct vu_msg *m,
			 char *why, size_t whylen)
{
	(void)b;
	return check_region(&m->p.memreg.region, 0, why, whylen);
}

/* "Log description" */
static int check_log(const struct vu_backend *b, const struct vu_msg *m,
		     char *why, size_t whylen)
{
	uint64_t end;

	(void)b;
	if (m->p.log.mmap_size == 0)
		return bad(why, whylen, "log size 0");
	if (__builtin_add_overflow(m->p.log.mmap_offset, m->p.log.mmap_size,
				   &end))
		return bad(why, whylen, "log offset + size wraps");
	return 0;
}

/* "Virtio device config space": the header's size field must match the
 * payload the message carries. */
static int check_config(const struct vu_backend *b, const struct vu_msg *m,
			char *why, size_t whylen)
{
	const struct vu_config_wire *c = &m->p.config;

	(void)b;
	if (c->size > VU_MAX_CONFIG_SIZE)
		return bad(why, whylen, "config size %u over %u", c->size,
			   VU_MAX_CONFIG_SIZE);
	if (m->hdr.size != VU_CONFIG_HDR_SIZE + c->size)
		return bad(why, whylen,
			   "config size %u but payload of %u bytes", c->size,
			   m->hdr.size);
	if (c->flags > VU_CONFIG_TYPE_MIGRATION)
		return bad(why, whylen, "unknown config flags %u", c->flags);
	return 0;
}

/* "Inflight description" */
static int check_inflight(const struct vu_backend *b, const struct vu_msg *m,
			  char *why, size_t whylen)
{
	const struct vu_inflight_wire *in = &m->p.inflight;
	uint64_t end;

	if (in->num_queues == 0 || in->num_queues > b->num_queues)
		return bad(why, whylen, "%u queues, device has %u",
			   in->num_queues, b->num_queues);
	if (in->queue_size == 0 || in->queue_size > b->max_queue_size)
		return bad(why, whylen, "queue size %u outside 1..%u",
			   in->queue_size, b->max_queue_size);
	if (m->hdr.request == VU_SET_INFLIGHT_FD &&
	    __builtin_add_overflow(in->mmap_offset, in->mmap_size, &end))
		return bad(why, whylen, "mmap offset + size wraps");
	return 0;
}

/* SET_STATUS: a virtio status byte. */
static int check_status(const struct vu_backend *b, const struct vu_msg *m,
			char *why, size_t whylen)
{
	(void)b;
	if (m->p.u64 > 0xff)
		return bad(why, whylen, "status 0x%" PRIx64 " is not a byte",
			   m->p.u64);
	return 0;
}

/* ------------------------------------------------------------------ table */

#define U64	 sizeof(uint64_t)
#define STATE	 sizeof(struct vhost_vring_state)
#define ADDR	 sizeof(struct vhost_vring_addr)
#define MEMREG	 sizeof(struct vu_mem_reg_wire)
#define INFLIGHT sizeof(struct vu_inflight_wire)

/* vhost-user.rst "Front-end message types": the requests this backend
 * serves. Anything else is refused by the dispatcher. */
static const struct vu_rule rules[] = {
	[VU_GET_FEATURES] = {"GET_FEATURES", vu_get_features, 0, 0, 0, 0,
			     GATE_NONE, true, NULL},
	[VU_SET_FEATURES] = {"SET_FEATURES", vu_set_features, U64, U64, 0, 0,
			     GATE_NONE, false, NULL},
	[VU_SET_OWNER] = {"SET_OWNER", vu_set_owner, 0, 0, 0, 0, GATE_NONE,
			  false, NULL},
	[VU_RESET_OWNER] = {"RESET_OWNER", vu_reset_owner, 0, 0, 0, 0,
			    GATE_NONE, false, NULL},
	[VU_SET_MEM_TABLE] = {"SET_MEM_TABLE", vu_set_mem_table, 8,
			      sizeof(struct vu_mem_table_wire), 0, VU_MAX_FDS,
			      GATE_NONE, false, check_mem_table},
	[VU_SET_LOG_BASE] = {"SET_LOG_BASE", vu_set_log_base,
			     sizeof(struct vu_log_wire),
			     sizeof(struct vu_log_wire), 1, 1, VU_PF_LOG_SHMFD,
			     true, check_log},
	[VU_SET_VRING_NUM] = {"SET_VRING_NUM", vu_set_vring_num, STATE, STATE,
			      0, 0, GATE_NONE, false, check_vring_state},
	[VU_SET_VRING_ADDR] = {"SET_VRING_ADDR", vu_set_vring_addr, ADDR, ADDR,
			       0, 0, GATE_NONE, false, check_vring_addr},
	[VU_SET_VRING_BASE] = {"SET_VRING_BASE", vu_set_vring_base, STATE,
			       STATE, 0, 0, GATE_NONE, false,
			       check_vring_state},
	[VU_GET_VRING_BASE] = {"GET_VRING_BASE", vu_get_vring_base, STATE,
			       STATE, 0, 0, GATE_NONE, true, check_vring_state},
	[VU_SET_VRING_KICK] = {"SET_VRING_KICK", vu_set_vring_kick, U64, U64, 0,
			       1, GATE_NONE, false, check_vring_file},
	[VU_SET_VRING_CALL] = {"SET_VRING_CALL", vu_set_vring_call, U64, U64, 0,
			       1, GATE_NONE, false, check_vring_file},
	[VU_SET_VRING_ERR] = {"SET_VRING_ERR", vu_set_vring_err, U64, U64, 0, 1,
			      GATE_NONE, false, check_vring_file},
	[VU_GET_PROTOCOL_FEATURES] = {"GET_PROTOCOL_FEATURES",
				      vu_get_protocol_features, 0, 0, 0, 0,
				      GATE_NONE, true, NULL},
	[VU_SET_PROTOCOL_FEATURES] = {"SET_PROTOCOL_FEATURES",
				      vu_set_protocol_features, U64, U64, 0, 0,
				      GATE_NONE, false, NULL},
	[VU_GET_QUEUE_NUM] = {"GET_QUEUE_NUM", vu_get_queue_num, 0, 0, 0, 0,
			      VU_PF_MQ, true, NULL},
	[VU_SET_VRING_ENABLE] = {"SET_VRING_ENABLE", vu_set_vring_enable, STATE,
				 STATE, 0, 0, GATE_PROTOCOL, false,
				 check_vring_state},
	[VU_SET_BACKEND_REQ_FD] = {"SET_BACKEND_REQ_FD", vu_set_backend_req_fd,
				   0, 0, 1, 1, VU_PF_BACKEND_REQ, false, NULL},
	[VU_GET_CONFIG] = {"GET_CONFIG", vu_get_config, VU_CONFIG_HDR_SIZE,
			   sizeof(struct vu_config_wire), 0, 0, VU_PF_CONFIG,
			   true, check_config},
	[VU_SET_CONFIG] = {"SET_CONFIG", vu_set_config, VU_CONFIG_HDR_SIZE,
			   sizeof(struct vu_config_wire), 0, 0, VU_PF_CONFIG,
			   false, check_config},
	[VU_GET_INFLIGHT_FD] = {"GET_INFLIGHT_FD", vu_get_inflight_fd, INFLIGHT,
				INFLIGHT, 0, 0, VU_PF_INFLIGHT_SHMFD, true,
				check_inflight},
	[VU_SET_INFLIGHT_FD] = {"SET_INFLIGHT_FD", vu_set_inflight_fd, INFLIGHT,
				INFLIGHT, 1, 1, VU_PF_INFLIGHT_SHMFD, false,
				check_inflight},
	[VU_RESET_DEVICE] = {"RESET_DEVICE", vu_reset_device, 0, 0, 0, 0,
			     VU_PF_RESET_DEVICE, false, NULL},
	[VU_GET_MAX_MEM_SLOTS] = {"GET_MAX_MEM_SLOTS", vu_get_max_mem_slots, 0,
				  0, 0, 0, VU_PF_CONFIGURE_MEM_SLOTS, true,
				  NULL},
	/* REM_MEM_REG: "the back-end MAY accept messages with one file
	 * descriptor ... MUST close it" */
	[VU_ADD_MEM_REG] = {"ADD_MEM_REG", vu_add_mem_reg, MEMREG, MEMREG, 1, 1,
			    VU_PF_CONFIGURE_MEM_SLOTS, false, check_mem_reg},
	[VU_REM_MEM_REG] = {"REM_MEM_REG", vu_rem_mem_reg, MEMREG, MEMREG, 0, 1,
			    VU_PF_CONFIGURE_MEM_SLOTS, false, check_mem_reg},
	[VU_SET_STATUS] = {"SET_STATUS", vu_set_status, U64, U64, 0, 0,
			   VU_PF_STATUS, false, check_status},
	[VU_GET_STATUS] = {"GET_STATUS", vu_get_status, 0, 0, 0, 0,
			   VU_PF_STATUS, true, NULL},
};

static const struct vu_rule *rule_of(uint32_t request)
{
	if (request >= sizeof(rules) / sizeof(rules[0]) || !rules[request].name)
		return NULL;
	return &rules[request];
}

const char *vu_request_name(uint32_t request)
{
	const struct vu_rule *rule = rule_of(request);

	return rule ? rule->name : "unknown request";
}

/* --------------------------------------------------------------- dispatch */

/* The checks the table expresses; a failure here means the message cannot
 * be trusted at all, so the connection is closed. */
static int check_framing(const struct vu_backend *b, const struct vu_msg *m,
			 const struct vu_rule *rule, char *why, size_t whylen)
{
	uint32_t flags = m->hdr.flags;

	if ((flags & VU_FLAG_VERSION_MASK) != VU_VERSION)
		return bad(why, whylen, "header version %u, expected %u",
			   flags & VU_FLAG_VERSION_MASK, VU_VERSION);
	if (flags & VU_FLAG_REPLY)
		return bad(why, whylen, "reply flag set on a request");
	if (flags & ~(VU_FLAG_VERSION_MASK | VU_FLAG_NEED_REPLY))
		return bad(why, whylen, "unknown header flags 0x%x", flags);
	if (!rule)
		return bad(why, whylen, "request %u is not supported",
			   m->hdr.request);
	if (m->hdr.size < rule->min_size || m->hdr.size > rule->max_size) {
		if (rule->min_size == rule->max_size)
			return bad(why, whylen,
				   "payload of %u bytes, expected %u",
				   m->hdr.size, rule->min_size);
		return bad(why, whylen, "payload of %u bytes, expected %u..%u",
			   m->hdr.size, rule->min_size, rule->max_size);
	}
	if (m->n_fds < rule->min_fds || m->n_fds > rule->max_fds)
		return bad(why, whylen, "%u fds attached, expected %u..%u",
			   m->n_fds, rule->min_fds, rule->max_fds);
	if (rule->gate == GATE_PROTOCOL &&
	    !(b->features & (1ull << VU_F_PROTOCOL_FEATURES)) &&
	    !b->protocol_set)
		return bad(why, whylen, "protocol features not negotiated");
	if (rule->gate >= 0 && !vu_has_protocol(b, (unsigned)rule->gate))
		return bad(why, whylen, "protocol feature %d not negotiated",
			   rule->gate);
	if ((flags & VU_FLAG_NEED_REPLY) && !rule->reply &&
	    !vu_has_protocol(b, VU_PF_REPLY_ACK))
		return bad(why, whylen, "need_reply without REPLY_ACK");
	return 0;
}

static void reply_init(struct vu_reply *r, uint32_t request)
{
	memset(&r->hdr, 0, sizeof(r->hdr));
	r->hdr.request = request;
	r->hdr.flags = VU_VERSION | VU_FLAG_REPLY;
	r->n_fds = 0;
	r->fds[0] = -1;
}

/* REPLY_ACK ("VHOST_USER_PROTOCOL_F_REPLY_ACK"): u64 0 on success. */
static int send_ack(struct vu_backend *b, uint32_t request, bool ok)
{
	struct vu_reply *r = &b->reply;

	reply_init(r, request);
	r->hdr.size = sizeof(uint64_t);
	r->p.u64 = ok ? 0 : 1;
	return vu_send_reply(b, r);
}

int vu_dispatch(struct vu_backend *b, struct vu_msg *m)
{
	const struct vu_rule *rule = rule_of(m->hdr.request);
	const char *name = rule ? rule->name : "unknown request";
	bool need_reply = m->hdr.flags & VU_FLAG_NEED_REPLY;
	char why[200] = "";
	int rc;

	vd_debug(b->who, "<- %s (%u) size %u fds %u%s", name, m->hdr.request,
		 m->hdr.size, m->n_fds, need_reply ? " need_reply" : "");
	rc = check_framing(b, m, rule, why, sizeof(why));
	if (rc) {
		vu_close_fds(m->fds, m->n_fds);
		vd_warn(b->who, "%s: %s; closing the connection", name, why);
		return rc;
	}
	reply_init(&b->reply, m->hdr.request);
	rc = rule->check ? rule->check(b, m, why, sizeof(why)) : 0;
	if (rc == 0)
		rc = rule->fn(b, m, &b->reply, why, sizeof(why));
	vu_close_fds(m->fds, m->n_fds); /* whatever the handler did not take */

	if (rc < 0) {
		/* An error reply is the spec's answer where the frontend
		 * asked for one; otherwise nothing tells it, so close. */
		if (need_reply && !rule->reply) {
			vd_warn(b->who, "%s: %s; error reply sent", name, why);
			return send_ack(b, m->hdr.request, false);
		}
		vd_warn(b->who, "%s: %s; closing the connection", name, why);
		return rc;
	}
	if (rc == VU_REFUSED)
		vd_warn(b->who, "%s: %s; refused", name, why);
	if (rule->reply)
		return vu_send_reply(b, &b->reply);
	if (need_reply)
		return send_ack(b, m->hdr.request, rc == 0);
	return 0;
}
