/* Sandbox relay (virtiod/sandbox.h): threads name their role, the
 * composition root builds and installs the filter. Holds no lock: the hooks
 * are set before any thread starts. */
#include <stddef.h>

#include "virtiod/sandbox.h"

static const struct vd_sandbox_hooks *hooks;

void vd_sandbox_set_hooks(const struct vd_sandbox_hooks *h)
{
	hooks = h;
}

int vd_sandbox_enter(enum vd_sandbox_role role, const char *who)
{
	return hooks && hooks->enter ? hooks->enter(role, who) : 0;
}

void vd_sandbox_need(const char *profile)
{
	if (hooks && hooks->need)
		hooks->need(profile);
}
