/* vd-loadgen: a vhost-user-blk frontend without a VM, for benchmarking
 * backends (virtiod, qemu-storage-daemon). Parses the job, runs one thread
 * per queue, prints one human line and one key=value line. */
#include "loadgen.h"
#include "pattern.h"
#include "procstat.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char usage[] =
	"usage: vd-loadgen --socket PATH [options]\n"
	"       vd-loadgen --make-image FILE --size SIZE [--seed N]\n"
	"       vd-loadgen --check-image FILE [--seed N]\n"
	"Drives a vhost-user-blk backend as a frontend would (own memfd guest\n"
	"memory, split rings, eventfds) and reports IOPS, MiB/s, latency and\n"
	"the backend's CPU time per request.\n"
	"  --queues N         queues, one thread each (1)\n"
	"  --iodepth N        requests in flight per queue (1)\n"
	"  --bs SIZE          block size, multiple of 512 (4k)\n"
	"  --rwmix PCT        percent of reads; the rest are writes (100)\n"
	"  --access rand|seq  offsets (rand)\n"
	"  --seconds S        duration (5)\n"
	"  --once             sequential pass over the region, then stop\n"
	"  --region SIZE      use only the first SIZE bytes of the disk\n"
	"  --verify N         check 1 in N reads against the seeded pattern\n"
	"                     (16; 0 = never). Writes always carry it.\n"
	"  --seed N           pattern seed (must match the image's) (1)\n"
	"  --backend-pid PID  report that process's CPU time per request\n"
	"  --label NAME       job name in the output\n"
	"  --queue-size N     ring size (smallest power of two >= 128 that\n"
	"                     holds 3 x iodepth)\n"
	"  --no-event-idx     do not negotiate VIRTIO_RING_F_EVENT_IDX\n"
	"  --writethrough     do not negotiate VIRTIO_BLK_F_FLUSH (the device\n"
	"                     must then complete writes only once stable)\n"
	"  --connect-timeout S  wait this long for the socket (5)\n"
	"  --make-image FILE  write the pattern into FILE (--size), no "
	"backend\n"
	"  --check-image FILE check FILE holds the pattern, no backend\n"
	"Exit status: 0 ok, 1 verification or I/O errors, 2 usage or set-up.\n";

static int parse_u64(const char *s, uint64_t *out, bool size)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	if (size && *end) {
		switch (*end | 0x20) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		default:
			return -EINVAL;
		}
		end++;
		if ((*end | 0x20) == 'i' || (*end | 0x20) == 'b')
			end++;
		if ((*end | 0x20) == 'b')
			end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *opt, const char *s, uint64_t min,
		      uint64_t max, bool size, uint64_t *out)
{
	if (parse_u64(s, out, size) < 0 || *out < min || *out > max) {
		fprintf(stderr,
			"vd-loadgen: --%s %s: expected %s from %" PRIu64
			" to %" PRIu64 "\n",
			opt, s, size ? "a size" : "a number", min, max);
		return -EINVAL;
	}
	return 0;
}

enum {
	O_SOCKET = 256,
	O_QUEUES,
	O_IODEPTH,
	O_BS,
	O_RWMIX,
	O_ACCESS,
	O_SECONDS,
	O_ONCE,
	O_REGION,
	O_VERIFY,
	O_SEED,
	O_PID,
	O_LABEL,
	O_QSIZE,
	O_NO_EVENT_IDX,
	O_WRITETHROUGH,
	O_CONNECT_TIMEOUT,
	O_MAKE_IMAGE,
	O_CHECK_IMAGE,
	O_SIZE,
	O_HELP,
};

