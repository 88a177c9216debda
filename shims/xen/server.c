/* IOREQ server setup and teardown for one guest, in the order Xen requires
 * (create, map page, claim window, enable, then bind the vp_eports), and
 * what we ask Xen about the guest. Never binds before enabling: vp_eport
 * is 0 until then. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xen_priv.h"

#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>
#include <xen/version.h>

enum vd_xen_arch vd_xen_arch(xc_interface *xch)
{
	xen_capabilities_info_t caps;

	memset(caps, 0, sizeof(caps));
	if (!xch || xc_version(xch, XENVER_capabilities, &caps) < 0)
		return VD_XEN_ARCH_UNKNOWN;
	caps[sizeof(caps) - 1] = '\0';
	/* "xen-3.0-x86_64 hvm-3.0-x86_64 ..." / "xen-3.0-aarch64 ..." */
	if (strstr(caps, "x86"))
		return VD_XEN_ARCH_X86;
	if (strstr(caps, "aarch64") || strstr(caps, "armv7"))
		return VD_XEN_ARCH_ARM;
	return VD_XEN_ARCH_UNKNOWN;
}

int vd_xen_dominfo(xc_interface *xch, uint32_t domid,
		   struct vd_xen_dominfo *out)
{
	xc_domaininfo_t info;
	int n;

	if (!xch)
		return -EPERM;
	/* getinfolist exists in 4.17 and 4.18+ (xc_domain_getinfo went away
	 * in 4.18); it returns the first domain >= domid. */
	n = xc_domain_getinfolist(xch, domid, 1, &info);
	if (n < 0)
		return errno ? -errno : -EIO;
	if (n == 0 || info.domain != domid)
		return -ESRCH;
	memset(out, 0, sizeof(*out));
	out->hvm = info.flags & XEN_DOMINF_hvm_guest;
	out->dying = (info.flags & XEN_DOMINF_dying) ||
		     ((info.flags & XEN_DOMINF_shutdown) &&
		      ((info.flags >> XEN_DOMINF_shutdownshift) &
		       XEN_DOMINF_shutdownmask) != SHUTDOWN_suspend);
#if defined(__x86_64__) || defined(__i386__)
	/* PVH has no emulated PIC/IO-APIC: an ISA IRQ would reach code that
	 * is not there (it crashed Xen 4.17.7). */
	out->isa_irqs =
		out->hvm && (info.arch_config.emulation_flags &
			     (XEN_X86_EMU_PIC | XEN_X86_EMU_IOAPIC)) ==
				    (XEN_X86_EMU_PIC | XEN_X86_EMU_IOAPIC);
#endif
	memcpy(out->handle, info.handle, sizeof(out->handle));
	return 0;
}

int vd_xen_server_open(struct vd_xen_server *s, uint32_t domid, uint64_t base,
		       uint64_t size, const char *who)
{
	int n, rc;

	memset(s, 0, sizeof(*s));
	s->domid = domid;
	s->base = base;
	s->size = size;
	s->who = who;
	s->dm = xendevicemodel_open(NULL, 0);
	s->fmem = xenforeignmemory_open(NULL, 0);
	s->xce = xenevtchn_open(NULL, 0);
	if (!s->dm || !s->fmem || !s->xce) {
		rc = errno ? -errno : -EIO;
		vd_err(who,
		       "cannot open the Xen device-model, foreign-memory "
		       "or event-channel interface: %s (is this dom0 or a "
		       "driver domain with privcmd and evtchn?)",
		       strerror(-rc));
		goto fail;
	}
	n = xendevicemodel_nr_vcpus(s->dm, domid, &s->nr_vcpus);
	if (n < 0) {
		rc = errno ? -errno : -EIO;
		vd_err(who, "domain %u: cannot read its vCPU count: %s", domid,
		       strerror(-rc));
		goto fail;
	}
	if (s->nr_vcpus == 0 || s->nr_vcpus > VD_XEN_MAX_VCPUS) {
		vd_err(who,
		       "domain %u has %u vCPUs; one ioreq page serves "
		       "1..%lu",
		       domid, s->nr_vcpus, (unsigned long)VD_XEN_MAX_VCPUS);
		rc = -EINVAL;
		goto fail;
	}
	s->local = calloc(s->nr_vcpus, sizeof(*s->local));
	s->remote = calloc(s->nr_vcpus, sizeof(*s->remote));
	if (!s->local || !s->remote) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < s->nr_vcpus; i++)
		s->local[i] = (evtchn_port_t)-1;
	return 0;
fail:
	vd_xen_server_close(s, false);
	return rc;
}

static int map_page(struct vd_xen_server *s)
{
	void *addr = NULL;

	s->res = xenforeignmemory_map_resource(
		s->fmem, s->domid, XENMEM_resource_ioreq_server, s->id,
		XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
		PROT_READ | PROT_WRITE, 0);
	if (!s->res)
		return errno ? -errno : -EIO;
	s->slots = addr;
	return 0;
}

/* A predecessor's server is ours to take over only if it still claims
 * our window: Xen refuses to add a range a server already has (EEXIST),
 * which tells us without a query interface. */
