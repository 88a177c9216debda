/* Readiness relay (virtiod/ready.h): shims call vd_ready, the composition
 * root decides who hears it. Holds no lock: the hook is set before any
 * shim runs. */
#include <stddef.h>

#include "virtiod/ready.h"

static void (*ready_hook)(const char *status);

void vd_ready_set_hook(void (*hook)(const char *status))
{
	ready_hook = hook;
}

void vd_ready(const char *status)
{
	if (ready_hook)
		ready_hook(status);
}
