/* Live statistics as the control socket reports them: a snapshot of every
 * device's queue counters (taken with relaxed loads, under the core's
 * device list lock) and its three renderings: JSON, a table, and the
 * Prometheus text format. Formatting only; no socket here. */
#ifndef VIRTIOD_MAIN_STATS_REPORT_H
#define VIRTIOD_MAIN_STATS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "virtiod/virtqueue.h"

struct stats_dev {
	char name[64]; /* the device's log subject: "blk0", "blk dom7 dev0" */
	char type[32];
	uint32_t device_id;
	uint8_t status;
	uint32_t generation;
	unsigned nq;
	struct vd_vq_stats *q;
};

struct stats_snap {
	unsigned ndev;
	struct stats_dev *dev;
};

enum stats_format {
	STATS_JSON,
	STATS_TABLE,
	STATS_PROMETHEUS,
};

/* 0, or -ENOMEM. Free with stats_snap_free either way. */
int stats_snap_take(struct stats_snap *s);
void stats_snap_free(struct stats_snap *s);
void stats_render(const struct stats_snap *s, enum stats_format f, FILE *out);
/* "json", "table", "prometheus": 0, else -EINVAL. */
int stats_format_parse(const char *name, enum stats_format *f);

#endif
