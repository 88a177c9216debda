/* The vhost-user request table and one validator per wire structure: no
 * handler runs before header, size, fd count, feature gate, payload and the
 * stopped-ring rule are checked, and no fd a frontend sends is leaked. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "connection.h"
#include "control.h"
#include "dirty_log.h"
#include "inflight.h"
#include "mem_table.h"
#include "messages.h"
#include "vring.h"

typedef int (*vu_validator)(const struct vu_backend *b, const struct vu_msg *m,
			    char *why, size_t whylen);

/* Whether the request may arrive while rings run. */
enum vu_stopped_rule {
	RUNNING_OK = 0,
	/* The ring the payload names must be stopped: only for payloads that
	 * are a vring state, whose index check_vring_state checked. */
	RING_STOPPED,
	/* Every ring must be stopped. */
	ALL_STOPPED,
};

/* One request, everything the dispatcher checks before its handler runs.
 * Zero fields are the defaults: no payload, no fds, no gate, no reply of
 * its own, allowed while rings run, no payload validator. */
struct vu_rule {
	const char *name;
	vu_handler *fn;
	uint32_t min_size, max_size; /* payload bytes; equal: exact */
	uint8_t min_fds, max_fds;
	/* What every attached fd must be (VU_FD_ANY: checked by the
	 * handler, e.g. by mapping it). */
	enum vu_fd_kind fd_kind;
	/* Protocol feature the request needs (a mask of one bit), and
	 * whether VHOST_USER_F_PROTOCOL_FEATURES must be in use. */
	uint64_t protocol_feature;
	bool needs_protocol;
	bool reply; /* the request has its own reply ("Communication") */
	enum vu_stopped_rule stopped;
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

#define SIZE(n)		   .min_size = (n), .max_size = (n)
#define SIZE_RANGE(lo, hi) .min_size = (lo), .max_size = (hi)
#define FDS(lo, hi)	   .min_fds = (lo), .max_fds = (hi)
#define NEEDS(pf)	   .protocol_feature = 1ull << (pf)

#define U64	 sizeof(uint64_t)
#define STATE	 sizeof(struct vhost_vring_state)
#define ADDR	 sizeof(struct vhost_vring_addr)
#define MEMREG	 sizeof(struct vu_mem_reg_wire)
#define LOG	 sizeof(struct vu_log_wire)
#define INFLIGHT sizeof(struct vu_inflight_wire)
#define CONFIG	 SIZE_RANGE(VU_CONFIG_HDR_SIZE, sizeof(struct vu_config_wire))

/* vhost-user.rst "Front-end message types": the requests this backend
 * serves. Anything else is refused by the dispatcher. */
/* One field a line: clang-format would pack them. */
/* clang-format off */
static const struct vu_rule rules[] = {
	[VU_GET_FEATURES] = {
		.name = "GET_FEATURES",
		.fn = vu_get_features,
		.reply = true,
	},
	[VU_SET_FEATURES] = {
		/* Rings may run: QEMU flips LOG_ALL on running rings; the
		 * handler refuses a change of virtio features instead. */
		.name = "SET_FEATURES",
		.fn = vu_set_features,
		SIZE(U64),
	},
	[VU_SET_OWNER] = {
		.name = "SET_OWNER",
		.fn = vu_set_owner,
	},
	[VU_RESET_OWNER] = {
		.name = "RESET_OWNER",
		.fn = vu_reset_owner,
	},
	[VU_SET_MEM_TABLE] = {
		/* Rings may run: the handler stops those it must. */
		.name = "SET_MEM_TABLE",
		.fn = vu_set_mem_table,
		SIZE_RANGE(8, sizeof(struct vu_mem_table_wire)),
		FDS(0, VU_MAX_FDS),
		.check = check_mem_table,
		.fd_kind = VU_FD_MAPPABLE,
	},
	[VU_SET_LOG_BASE] = {
		.name = "SET_LOG_BASE",
		.fn = vu_set_log_base,
		SIZE(LOG),
		FDS(1, 1),
		NEEDS(VU_PF_LOG_SHMFD),
		.reply = true,
		.check = check_log,
		.fd_kind = VU_FD_MAPPABLE,
	},
	[VU_SET_VRING_NUM] = {
		.name = "SET_VRING_NUM",
		.fn = vu_set_vring_num,
		SIZE(STATE),
		.stopped = RING_STOPPED,
		.check = check_vring_state,
	},
	[VU_SET_VRING_ADDR] = {
		/* A running ring is restarted on the new addresses. */
		.name = "SET_VRING_ADDR",
		.fn = vu_set_vring_addr,
		SIZE(ADDR),
		.check = check_vring_addr,
	},
	[VU_SET_VRING_BASE] = {
		.name = "SET_VRING_BASE",
		.fn = vu_set_vring_base,
		SIZE(STATE),
		.stopped = RING_STOPPED,
		.check = check_vring_state,
	},
	[VU_GET_VRING_BASE] = {
		.name = "GET_VRING_BASE",
		.fn = vu_get_vring_base,
		SIZE(STATE),
		.reply = true,
		.check = check_vring_state,
	},
	[VU_SET_VRING_KICK] = {
		.name = "SET_VRING_KICK",
		.fn = vu_set_vring_kick,
		SIZE(U64),
		FDS(0, 1),
		.check = check_vring_file,
		.fd_kind = VU_FD_EVENTFD,
	},
	[VU_SET_VRING_CALL] = {
		.name = "SET_VRING_CALL",
		.fn = vu_set_vring_call,
		SIZE(U64),
		FDS(0, 1),
		.check = check_vring_file,
		.fd_kind = VU_FD_EVENTFD,
	},
	[VU_SET_VRING_ERR] = {
		.name = "SET_VRING_ERR",
		.fn = vu_set_vring_err,
		SIZE(U64),
		FDS(0, 1),
		.check = check_vring_file,
		.fd_kind = VU_FD_EVENTFD,
	},
	[VU_GET_PROTOCOL_FEATURES] = {
		.name = "GET_PROTOCOL_FEATURES",
		.fn = vu_get_protocol_features,
		.reply = true,
	},
	[VU_SET_PROTOCOL_FEATURES] = {
		.name = "SET_PROTOCOL_FEATURES",
		.fn = vu_set_protocol_features,
		SIZE(U64),
	},
	[VU_GET_QUEUE_NUM] = {
		.name = "GET_QUEUE_NUM",
		.fn = vu_get_queue_num,
		NEEDS(VU_PF_MQ),
		.reply = true,
	},
	[VU_SET_VRING_ENABLE] = {
		.name = "SET_VRING_ENABLE",
		.fn = vu_set_vring_enable,
		SIZE(STATE),
		.needs_protocol = true,
		.check = check_vring_state,
	},
	[VU_SET_BACKEND_REQ_FD] = {
		.name = "SET_BACKEND_REQ_FD",
		.fn = vu_set_backend_req_fd,
		FDS(1, 1),
		.fd_kind = VU_FD_SOCKET,
		NEEDS(VU_PF_BACKEND_REQ),
	},
	[VU_GET_CONFIG] = {
		.name = "GET_CONFIG",
		.fn = vu_get_config,
		CONFIG,
		NEEDS(VU_PF_CONFIG),
		.reply = true,
		.check = check_config,
	},
	[VU_SET_CONFIG] = {
		.name = "SET_CONFIG",
		.fn = vu_set_config,
		CONFIG,
		NEEDS(VU_PF_CONFIG),
		.check = check_config,
	},
	[VU_GET_INFLIGHT_FD] = {
		.name = "GET_INFLIGHT_FD",
		.fn = vu_get_inflight_fd,
		SIZE(INFLIGHT),
		NEEDS(VU_PF_INFLIGHT_SHMFD),
		.reply = true,
		.stopped = ALL_STOPPED,
		.check = check_inflight,
	},
	[VU_SET_INFLIGHT_FD] = {
		.name = "SET_INFLIGHT_FD",
		.fn = vu_set_inflight_fd,
		SIZE(INFLIGHT),
		FDS(1, 1),
		NEEDS(VU_PF_INFLIGHT_SHMFD),
		.stopped = ALL_STOPPED,
		.check = check_inflight,
		.fd_kind = VU_FD_MAPPABLE,
	},
	[VU_RESET_DEVICE] = {
		.name = "RESET_DEVICE",
		.fn = vu_reset_device,
		NEEDS(VU_PF_RESET_DEVICE),
	},
	[VU_GET_MAX_MEM_SLOTS] = {
		.name = "GET_MAX_MEM_SLOTS",
		.fn = vu_get_max_mem_slots,
		NEEDS(VU_PF_CONFIGURE_MEM_SLOTS),
		.reply = true,
	},
	[VU_ADD_MEM_REG] = {
		.name = "ADD_MEM_REG",
		.fn = vu_add_mem_reg,
		SIZE(MEMREG),
		FDS(1, 1),
		NEEDS(VU_PF_CONFIGURE_MEM_SLOTS),
		.check = check_mem_reg,
		.fd_kind = VU_FD_MAPPABLE,
	},
	[VU_REM_MEM_REG] = {
		/* "the back-end MAY accept messages with one file
		 * descriptor ... MUST close it" */
		.name = "REM_MEM_REG",
		.fn = vu_rem_mem_reg,
		SIZE(MEMREG),
		FDS(0, 1),
		NEEDS(VU_PF_CONFIGURE_MEM_SLOTS),
		.check = check_mem_reg,
	},
	[VU_SET_STATUS] = {
		.name = "SET_STATUS",
		.fn = vu_set_status,
		SIZE(U64),
		NEEDS(VU_PF_STATUS),
		.check = check_status,
	},
	[VU_GET_STATUS] = {
		.name = "GET_STATUS",
		.fn = vu_get_status,
		NEEDS(VU_PF_STATUS),
		.reply = true,
	},
};
/* clang-format on */

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
	/* A pipe as a call fd would block the queue thread that writes it
	 * once full: the kind of fd is part of the protocol. */
	for (unsigned i = 0; i < m->n_fds; i++)
		if (!vu_fd_is_kind(m->fds[i], rule->fd_kind))
			return bad(why, whylen, "fd %u is %s, expected %s", i,
				   vu_fd_describe(m->fds[i]),
				   vu_fd_kind_name(rule->fd_kind));
	if (rule->needs_protocol &&
	    !(b->features & (1ull << VU_F_PROTOCOL_FEATURES)) &&
	    !b->protocol_set)
		return bad(why, whylen, "protocol features not negotiated");
	if (rule->protocol_feature &&
	    !(b->protocol_features & rule->protocol_feature))
		return bad(why, whylen, "protocol feature %d not negotiated",
			   __builtin_ctzll(rule->protocol_feature));
	if ((flags & VU_FLAG_NEED_REPLY) && !rule->reply &&
	    !vu_has_protocol(b, VU_PF_REPLY_ACK))
		return bad(why, whylen, "need_reply without REPLY_ACK");
	return 0;
}

/* The stopped-ring rule, once the payload is known good: a request that
 * reconfigures what a queue thread uses waits for GET_VRING_BASE or
 * SET_VRING_ENABLE 0 ("Ring states"). */
static int check_stopped(const struct vu_backend *b, const struct vu_msg *m,
			 const struct vu_rule *rule, char *why, size_t whylen)
{
	unsigned first = 0, end = b->num_queues;

	if (rule->stopped == RUNNING_OK)
		return 0;
	if (rule->stopped == RING_STOPPED) {
		first = m->p.state.index; /* checked by the validator */
		end = first + 1;
	}
	for (unsigned i = first; i < end; i++)
		if (b->vrings[i].running) {
			snprintf(why, whylen, "ring %u is running", i);
			return -EBUSY;
		}
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
		rc = check_stopped(b, m, rule, why, sizeof(why));
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
