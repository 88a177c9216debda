/* Reading a fuzz input (fz_input.h). */
#include "fz_input.h"

uint64_t fz_take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v |= (uint64_t)(in->n ? *in->p : 0) << (8 * i);
		if (in->n) {
			in->p++;
			in->n--;
		}
	}
	return v;
}

uint8_t fz_take8(struct input *in)
{
	return (uint8_t)fz_take(in, 1);
}

uint16_t fz_take16(struct input *in)
{
	return (uint16_t)fz_take(in, 2);
}
