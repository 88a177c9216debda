/* Snapshot and renderings of the live statistics (stats_report.h). The
 * names here are the documented interface (docs/operations.md): change
 * one and dashboards break. */
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtiod/device.h"

#include "stats_report.h"

static void take_dev(struct vd_dev *dev, void *arg)
{
	struct stats_snap *s = arg;
	struct vd_model *m = vd_dev_model(dev);
	struct stats_dev *d, *grown;
	unsigned nq = vd_dev_num_queues(dev);

	grown = realloc(s->dev, (s->ndev + 1) * sizeof(*s->dev));
	if (!grown)
		return;
	s->dev = grown;
	d = &s->dev[s->ndev];
	memset(d, 0, sizeof(*d));
	d->q = calloc(nq, sizeof(*d->q));
	if (!d->q)
		return;
	s->ndev++;
	snprintf(d->name, sizeof(d->name), "%s", vd_dev_who(dev));
	snprintf(d->type, sizeof(d->type), "%s",
		 m->type_name ? m->type_name : "");
	d->device_id = m->device_id;
	d->status = vd_dev_status(dev);
	d->generation = vd_dev_config_generation(dev);
	d->nq = nq;
	for (unsigned i = 0; i < nq; i++)
		vd_queue_stats_read(vd_dev_queue(dev, i), &d->q[i]);
}

int stats_snap_take(struct stats_snap *s)
{
	memset(s, 0, sizeof(*s));
	vd_dev_for_each(take_dev, s);
	return 0;
}

void stats_snap_free(struct stats_snap *s)
{
	for (unsigned i = 0; i < s->ndev; i++)
		free(s->dev[i].q);
	free(s->dev);
	memset(s, 0, sizeof(*s));
}

int stats_format_parse(const char *name, enum stats_format *f)
{
	if (!strcmp(name, "json"))
		*f = STATS_JSON;
	else if (!strcmp(name, "table"))
		*f = STATS_TABLE;
	else if (!strcmp(name, "prometheus"))
		*f = STATS_PROMETHEUS;
	else
		return -EINVAL;
	return 0;
}

/* A string as a JSON or Prometheus label value: quotes, backslashes and
 * control characters escaped (a device name comes from a config line). */
static void put_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static uint64_t hist_count(const struct vd_vq_stats *q)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < VD_VQ_HIST_BUCKETS; b++)
		n += q->latency_hist[b];
	return n;
}

/* The bucket bound under which a fraction p of the requests completed
 * (ns), or 0 without requests; the last bucket reports its lower bound. */
static uint64_t hist_quantile(const struct vd_vq_stats *q, double p)
{
	uint64_t n = hist_count(q), seen = 0;

	if (!n)
		return 0;
	for (unsigned b = 0; b < VD_VQ_HIST_BUCKETS; b++) {
		seen += q->latency_hist[b];
		if ((double)seen >= p * (double)n)
			return b + 1 < VD_VQ_HIST_BUCKETS
				       ? VD_VQ_HIST_BOUND_NS(b)
				       : VD_VQ_HIST_BOUND_NS(b - 1);
	}
	return VD_VQ_HIST_BOUND_NS(VD_VQ_HIST_BUCKETS - 2);
}

#define COUNTERS(X)                                                            \
	X(requests, "chains popped from the queue")                            \
	X(completions, "chains pushed back to the driver")                     \
	X(bytes_in, "device-readable bytes of popped chains")                  \
	X(bytes_out, "bytes the device wrote into chains")                     \
	X(errors, "requests failed by the device, and broken chains")          \
	X(kicks, "driver notifications taken")                                 \
	X(notify_sent, "used-buffer notifications sent to the driver")         \
	X(notify_suppressed,                                                   \
	  "publications the driver asked not to be notified of")

static void render_json(const struct stats_snap *s, FILE *out)
{
	fprintf(out, "{\"version\":1,\"pid\":%d,\"latency_bounds_ns\":[",
		(int)getpid());
	for (unsigned b = 0; b + 1 < VD_VQ_HIST_BUCKETS; b++)
		fprintf(out, "%s%llu", b ? "," : "",
			(unsigned long long)VD_VQ_HIST_BOUND_NS(b));
	fputs("],\"devices\":[", out);
	for (unsigned i = 0; i < s->ndev; i++) {
		const struct stats_dev *d = &s->dev[i];

		fputs(i ? ",{\"name\":" : "{\"name\":", out);
		put_quoted(out, d->name);
		fputs(",\"type\":", out);
		put_quoted(out, d->type);
		fprintf(out,
			",\"device_id\":%" PRIu32 ",\"status\":%u,"
			"\"needs_reset\":%s,\"config_generation\":%" PRIu32
			",\"queues\":[",
			d->device_id, d->status,
			d->status & VIRTIO_CONFIG_S_NEEDS_RESET ? "true"
								: "false",
			d->generation);
		for (unsigned k = 0; k < d->nq; k++) {
			const struct vd_vq_stats *q = &d->q[k];

			fprintf(out, "%s{\"index\":%u", k ? "," : "", k);
#define X(f, h) fprintf(out, ",\"" #f "\":%" PRIu64, q->f);
			COUNTERS(X)
#undef X
			fprintf(out,
				",\"inflight\":%" PRIu64
				",\"latency_ns_sum\":%" PRIu64
				",\"latency_hist\":[",
				q->inflight, q->latency_ns_sum);
			for (unsigned b = 0; b < VD_VQ_HIST_BUCKETS; b++)
				fprintf(out, "%s%" PRIu64, b ? "," : "",
					q->latency_hist[b]);
			fputs("]}", out);
		}
		fputs("]}", out);
	}
	fputs("]}\n", out);
}

