/* Stand-in libxenctrl: the few calls the shim makes (domain info, the
 * hypervisor's capabilities), with the driver-domain case where the sysctl
 * is refused. */
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>

#include "hv.h"

struct xc_interface_core {
	int unused;
};

xc_interface *xc_interface_open(xentoollog_logger *logger,
				xentoollog_logger *dombuild_logger,
				unsigned open_flags)
{
	(void)logger;
	(void)dombuild_logger;
	(void)open_flags;
	return calloc(1, sizeof(xc_interface));
}

int xc_interface_close(xc_interface *xch)
{
	free(xch);
	return 0;
}

int xc_version(xc_interface *xch, int cmd, void *arg)
{
	(void)xch;
	SX_COUNT(xc_version, 1);
	if (cmd != XENVER_capabilities) {
		errno = ENOSYS;
		return -1;
	}
	strcpy(arg, sx->arch == SX_ARM ? "xen-3.0-aarch64 xen-3.0-armv7l "
				       : "xen-3.0-x86_64 hvm-3.0-x86_32 "
					 "hvm-3.0-x86_32p hvm-3.0-x86_64 ");
	return 0;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
			  unsigned int max_domains, xc_domaininfo_t *info)
{
	unsigned n = 0;

	(void)xch;
	SX_COUNT(xc_getinfo, 1);
	if (!sx->xc_privileged) {
		errno = EPERM;
		return -1;
	}
	sx_lock();
	/* Domains in id order from first_domain, as the sysctl lists them. */
	for (uint32_t cur = first_domain; n < max_domains; n++) {
		struct sx_dom *d = NULL;

		for (int i = 0; i < SX_MAX_DOMS; i++) {
			struct sx_dom *c = &sx->doms[i];

			if (c->used && !c->gone && c->domid >= cur &&
			    (!d || c->domid < d->domid))
				d = c;
		}
		if (!d)
			break;
		cur = d->domid + 1;
		memset(&info[n], 0, sizeof(info[n]));
		info[n].domain = (domid_t)d->domid;
		info[n].flags = XEN_DOMINF_hvm_guest |
				(d->dying ? XEN_DOMINF_dying : 0);
		info[n].max_vcpu_id = d->nr_vcpus - 1;
		info[n].nr_online_vcpus = d->nr_vcpus;
		memcpy(info[n].handle, d->handle, sizeof(info[n].handle));
		info[n].arch_config.emulation_flags =
			d->type == SX_HVM ? XEN_X86_EMU_ALL : XEN_X86_EMU_LAPIC;
	}
	sx_unlock();
	return (int)n;
}