static const struct option longopts[] = {
	{"socket", required_argument, NULL, O_SOCKET},
	{"queues", required_argument, NULL, O_QUEUES},
	{"iodepth", required_argument, NULL, O_IODEPTH},
	{"bs", required_argument, NULL, O_BS},
	{"rwmix", required_argument, NULL, O_RWMIX},
	{"access", required_argument, NULL, O_ACCESS},
	{"seconds", required_argument, NULL, O_SECONDS},
	{"once", no_argument, NULL, O_ONCE},
	{"region", required_argument, NULL, O_REGION},
	{"verify", required_argument, NULL, O_VERIFY},
	{"seed", required_argument, NULL, O_SEED},
	{"backend-pid", required_argument, NULL, O_PID},
	{"label", required_argument, NULL, O_LABEL},
	{"queue-size", required_argument, NULL, O_QSIZE},
	{"no-event-idx", no_argument, NULL, O_NO_EVENT_IDX},
	{"writethrough", no_argument, NULL, O_WRITETHROUGH},
	{"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
	{"make-image", required_argument, NULL, O_MAKE_IMAGE},
	{"check-image", required_argument, NULL, O_CHECK_IMAGE},
	{"size", required_argument, NULL, O_SIZE},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

struct cli {
	struct lg_job job;
	const char *make_image, *check_image;
	uint64_t size;
};

static int parse_args(int argc, char **argv, struct cli *c)
{
	struct lg_job *j = &c->job;
	*j = (struct lg_job){.queues = 1,
			     .iodepth = 1,
			     .bs = 4096,
			     .read_pct = 100,
			     .random = true,
			     .seconds = 5,
			     .verify_every = 16,
			     .seed = 1,
			     .connect_timeout_ms = 5000};
	int o;
	uint64_t v;
	char *end;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const char *name = longopts[o - O_SOCKET].name;
		int rc = 0;
		switch (o) {
		case O_SOCKET:
			j->socket_path = optarg;
			break;
		case O_QUEUES:
			rc = parse_uint(name, optarg, 1, LG_MAX_QUEUES, 0, &v);
			j->queues = (unsigned)v;
			break;
		case O_IODEPTH:
			rc = parse_uint(name, optarg, 1, LG_MAX_QSIZE / 3, 0,
					&v);
			j->iodepth = (unsigned)v;
			break;
		case O_BS:
			rc = parse_uint(name, optarg, LG_SECTOR, LG_MAX_BS, 1,
					&v);
			if (rc == 0 && v % LG_SECTOR) {
				fprintf(stderr, "vd-loadgen: --bs must be a "
						"multiple of 512\n");
				rc = -EINVAL;
			}
			j->bs = (uint32_t)v;
			break;
		case O_RWMIX:
			rc = parse_uint(name, optarg, 0, 100, 0, &v);
			j->read_pct = (unsigned)v;
			break;
		case O_ACCESS:
			if (strcmp(optarg, "rand") && strcmp(optarg, "seq")) {
				fprintf(stderr, "vd-loadgen: --access: rand "
						"or seq\n");
				rc = -EINVAL;
			}
			j->random = !strcmp(optarg, "rand");
			break;
		case O_SECONDS:
			j->seconds = strtod(optarg, &end);
			if (*end || !(j->seconds > 0 && j->seconds < 86400)) {
				fprintf(stderr,
					"vd-loadgen: --seconds %s: "
					"expected 0 < S < 86400\n",
					optarg);
				rc = -EINVAL;
			}
			break;
		case O_ONCE:
			j->once = true;
			break;
		case O_REGION:
			rc = parse_uint(name, optarg, LG_SECTOR, UINT64_MAX, 1,
					&j->region);
			break;
		case O_VERIFY:
			rc = parse_uint(name, optarg, 0, UINT32_MAX, 0, &v);
			j->verify_every = (unsigned)v;
			break;
		case O_SEED:
			rc = parse_uint(name, optarg, 0, UINT64_MAX, 0,
					&j->seed);
			break;
		case O_PID:
			rc = parse_uint(name, optarg, 1, INT32_MAX, 0, &v);
			j->backend_pid = (pid_t)v;
			break;
		case O_LABEL:
			j->label = optarg;
			break;
		case O_QSIZE:
			rc = parse_uint(name, optarg, 4, LG_MAX_QSIZE, 0, &v);
			j->queue_size = (unsigned)v;
			break;
		case O_NO_EVENT_IDX:
			j->no_event_idx = true;
			break;
		case O_WRITETHROUGH:
			j->writethrough = true;
			break;
		case O_CONNECT_TIMEOUT:
			rc = parse_uint(name, optarg, 0, 3600, 0, &v);
			j->connect_timeout_ms = (int)v * 1000;
			break;
		case O_MAKE_IMAGE:
			c->make_image = optarg;
			break;
		case O_CHECK_IMAGE:
			c->check_image = optarg;
			break;
		case O_SIZE:
			rc = parse_uint(name, optarg, LG_SECTOR, UINT64_MAX, 1,
					&c->size);
			break;
		case O_HELP:
			fputs(usage, stdout);
			exit(0);
		default:
			rc = -EINVAL;
		}
		if (rc < 0)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "vd-loadgen: unexpected argument %s\n",
			argv[optind]);
		return -EINVAL;
	}
	if (c->make_image || c->check_image)
		return c->make_image && !c->size ? -EINVAL : 0;
	if (!j->socket_path) {
		fprintf(stderr, "vd-loadgen: --socket is required\n");
		return -EINVAL;
	}
	if (j->once && j->random) {
		fprintf(stderr, "vd-loadgen: --once needs --access seq\n");
		return -EINVAL;
	}
	return 0;
}

static double cpu_now_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static void job_name(const struct lg_job *j, char *buf, size_t len)
{
	if (j->label) {
		snprintf(buf, len, "%s", j->label);
		return;
	}
	const char *kind = j->read_pct == 100 ? "read"
			   : j->read_pct == 0 ? "write"
					      : "rw";
	snprintf(buf, len, "%uk-%s%s-qd%u-q%u", j->bs / 1024,
		 j->random ? "rand" : "seq", kind, j->iodepth, j->queues);
}

struct totals {
	struct lg_hist hist;
	uint64_t ops, reads, writes, drained, io_errors, verified,
		verify_errors, bad_len;
	int fatal;
};