static void render_table(const struct stats_snap *s, FILE *out)
{
	fprintf(out,
		"%-20s %3s %12s %12s %14s %14s %6s %8s %10s %10s %10s "
		"%9s %9s %9s\n",
		"DEVICE", "Q", "REQUESTS", "COMPLETIONS", "BYTES_IN",
		"BYTES_OUT", "INFL", "ERRORS", "KICKS", "NOTIFIED",
		"SUPPRESSED", "AVG_US", "P50_US", "P99_US");
	for (unsigned i = 0; i < s->ndev; i++) {
		const struct stats_dev *d = &s->dev[i];

		for (unsigned k = 0; k < d->nq; k++) {
			const struct vd_vq_stats *q = &d->q[k];
			uint64_t n = hist_count(q);

			fprintf(out,
				"%-20.20s %3u %12" PRIu64 " %12" PRIu64
				" %14" PRIu64 " %14" PRIu64 " %6" PRIu64
				" %8" PRIu64 " %10" PRIu64 " %10" PRIu64
				" %10" PRIu64 " %9.1f %9.1f %9.1f\n",
				d->name, k, q->requests, q->completions,
				q->bytes_in, q->bytes_out, q->inflight,
				q->errors, q->kicks, q->notify_sent,
				q->notify_suppressed,
				n ? (double)q->latency_ns_sum / (double)n / 1e3
				  : 0.0,
				(double)hist_quantile(q, 0.5) / 1e3,
				(double)hist_quantile(q, 0.99) / 1e3);
		}
		if (d->status & VIRTIO_CONFIG_S_NEEDS_RESET)
			fprintf(out, "%-20.20s     NEEDS_RESET (see the log)\n",
				d->name);
	}
}

static void labels(FILE *out, const struct stats_dev *d, unsigned k)
{
	fputs("{device=", out);
	put_quoted(out, d->name);
	fprintf(out, ",queue=\"%u\"", k);
}

static void render_prometheus(const struct stats_snap *s, FILE *out)
{
#define X(f, h)                                                                \
	fprintf(out, "# HELP virtiod_" #f "_total " h "\n"                     \
		     "# TYPE virtiod_" #f "_total counter\n");                 \
	for (unsigned i = 0; i < s->ndev; i++)                                 \
		for (unsigned k = 0; k < s->dev[i].nq; k++) {                  \
			fputs("virtiod_" #f "_total", out);                    \
			labels(out, &s->dev[i], k);                            \
			fprintf(out, "} %" PRIu64 "\n", s->dev[i].q[k].f);     \
		}
	COUNTERS(X)
#undef X
	fputs("# HELP virtiod_inflight requests popped and not yet "
	      "completed\n# TYPE virtiod_inflight gauge\n",
	      out);
	for (unsigned i = 0; i < s->ndev; i++)
		for (unsigned k = 0; k < s->dev[i].nq; k++) {
			fputs("virtiod_inflight", out);
			labels(out, &s->dev[i], k);
			fprintf(out, "} %" PRIu64 "\n",
				s->dev[i].q[k].inflight);
		}
	fputs("# HELP virtiod_needs_reset 1 while the device waits for a "
	      "reset by its driver\n# TYPE virtiod_needs_reset gauge\n",
	      out);
	for (unsigned i = 0; i < s->ndev; i++) {
		fputs("virtiod_needs_reset{device=", out);
		put_quoted(out, s->dev[i].name);
		fprintf(out, "} %d\n",
			!!(s->dev[i].status & VIRTIO_CONFIG_S_NEEDS_RESET));
	}
	fputs("# HELP virtiod_request_latency_seconds from pop to the "
	      "completion's publication in the used ring\n"
	      "# TYPE virtiod_request_latency_seconds histogram\n",
	      out);
	for (unsigned i = 0; i < s->ndev; i++)
		for (unsigned k = 0; k < s->dev[i].nq; k++) {
			const struct vd_vq_stats *q = &s->dev[i].q[k];
			uint64_t cum = 0;

			for (unsigned b = 0; b < VD_VQ_HIST_BUCKETS; b++) {
				cum += q->latency_hist[b];
				fputs("virtiod_request_latency_seconds_bucket",
				      out);
				labels(out, &s->dev[i], k);
				if (b + 1 < VD_VQ_HIST_BUCKETS)
					fprintf(out,
						",le=\"%.9g\"} %" PRIu64 "\n",
						(double)VD_VQ_HIST_BOUND_NS(b) /
							1e9,
						cum);
				else
					fprintf(out,
						",le=\"+Inf\"} %" PRIu64 "\n",
						cum);
			}
			fputs("virtiod_request_latency_seconds_sum", out);
			labels(out, &s->dev[i], k);
			fprintf(out, "} %.9f\n",
				(double)q->latency_ns_sum / 1e9);
			fputs("virtiod_request_latency_seconds_count", out);
			labels(out, &s->dev[i], k);
			fprintf(out, "} %" PRIu64 "\n", cum);
		}
}

void stats_render(const struct stats_snap *s, enum stats_format f, FILE *out)
{
	switch (f) {
	case STATS_JSON:
		render_json(s, out);
		break;
	case STATS_TABLE:
		render_table(s, out);
		break;
	case STATS_PROMETHEUS:
		render_prometheus(s, out);
		break;
	}
}
