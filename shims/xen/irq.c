/* Raising the device's interrupt: an edge on an Arm SPI, or a pulse on an
 * x86 ISA IRQ of an HVM guest. Never touches ISA/INTx for a PVH guest (it
 * crashed Xen 4.17.7), nor for a guest whose type it cannot establish. */
#include <errno.h>
#include <string.h>

#include "xen_priv.h"

int vd_xen_irq_init(struct vd_xen_irq *irq, xendevicemodel_handle *dm,
		    xc_interface *xch, uint32_t domid, uint32_t line,
		    const char *who)
{
	struct vd_xen_dominfo info;
	int rc;

	memset(irq, 0, sizeof(*irq));
	pthread_mutex_init(&irq->pulse, NULL);
	irq->dm = dm;
	irq->domid = domid;
	irq->irq = line;
	irq->who = who;
	switch (vd_xen_arch(xch)) {
	case VD_XEN_ARCH_ARM:
		/* GIC SPIs are 32..1019; the toolstack hands out 33 up. */
		if (line < 32 || line > 1019) {
			vd_err(who, "irq %u is not an Arm SPI (32..1019)",
			       line);
			return -EINVAL;
		}
		irq->kind = VD_XEN_IRQ_SPI;
		return 0;
	case VD_XEN_ARCH_X86:
		break;
	default:
		vd_err(who,
		       "cannot tell the hypervisor's architecture "
		       "(XENVER_capabilities); refusing to raise interrupts");
		return -EOPNOTSUPP;
	}
	if (line == 0 || line == 2 || line > 15) {
		vd_err(who, "irq %u: x86 guests take ISA IRQs 1 and 3..15",
		       line);
		return -EINVAL;
	}
	rc = vd_xen_dominfo(xch, domid, &info);
	if (rc < 0) {
		vd_err(who,
		       "domain %u: cannot read its type (%s); ISA "
		       "interrupts are refused without it, since they "
		       "crash Xen for PVH guests",
		       domid, strerror(-rc));
		return rc == -ESRCH ? rc : -EOPNOTSUPP;
	}
	if (!info.isa_irqs) {
		vd_err(who,
		       "domain %u is PVH (no emulated PIC/IO-APIC): x86 "
		       "virtio-mmio interrupts need an HVM guest "
		       "(type=\"hvm\")",
		       domid);
		return -EOPNOTSUPP;
	}
	if (line == 5 || line == 10 || line == 11)
		vd_warn(who,
			"irq %u: hvmloader routes it to PCI links; "
			"choose another ISA IRQ (e.g. 7)",
			line);
	irq->kind = VD_XEN_IRQ_ISA;
	/* A predecessor killed between raising and lowering the line left
	 * it asserted, and an asserted line takes no new edge: lower it. */
	if (xendevicemodel_set_isa_irq_level(dm, domid, (uint8_t)line, 0) < 0)
		vd_warn(who, "irq %u: cannot lower the line: %s", line,
			strerror(errno));
	return 0;
}

void vd_xen_irq_raise(struct vd_xen_irq *irq)
{
	int rc;

	if (irq->kind == VD_XEN_IRQ_SPI) {
		/* The toolstack declares virtio SPIs edge-rising, and Xen's
		 * vGIC ignores level 0 for edge interrupts: level 1 is one
		 * edge. */
		rc = xendevicemodel_set_irq_level(irq->dm, irq->domid, irq->irq,
						  1);
	} else {
		/* Xen fires on the 0→1 change of the per-IRQ assert bit: a
		 * line left high would swallow every later edge, and so
		 * would one raised by another queue's thread in between. */
		pthread_mutex_lock(&irq->pulse);
		rc = xendevicemodel_set_isa_irq_level(irq->dm, irq->domid,
						      (uint8_t)irq->irq, 1);
		if (rc == 0)
			rc = xendevicemodel_set_isa_irq_level(
				irq->dm, irq->domid, (uint8_t)irq->irq, 0);
		pthread_mutex_unlock(&irq->pulse);
	}
	if (rc < 0)
		atomic_fetch_add(&irq->failed, 1);
	else
		atomic_fetch_add(&irq->raised, 1);
}