static void report(const struct lg_job *j, const struct totals *t, double secs,
		   double backend_ns, double lg_ns)
{
	char name[128], bcpu[32];
	job_name(j, name, sizeof(name));
	double iops = t->ops / secs;
	double mibps = iops * j->bs / (1024.0 * 1024.0);
	double p50 = lg_hist_percentile(&t->hist, 50) / 1e3;
	double p99 = lg_hist_percentile(&t->hist, 99) / 1e3;
	double p999 = lg_hist_percentile(&t->hist, 99.9) / 1e3;
	double avg = t->hist.total ? t->hist.sum_ns / 1e3 / t->hist.total : 0;
	uint64_t all = t->ops + t->drained;
	if (backend_ns >= 0 && all)
		snprintf(bcpu, sizeof(bcpu), "%.2f", backend_ns / 1e3 / all);
	else
		snprintf(bcpu, sizeof(bcpu), "NA");
	double lcpu = all ? lg_ns / 1e3 / all : 0;

	printf("%s: %.0f IOPS, %.1f MiB/s, latency p50 %.1f us, p99 %.1f us, "
	       "p99.9 %.1f us; backend CPU %s us/req; %" PRIu64
	       " reads verified, %" PRIu64 " wrong, %" PRIu64 " I/O errors\n",
	       name, iops, mibps, p50, p99, p999, bcpu, t->verified,
	       t->verify_errors, t->io_errors);
	printf("job=%s queues=%u iodepth=%u bs=%u read_pct=%u access=%s "
	       "seconds=%.3f ops=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
	       " iops=%.0f mibps=%.2f lat_avg_us=%.1f lat_p50_us=%.1f "
	       "lat_p99_us=%.1f lat_p999_us=%.1f lat_max_us=%.1f "
	       "backend_cpu_us_per_req=%s loadgen_cpu_us_per_req=%.2f "
	       "verified=%" PRIu64 " verify_errors=%" PRIu64
	       " io_errors=%" PRIu64 " bad_len=%" PRIu64 "\n",
	       name, j->queues, j->iodepth, j->bs, j->read_pct,
	       j->random ? "rand" : "seq", secs, t->ops, t->reads, t->writes,
	       iops, mibps, avg, p50, p99, p999, t->hist.max_ns / 1e3, bcpu,
	       lcpu, t->verified, t->verify_errors, t->io_errors, t->bad_len);
	fflush(stdout);
}

static int run_job(const struct lg_job *job)
{
	static struct lg_dev dev; /* large: keep it off the stack */
	struct lg_dev *d = &dev;
	int rc = lg_dev_open(d, job);
	if (rc < 0) {
		lg_dev_close(d);
		return 2;
	}
	uint64_t b0 = 0, b1 = 0;
	bool have_b =
		job->backend_pid && lg_proc_cpu_ns(job->backend_pid, &b0) == 0;
	if (job->backend_pid && !have_b)
		fprintf(stderr, "vd-loadgen: cannot read /proc/%d/stat\n",
			(int)job->backend_pid);
	double c0 = cpu_now_ns();
	uint64_t start = lg_now_ns();
	uint64_t deadline = start + (uint64_t)(job->seconds * 1e9);
	pthread_t th[LG_MAX_QUEUES];
	unsigned started = 0;
	for (unsigned i = 0; i < d->nq; i++) {
		d->q[i].start_ns = start;
		d->q[i].deadline_ns = deadline;
		if (pthread_create(&th[i], NULL, lg_queue_run, &d->q[i]))
			break;
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (have_b && lg_proc_cpu_ns(job->backend_pid, &b1) < 0)
		have_b = false;
	double lg_ns = cpu_now_ns() - c0;

	static struct totals t;
	uint64_t end = start;
	for (unsigned i = 0; i < started; i++) {
		struct lg_queue *q = &d->q[i];
		lg_hist_merge(&t.hist, &q->hist);
		t.ops += q->ops;
		t.reads += q->reads;
		t.writes += q->writes;
		t.drained += q->drained;
		t.io_errors += q->io_errors;
		t.verified += q->verified;
		t.verify_errors += q->verify_errors;
		t.bad_len += q->bad_len;
		if (q->fatal && !t.fatal)
			t.fatal = q->fatal;
		if (q->end_ns > end)
			end = q->end_ns;
	}
	lg_dev_close(d);
	if (started < d->nq) {
		fprintf(stderr, "vd-loadgen: cannot start queue threads\n");
		return 2;
	}
	double secs = job->once ? (end - start) / 1e9 : job->seconds;
	if (secs <= 0)
		secs = 1e-9;
	report(job, &t, secs, have_b ? (double)(b1 - b0) : -1, lg_ns);
	if (t.fatal || t.io_errors || t.verify_errors)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	static struct cli c;
	if (parse_args(argc, argv, &c) < 0) {
		fputs(usage, stderr);
		return 2;
	}
	if (c.make_image)
		return lg_pattern_make_image(c.make_image, c.size, c.job.seed) <
				       0
			       ? 2
			       : 0;
	if (c.check_image) {
		int rc = lg_pattern_check_image(c.check_image, c.job.seed);
		return rc == -EILSEQ ? 1 : rc < 0 ? 2 : 0;
	}
	return run_job(&c.job);
}
