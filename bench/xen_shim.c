/* virtio-blk through the Xen shim with the stand-in libxen* (tests/xen/
 * standin): a guest driver probes virtio-mmio through ioreqs and does 4 KiB
 * random reads on an image in /dev/shm, as tests/xen/test_xen_blk.c does,
 * but timed. Rows: foreign mapping with the default cache, foreign with no
 * cache (map per request), grant mapping; 1 and 4 vCPUs; 1 and 32 requests
 * per vCPU per QueueNotify. Prints requests/s, ioreqs/s and the stand-in's
 * map/unmap call counts per request; never asserts timing.
 *
 *   xen_shim [DIR]            image in DIR (default /dev/shm)
 *   BENCH_SECONDS=S           measured seconds per row (default 2)
 *   BENCH_XEN_ROW=MODE/V/QD   one row only (MODE: cache, nocache, grant),
 *                             e.g. for perf or callgrind */
#include <inttypes.h>
#include <stdatomic.h>

#include "xtest.h"

#define DOMID	     5
#define RAM_MIB	     64
#define IMG_SIZE     (64ull << 20)
#define BS	     4096u
#define AREA_SIZE    (48ull << 20) /* data buffers: 48 one-MiB buckets */
#define QUEUE_SIZE   512	   /* 170 three-descriptor heads */
#define MAX_QD	     32
#define WARMUP_MS    300
#define DEFAULT_SECS 2.0

enum mode { M_CACHE, M_NOCACHE, M_GRANT };

static const char *const mode_name[] = {"cache", "nocache", "grant"};
static const char *const mode_label[] = {"foreign, 64 MiB cache",
					 "foreign, no cache", "grant"};

struct row {
	enum mode mode;
	unsigned vcpus, qd;
	/* results over the measured window */
	uint64_t reqs, ioreqs, fm_map, fm_unmap, gnt_map, gnt_unmap;
	double secs, backend_cpu_s;
};

struct guest {
	struct sx_vdev *dev;
	uint64_t area;
	atomic_bool stop;
};

struct vcpu {
	struct guest *g;
	unsigned v, qd;
	uint32_t seed;
	_Atomic uint64_t done;
	int err;
	pthread_t thread;
	clockid_t clock;
};

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void random_req(struct vcpu *c, struct sx_blk_req *r)
{
	r->type = VIRTIO_BLK_T_IN;
	r->len = BS;
	r->sector =
		(uint64_t)(xorshift(&c->seed) % (IMG_SIZE / BS)) * (BS / 512);
	r->data_gpa = c->g->area +
		      (uint64_t)(xorshift(&c->seed) % (AREA_SIZE / BS)) * BS;
	r->status = -1;
}

