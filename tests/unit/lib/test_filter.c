/* TEST_FILTER=PATTERN runs only the cmocka cases whose name matches the
 * pattern (cmocka 1.1 has no environment variable of its own for this). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

__attribute__((constructor)) static void test_filter_from_env(void)
{
	const char *pattern = getenv("TEST_FILTER");

	if (pattern && *pattern)
		cmocka_set_test_filter(pattern);
}
