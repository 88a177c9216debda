/* Test guest memory and a test virtio driver, independent of the core's
 * virtqueue code, so device tests check the core against the spec's driver
 * rules. Test-only: aborts on setup failure, never used by the daemon. */
#ifndef VIRTIOD_TEST_DRIVER_H
#define VIRTIOD_TEST_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "virtiod/guest_mem.h"
#include "virtiod/virtqueue.h"

/* ------------------------------------------------------------ memory */

/* Guest-physical base of test memory: not 0 (so gpa 0 is outside memory)
 * and above 4 GiB (so a 32-bit truncation of an address is caught). */
#define TD_GPA_BASE 0x100000000ULL
/* Canary bytes on each side of the memory (then an inaccessible guard
 * page): a write just outside guest memory changes a canary. */
#define TD_CANARY_LEN  4096
#define TD_CANARY_BYTE 0xa5

struct td_mem;

/* Test guest memory: a memfd mapped once, exposed as a vd_mem region table
 * split into `nregions` adjacent regions (so ranges cross region bounds),
 * guest-physical base TD_GPA_BASE. size is rounded up to a page. Aborts the
 * test on failure. */
struct td_mem *td_mem_new(size_t size, unsigned nregions);
void td_mem_free(struct td_mem *m);
struct vd_mem *td_mem_vd(struct td_mem *m);
/* Host pointer of a guest address, NULL if outside memory. */
void *td_mem_hva(struct td_mem *m, uint64_t gpa);
/* Bump allocator; returns a gpa aligned to `align` (power of two), or 0
 * (outside memory) when memory is exhausted. Zeroes what it returns. */
uint64_t td_mem_alloc(struct td_mem *m, size_t size, size_t align);
size_t td_mem_size(const struct td_mem *m);
int td_mem_fd(const struct td_mem *m);
unsigned td_mem_nregions(const struct td_mem *m);
/* Guest-physical start of region i (i < nregions); region i ends where
 * region i+1 starts. */
uint64_t td_mem_region_gpa(const struct td_mem *m, unsigned i);
/* True if every canary byte around the memory is intact. */
bool td_mem_canary_ok(const struct td_mem *m);
/* True if [base, base+len) lies inside guest memory (for checking iovecs
 * returned by the core). */
bool td_mem_contains_hva(const struct td_mem *m, const void *base, size_t len);
/* Byte i of the test pattern for seed. */
uint8_t td_pattern(uint32_t seed, size_t i);
/* Fill [gpa, gpa+len) with the pattern for seed / check it. */
void td_mem_fill(struct td_mem *m, uint64_t gpa, size_t len, uint32_t seed);
bool td_mem_check(struct td_mem *m, uint64_t gpa, size_t len, uint32_t seed);

/* ------------------------------------------------------------ driver */

/* Entries in each per-buffer indirect table the driver preallocates. */
#define TD_INDIRECT_MAX 64

struct td_vq;

struct td_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

/* Driver side of one queue, rings allocated in test guest memory. Driver
 * calls may run on a different thread from the device: ring fields are
 * accessed with acquire/release atomics as the spec's barriers require. */
struct td_vq *td_vq_new(struct td_mem *m, enum vd_vq_layout layout,
			uint16_t num, bool event_idx, bool indirect);
void td_vq_free(struct td_vq *q);
/* layout, num, flags, ring host pointers and gpas, start positions (0, wrap
 * counters 1), max_iov 64. */
void td_vq_fill_config(struct td_vq *q, struct vd_vq_config *cfg);

/* Add a chain (direct, or through an indirect table if use_indirect) and
 * make it available; token comes back with the used entry. 0, -ENOSPC (no
 * room now) or -EINVAL (n is 0 or larger than the queue / table). */
int td_vq_add(struct td_vq *q, const struct td_buf *bufs, unsigned n,
	      bool use_indirect, void *token);