static bool take_over(struct vd_xen_server *s, int prev_id)
{
	uint64_t end = s->base + s->size - 1;

	s->id = (ioservid_t)prev_id;
	if (map_page(s) < 0)
		return false;
	if (xendevicemodel_map_io_range_to_ioreq_server(s->dm, s->domid, s->id,
							1, s->base, end) == 0) {
		/* Not ours (another device model's, or a reused id): give
		 * the range back and start afresh. */
		xendevicemodel_unmap_io_range_from_ioreq_server(
			s->dm, s->domid, s->id, 1, s->base, end);
		xenforeignmemory_unmap_resource(s->fmem, s->res);
		s->res = NULL;
		s->slots = NULL;
		return false;
	}
	if (errno != EEXIST) {
		xenforeignmemory_unmap_resource(s->fmem, s->res);
		s->res = NULL;
		s->slots = NULL;
		return false;
	}
	s->created = true;
	s->range_mapped = true;
	s->taken_over = true;
	vd_info(s->who, "took over IOREQ server %u of domain %u", s->id,
		s->domid);
	return true;
}

int vd_xen_server_start(struct vd_xen_server *s, int prev_id)
{
	uint64_t end = s->base + s->size - 1;
	const char *step;
	int rc;

	if (s->size == 0 || end < s->base)
		return -EINVAL;
	if (prev_id < 0 || !take_over(s, prev_id)) {
		/* Buffered ioreqs off: Arm rejects them, and virtio-mmio
		 * needs every access answered in order. */
		step = "create the IOREQ server";
		if (xendevicemodel_create_ioreq_server(
			    s->dm, s->domid, HVM_IOREQSRV_BUFIOREQ_OFF,
			    &s->id) < 0)
			goto fail;
		s->created = true;
		step = "map the ioreq page";
		rc = map_page(s);
		if (rc < 0) {
			errno = -rc;
			goto fail;
		}
		/* The end address is inclusive. */
		step = "claim the MMIO window";
		if (xendevicemodel_map_io_range_to_ioreq_server(
			    s->dm, s->domid, s->id, 1, s->base, end) < 0)
			goto fail;
		s->range_mapped = true;
	}
	step = "enable the IOREQ server";
	if (xendevicemodel_set_ioreq_server_state(s->dm, s->domid, s->id, 1) <
	    0)
		goto fail;
	s->enabled = true;
	/* Xen writes vp_eport when the server is enabled. */
	step = "bind the vCPU event channels";
	for (unsigned i = 0; i < s->nr_vcpus; i++) {
		xenevtchn_port_or_error_t p;

		s->remote[i] = s->slots[i].vp_eport;
		p = xenevtchn_bind_interdomain(s->xce, s->domid, s->remote[i]);
		if (p < 0)
			goto fail;
		s->local[i] = (evtchn_port_t)p;
	}
	return 0;
fail:
	rc = errno ? -errno : -EIO;
	vd_err(s->who, "domain %u window 0x%llx-0x%llx: cannot %s: %s",
	       s->domid, (unsigned long long)s->base, (unsigned long long)end,
	       step, strerror(-rc));
	return rc;
}

int vd_xen_server_restrict(struct vd_xen_server *s)
{
	/* After this the handles can only touch this guest. */
	if (xendevicemodel_restrict(s->dm, (domid_t)s->domid) < 0 ||
	    xenforeignmemory_restrict(s->fmem, (domid_t)s->domid) < 0 ||
	    xenevtchn_restrict(s->xce, (domid_t)s->domid) < 0) {
		int rc = errno ? -errno : -EIO;

		vd_err(s->who,
		       "cannot restrict the Xen handles to domain %u: %s",
		       s->domid, strerror(-rc));
		return rc;
	}
	return 0;
}

int vd_xen_server_vcpu(const struct vd_xen_server *s, evtchn_port_t port)
{
	for (unsigned i = 0; i < s->nr_vcpus; i++)
		if (s->local[i] == port)
			return (int)i;
	return -1;
}

void vd_xen_server_close(struct vd_xen_server *s, bool destroy)
{
	for (unsigned i = 0; s->local && i < s->nr_vcpus; i++)
		if (s->local[i] != (evtchn_port_t)-1)
			xenevtchn_unbind(s->xce, s->local[i]);
	if (destroy && s->created) {
		if (s->enabled)
			xendevicemodel_set_ioreq_server_state(s->dm, s->domid,
							      s->id, 0);
		if (s->range_mapped)
			xendevicemodel_unmap_io_range_from_ioreq_server(
				s->dm, s->domid, s->id, 1, s->base,
				s->base + s->size - 1);
	}
	if (s->res)
		xenforeignmemory_unmap_resource(s->fmem, s->res);
	if (destroy && s->created)
		xendevicemodel_destroy_ioreq_server(s->dm, s->domid, s->id);
	if (s->xce)
		xenevtchn_close(s->xce);
	if (s->fmem)
		xenforeignmemory_close(s->fmem);
	if (s->dm)
		xendevicemodel_close(s->dm);
	free(s->local);
	free(s->remote);
	memset(s, 0, sizeof(*s));
}
