/* Device-type options through vd_device_type_opts_*: a type without
 * options (opts_new NULL) gets NULL options and refuses every option by
 * name; a type with options gets its own calls. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtiod/device.h"

extern const struct vd_device_type vd_blk_type;

static void *created_with = (void *)1;

static int bare_create(void *opts, struct vd_model **out, char *err,
		       size_t errlen)
{
	(void)out;
	(void)err;
	(void)errlen;
	created_with = opts;
	return -ENODEV;
}

static const struct vd_device_type bare_type = {
	.name = "bare",
	.summary = "a model without options",
	.create = bare_create,
};

static void type_without_options_gets_null_and_refuses_options(void **s)
{
	char err[128] = "";
	void *o = (void *)1;
	struct vd_model *m = NULL;

	(void)s;
	assert_int_equal(vd_device_type_opts_new(&bare_type, &o), 0);
	assert_null(o);
	assert_int_equal(vd_device_type_opts_set(&bare_type, o, "disk", "x",
						 err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "--disk"));
	assert_non_null(strstr(err, "bare"));
	assert_int_equal(bare_type.create(o, &m, err, sizeof(err)), -ENODEV);
	assert_null(created_with);
	vd_device_type_opts_free(&bare_type, o); /* no call, no crash */
}

static void type_with_options_uses_its_own(void **s)
{
	char err[128] = "";
	void *o = NULL;

	(void)s;
	assert_int_equal(vd_device_type_opts_new(&vd_blk_type, &o), 0);
	assert_non_null(o);
	assert_int_equal(vd_device_type_opts_set(&vd_blk_type, o, "num-queues",
						 "2", err, sizeof(err)),
			 0);
	assert_int_equal(vd_device_type_opts_set(&vd_blk_type, o, "nope", "2",
						 err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "--nope"));
	vd_device_type_opts_free(&vd_blk_type, o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			type_without_options_gets_null_and_refuses_options),
		cmocka_unit_test(type_with_options_uses_its_own),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