static void *vcpu_loop(void *arg)
{
	struct vcpu *c = arg;
	struct sx_blk_req r[MAX_QD];

	while (!atomic_load_explicit(&c->g->stop, memory_order_relaxed)) {
		int rc;

		for (unsigned i = 0; i < c->qd; i++)
			random_req(c, &r[i]);
		if (c->qd == 1) {
			/* the guest's one-request path, as the tests use it */
			rc = sx_blk_rw(c->g->dev, c->v, r[0].type, r[0].sector,
				       r[0].data_gpa, r[0].len);
			r[0].status = rc;
			rc = rc > 0 ? 0 : rc;
		} else {
			rc = sx_blk_rw_batch(c->g->dev, c->v, r, c->qd);
		}
		for (unsigned i = 0; !rc && i < c->qd; i++)
			if (r[i].status != VIRTIO_BLK_S_OK)
				rc = -EIO;
		if (rc) {
			c->err = rc;
			break;
		}
		atomic_fetch_add_explicit(&c->done, c->qd,
					  memory_order_relaxed);
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU of everything but the guest's vCPU threads: the shim's ioreq
 * thread, the blk queue thread and io_uring workers (and the stand-in's
 * share of map calls, made in their context), plus this idle main
 * thread. */
static double backend_cpu(struct vcpu *c, unsigned n)
{
	double t = clock_s(CLOCK_PROCESS_CPUTIME_ID);

	for (unsigned i = 0; i < n; i++)
		t -= clock_s(c[i].clock);
	return t;
}

static int run_row(const char *img, double secs, struct row *row)
{
	static const unsigned cache_mib[] = {0, VD_XEN_MAP_CACHE_NONE, 0};
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.grant = row->mode == M_GRANT,
		.features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_BLK_F_FLUSH) |
			    (1ULL << VIRTIO_F_ACCESS_PLATFORM),
		.queue_size = QUEUE_SIZE,
		.device_id = VIRTIO_ID_BLOCK,
	};
	struct vcpu c[SX_MAX_VCPUS];
	struct guest g;
	struct xt_server srv;
	struct sx_counters a, b;
	struct vd_model *model;
	char *state_dir = xt_tmpdir();
	double t0, t1, cpu0, cpu1;
	uint64_t d0 = 0, d1 = 0;
	int rc;

	memset(&g, 0, sizeof(g));
	memset(c, 0, sizeof(c));
	if (!state_dir)
		return -errno;
	rc = sx_domain_create(DOMID, SX_HVM, row->vcpus, RAM_MIB);
	if (rc)
		goto out_dir;
	model = xt_blk_model(img, false);
	if (!model) {
		rc = -EINVAL;
		goto out_dom;
	}
	rc = xt_serve_start(&srv, DOMID, XT_IRQ_X86,
			    row->mode == M_GRANT ? VD_XEN_MEM_GRANT
						 : VD_XEN_MEM_FOREIGN,
			    cache_mib[row->mode], state_dir, model);
	if (rc)
		goto out_srv;
	rc = sx_vdev_probe(&o, &g.dev);
	if (rc)
		goto out_srv;
	g.area = sx_vdev_alloc(g.dev, AREA_SIZE);
	/* Touch every bucket once, so the cached rows start warm. */
	for (uint64_t off = 0; off < AREA_SIZE; off += 1 << 20) {
		rc = sx_blk_rw(g.dev, 0, VIRTIO_BLK_T_IN, off / 512,
			       g.area + off, BS);
		if (rc) {
			rc = rc < 0 ? rc : -EIO;
			goto out_srv;
		}
	}
	for (unsigned i = 0; i < row->vcpus; i++) {
		c[i] = (struct vcpu){.g = &g,
				     .v = i,
				     .qd = row->qd,
				     .seed = 0x9e3779b9u * (i + 1)};
		if (pthread_create(&c[i].thread, NULL, vcpu_loop, &c[i]) ||
		    pthread_getcpuclockid(c[i].thread, &c[i].clock)) {
			rc = -EAGAIN;
			atomic_store(&g.stop, true);
			for (unsigned j = 0; j < i; j++)
				pthread_join(c[j].thread, NULL);
			goto out_srv;
		}
	}
	usleep(WARMUP_MS * 1000);
	sx_counters(&a);
	cpu0 = backend_cpu(c, row->vcpus);
	t0 = now_s();
	for (unsigned i = 0; i < row->vcpus; i++)
		d0 += atomic_load(&c[i].done);
	usleep((useconds_t)(secs * 1e6));
	sx_counters(&b);
	cpu1 = backend_cpu(c, row->vcpus);
	t1 = now_s();
	for (unsigned i = 0; i < row->vcpus; i++)
		d1 += atomic_load(&c[i].done);
	atomic_store(&g.stop, true);
	for (unsigned i = 0; i < row->vcpus; i++) {
		pthread_join(c[i].thread, NULL);
		if (c[i].err && !rc)
			rc = c[i].err;
	}
	row->reqs = d1 - d0;
	row->secs = t1 - t0;
	row->backend_cpu_s = cpu1 - cpu0;
	row->ioreqs = b.ioreqs_answered - a.ioreqs_answered;
	row->fm_map = b.fm_map - a.fm_map;
	row->fm_unmap = b.fm_unmap - a.fm_unmap;
	row->gnt_map = b.gnt_map - a.gnt_map;
	row->gnt_unmap = b.gnt_unmap - a.gnt_unmap;
	if (b.ioreq_timeouts != a.ioreq_timeouts && !rc)
		rc = -ETIMEDOUT;
out_srv:
	/* The server first, then the guest's rings (grants) go. */
	xt_serve_stop(&srv, VD_STOP);
	sx_vdev_free(g.dev);
out_dom:
	sx_domain_destroy(DOMID);
out_dir:
	rmdir(state_dir);
	free(state_dir);
	return rc;
}

static int make_image(const char *path)
{
	char *buf = malloc(1 << 20);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0 || !buf) {
		rc = -errno;
		goto out;
	}
	/* Real pages, not holes: reads copy from the page cache. */
	for (size_t i = 0; i < 1 << 20; i++)
		buf[i] = (char)xt_pattern(7, i);
	for (uint64_t off = 0; off < IMG_SIZE; off += 1 << 20)
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20) {
			rc = -EIO;
			break;
		}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static bool row_selected(const struct row *r, const char *only)
{
	char want[64];

	if (!only || !*only)
		return true;
	snprintf(want, sizeof(want), "%s/%u/%u", mode_name[r->mode], r->vcpus,
		 r->qd);
	return strcmp(want, only) == 0;
}

