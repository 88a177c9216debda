/* xa-set-target DM GUEST: makes domain DM the device model of domain GUEST
 * (XEN_DOMCTL_set_target), run by dom0. Xen 4.17's default XSM policy lets
 * only dom0 or a guest's target issue dm_ops (IOREQ server, interrupts) and
 * map the guest's ioreq page; xl sets a target only for stub domains, so a
 * driver domain that runs virtiod for a guest needs this. A domain has at
 * most one target, for its whole life: the guest's memory is only freed
 * once the driver domain is gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <xenctrl.h>

int main(int argc, char **argv)
{
	xc_interface *xch;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: xa-set-target DM_DOMID GUEST_DOMID\n");
		return 2;
	}
	xch = xc_interface_open(NULL, NULL, 0);
	if (!xch) {
		perror("xc_interface_open");
		return 1;
	}
	rc = xc_domain_set_target(xch, (uint32_t)atoi(argv[1]),
				  (uint32_t)atoi(argv[2]));
	if (rc < 0)
		fprintf(stderr, "xc_domain_set_target(%s, %s): %s\n", argv[1],
			argv[2], strerror(errno));
	xc_interface_close(xch);
	return rc < 0 ? 1 : 0;
}
