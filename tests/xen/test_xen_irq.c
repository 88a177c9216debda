/* The Xen shim's interrupt line for x86 guests: a pulse on an ISA IRQ
 * (assert, deassert) reaches the guest only on the 0→1 change of Xen's
 * assert bit. Queue threads of one device raise it concurrently (virtio-net
 * receive and transmit): each pulse must be an edge. Before the pulse was
 * serialized, one thread's assert could land while another's left the
 * line high, and the guest never heard of it again (virtio-mmio raises
 * only on a new InterruptStatus bit): net on real Xen stalled with frames
 * delivered and never processed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "xen_priv.h"
#include "xtest.h"

#define DOMID  9
#define RAISES 20000

struct raiser {
	struct vd_xen_irq *irq;
	pthread_t t;
};

static void *raise_main(void *arg)
{
	struct raiser *r = arg;

	for (int i = 0; i < RAISES; i++)
		vd_xen_irq_raise(r->irq);
	return NULL;
}

static void concurrent_isa_pulses_are_each_an_edge(void **state)
{
	struct raiser r[2];
	struct vd_xen_irq irq;
	xendevicemodel_handle *dm;
	xc_interface *xch;
	uint64_t edges0;

	(void)state;
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, 16), 0);
	dm = xendevicemodel_open(NULL, 0);
	xch = xc_interface_open(NULL, NULL, 0);
	assert_non_null(dm);
	assert_non_null(xch);
	assert_int_equal(vd_xen_irq_init(&irq, dm, xch, DOMID, XT_IRQ_X86, "t"),
			 0);
	edges0 = sx_irq_edges(DOMID);
	for (int i = 0; i < 2; i++) {
		r[i].irq = &irq;
		assert_int_equal(
			pthread_create(&r[i].t, NULL, raise_main, &r[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(r[i].t, NULL);
	assert_int_equal(atomic_load(&irq.failed), 0);
	assert_int_equal(atomic_load(&irq.raised), 2 * RAISES);
	assert_int_equal(sx_irq_edges(DOMID) - edges0, 2 * RAISES);
	xc_interface_close(xch);
	xendevicemodel_close(dm);
	sx_domain_destroy(DOMID);
}

static int group_setup(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_ERR);
	sx_init(SX_X86);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(concurrent_isa_pulses_are_each_an_edge),
	};

	return cmocka_run_group_tests_name("xen irq", tests, group_setup, NULL);
}