static double per(uint64_t n, uint64_t reqs)
{
	return reqs ? (double)n / (double)reqs : 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	const char *env = getenv("BENCH_SECONDS");
	const char *only = getenv("BENCH_XEN_ROW");
	double secs = env && atof(env) > 0 ? atof(env) : DEFAULT_SECS;
	static const unsigned vcpus[] = {1, 4}, qds[] = {1, MAX_QD};
	struct row rows[3 * 2 * 2];
	uint64_t steady_reqs = 0, steady_map = 0, steady_unmap = 0;
	double load = -1;
	FILE *la;
	unsigned nrows = 0, ran = 0;
	char img[256];
	int ret = 0;

	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	snprintf(img, sizeof(img), "%s/vd-bench-xen-%d.img", dir,
		 (int)getpid());
	if (make_image(img) < 0) {
		fprintf(stderr, "xen_shim: cannot make %s: %s\n", img,
			strerror(errno));
		return 1;
	}
	for (unsigned m = 0; m < 3; m++)
		for (unsigned v = 0; v < 2; v++)
			for (unsigned q = 0; q < 2; q++)
				rows[nrows++] =
					(struct row){.mode = (enum mode)m,
						     .vcpus = vcpus[v],
						     .qd = qds[q]};
	printf("xen_shim: virtio-blk through the Xen shim and the stand-in "
	       "libxen* (no hypervisor): 4 KiB random reads, image %s "
	       "(%llu MiB), guest buffers over %llu MiB of its %u MiB, "
	       "%.1f s per row\n",
	       img, IMG_SIZE >> 20, AREA_SIZE >> 20, RAM_MIB, secs);
	la = fopen("/proc/loadavg", "r");
	if (la) {
		if (fscanf(la, "%lf", &load) != 1)
			load = -1;
		fclose(la);
	}
	printf("xen_shim: host: %ld CPUs online, load average %.1f at start "
	       "(every thread below shares them)\n",
	       sysconf(_SC_NPROCESSORS_ONLN), load);
	printf("xen_shim: qd = requests per vCPU per QueueNotify (the guest "
	       "posts them, kicks once, waits for all); maps and unmaps are "
	       "the stand-in's libxen* call counts\n");
	printf("%-22s %5s %3s %11s %10s %8s %9s %9s %9s %10s\n", "mode",
	       "vCPUs", "qd", "requests/s", "ioreqs/s", "ioreq/rq", "fmap/rq",
	       "gmap/rq", "unmap/rq", "be-us/rq");
	fflush(stdout);
	for (unsigned i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		int rc;

		if (!row_selected(r, only))
			continue;
		ran++;
		rc = run_row(img, secs, r);
		if (rc) {
			fprintf(stderr, "xen_shim: %s, %u vCPUs, qd %u: %s\n",
				mode_label[r->mode], r->vcpus, r->qd,
				strerror(-rc));
			ret = 1;
			continue;
		}
		printf("%-22s %5u %3u %11.0f %10.0f %8.2f %9.3f %9.3f %9.3f "
		       "%10.1f\n",
		       mode_label[r->mode], r->vcpus, r->qd,
		       (double)r->reqs / r->secs, (double)r->ioreqs / r->secs,
		       per(r->ioreqs, r->reqs), per(r->fm_map, r->reqs),
		       per(r->gnt_map, r->reqs),
		       per(r->fm_unmap + r->gnt_unmap, r->reqs),
		       r->reqs ? r->backend_cpu_s * 1e6 / (double)r->reqs : 0);
		fflush(stdout);
		if (r->mode == M_CACHE) {
			steady_reqs += r->reqs;
			steady_map += r->fm_map;
			steady_unmap += r->fm_unmap;
		}
	}
	if (!ran) {
		fprintf(stderr,
			"xen_shim: BENCH_XEN_ROW=%s matches no row "
			"(MODE/VCPUS/QD, MODE cache|nocache|grant)\n",
			only);
		ret = 1;
	}
	printf("xen_shim: be-us/rq = CPU of every thread but the guest's "
	       "vCPUs (shim, blk queue, io_uring, stand-in map calls) per "
	       "request\n");
	if (steady_reqs)
		printf("xen_shim: steady state, foreign with the 64 MiB cache: "
		       "%.4f map calls per request (%" PRIu64 " maps, %" PRIu64
		       " unmaps over %" PRIu64 " requests)\n",
		       per(steady_map, steady_reqs), steady_map, steady_unmap,
		       steady_reqs);
	unlink(img);
	return ret;
}