/* Pop one used entry: 1 and token/len, 0 if none, -EPROTO if the device
 * returned an id that is not in flight (a device bug). */
int td_vq_get_used(struct td_vq *q, void **token, uint32_t *len);
/* Driver-side "must I kick?" for what was added since the last call
 * (split: avail_event or NO_NOTIFY; packed: device event suppression). */
bool td_vq_kick_needed(struct td_vq *q);
unsigned td_vq_num_free(struct td_vq *q);
unsigned td_vq_inflight(struct td_vq *q);

/* Used-buffer notifications, as Linux drives them: enable sets used_event
 * to the next used position (EVENT_IDX) or clears NO_INTERRUPT / selects
 * the packed DESC or ENABLE mode; disable sets NO_INTERRUPT / DISABLE.
 * While enabled with EVENT_IDX, td_vq_get_used keeps used_event current. */
void td_vq_enable_cb(struct td_vq *q);
void td_vq_disable_cb(struct td_vq *q);

/* ------------------------------------------------------------ raw access
 * For malicious-driver tests: write the rings directly. */

uint16_t td_vq_num(const struct td_vq *q);
enum vd_vq_layout td_vq_layout(const struct td_vq *q);
uint64_t td_vq_desc_gpa(const struct td_vq *q);
uint64_t td_vq_driver_gpa(const struct td_vq *q);
uint64_t td_vq_device_gpa(const struct td_vq *q);

struct vring_desc *td_vq_split_desc(struct td_vq *q);
struct vring_avail *td_vq_split_avail(struct td_vq *q);
struct vring_used *td_vq_split_used(struct td_vq *q);
/* Put `head` in the next avail slot and publish the index, bypassing the
 * driver's bookkeeping (the chain is whatever the table holds). */
void td_vq_split_publish_raw(struct td_vq *q, uint16_t head);
/* Store avail->idx directly (release). */
void td_vq_split_set_avail_idx(struct td_vq *q, uint16_t idx);
uint16_t td_vq_split_avail_idx(const struct td_vq *q);
/* Before any request: start both rings at idx (as after 2^16 - n earlier
 * requests), so the 16-bit wrap comes early. */
void td_vq_split_set_start(struct td_vq *q, uint16_t idx);
void td_vq_set_used_event(struct td_vq *q, uint16_t used_event);
uint16_t td_vq_avail_event(struct td_vq *q);
uint16_t td_vq_used_flags(struct td_vq *q);
void td_vq_set_avail_flags(struct td_vq *q, uint16_t flags);
uint16_t td_vq_split_used_idx(struct td_vq *q);

struct vring_packed_desc *td_vq_packed_desc(struct td_vq *q);
struct vring_packed_desc_event *td_vq_packed_driver_event(struct td_vq *q);
struct vring_packed_desc_event *td_vq_packed_device_event(struct td_vq *q);
/* Write descs[0..n) at the next avail positions with the AVAIL/USED bits
 * of the driver's wrap counter (descs[i].flags carry NEXT/WRITE/INDIRECT),
 * head flags last, and advance the driver's position; no bookkeeping. */
void td_vq_packed_publish_raw(struct td_vq *q,
			      const struct vring_packed_desc *descs,
			      unsigned n);
/* Driver event suppression (device reads it): flags ENABLE/DISABLE/DESC and
 * for DESC the position and wrap counter that trigger the event. */
void td_vq_set_driver_event(struct td_vq *q, uint16_t flags, uint16_t off,
			    bool wrap);
/* Driver positions: next avail / next used and wrap counters (packed), or
 * avail idx shadow / last used idx (split, wrap false). */
void td_vq_driver_pos(const struct td_vq *q, uint16_t *next_avail,
		      bool *avail_wrap, uint16_t *last_used, bool *used_wrap);

/* The spec's EVENT_IDX rule (virtio 1.2 §2.7.7.2 / §2.7.10), written out
 * independently of the core: notify iff event_idx is in [old, new). */
bool td_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx);

#endif
