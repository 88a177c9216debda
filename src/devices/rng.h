/* virtio-rng (virtio 1.2 §5.4) and its rate limit: a token bucket of
 * bytes, pure arithmetic on the times it is given, so tests drive it with
 * their own clock. Private to src/devices and its tests. */
#ifndef VIRTIOD_DEVICES_RNG_H
#define VIRTIOD_DEVICES_RNG_H

#include <stdint.h>

/* rate bytes per second, at most burst bytes saved up; starts full. */
struct rng_bucket {
	uint64_t rate, burst;
	uint64_t tokens;  /* bytes that may go now */
	uint64_t last_ns; /* when tokens was last brought up to date */
	uint64_t frac;	  /* nanosecond-bytes not yet a whole byte */
};

void rng_bucket_init(struct rng_bucket *b, uint64_t rate, uint64_t burst,
		     uint64_t now_ns);
/* Up to want bytes may go now: returns how many (0 when empty) and takes
 * them from the bucket. */
uint64_t rng_bucket_take(struct rng_bucket *b, uint64_t now_ns, uint64_t want);
/* Nanoseconds until `want` bytes (at most the burst) are there; 0: now. */
uint64_t rng_bucket_wait_ns(struct rng_bucket *b, uint64_t now_ns,
			    uint64_t want);

/* The clock the device reads (CLOCK_MONOTONIC), replaceable by tests. */
extern uint64_t (*rng_clock_ns)(void);

#endif
