/* A fuzz input read front to back: fields of a few bytes each, zeros once
 * it is used up, so any input is a whole sequence of actions. */
#ifndef VIRTIOD_FUZZ_FZ_INPUT_H
#define VIRTIOD_FUZZ_FZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t *p;
	size_t n;
};

/* The next `bytes` of input, little-endian. */
uint64_t fz_take(struct input *in, unsigned bytes);
uint8_t fz_take8(struct input *in);
uint16_t fz_take16(struct input *in);

#endif
