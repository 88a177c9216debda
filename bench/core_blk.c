/* virtio-blk throughput through the core and the test driver, no shim:
 * 4 KiB random reads from a tmpfs image, iodepth 32 per queue, for every
 * engine (sync is the default on tmpfs) and 1 and 2 queues. Prints
 * requests/s; never part of a test. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "test_driver.h"
#include "virtiod/device.h"
#include "virtiod/log.h"

extern const struct vd_device_type vd_blk_type;

#define IMG_SIZE  (256ull << 20)
#define IODEPTH	  32
#define QSIZE	  128
#define BS	  4096
#define WARMUP_MS 300
#define RUN_MS	  2000
#define MAX_Q	  2

struct bq {
	struct td_vq *vq;
	int kick, call;
	uint64_t hdr[IODEPTH], data[IODEPTH], status[IODEPTH];
	uint32_t seed;
	uint64_t done;
	int err;
	pthread_t thread;
};

struct bench {
	struct td_mem *m;
	struct vd_dev *dev;
	struct bq q[MAX_Q];
	unsigned nq;
	atomic_bool stop;
};

static void notify_queue(void *shim, struct vd_queue *q)
{
	struct bench *b = shim;
	uint64_t one = 1;

	if (write(b->q[vd_queue_index(q)].call, &one, sizeof(one)) < 0) {
		/* counter full: the driver is awake anyway */
	}
}

static const struct vd_dev_shim_ops shim_ops = {.notify_queue = notify_queue};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int submit(struct bench *b, struct bq *q, unsigned i)
{
	struct virtio_blk_outhdr *h = td_mem_hva(b->m, q->hdr[i]);
	struct td_buf bufs[3] = {
		{q->hdr[i], 16, false},
		{q->data[i], BS, true},
		{q->status[i], 1, true},
	};

	q->seed ^= q->seed << 13;
	q->seed ^= q->seed >> 17;
	q->seed ^= q->seed << 5;
	h->type = htole32(VIRTIO_BLK_T_IN);
	h->sector = htole64((q->seed % (IMG_SIZE / BS)) * (BS / 512));
	return td_vq_add(q->vq, bufs, 3, false, (void *)(uintptr_t)(i + 1));
}

static void kick(struct bq *q)
{
	uint64_t one = 1;

	if (td_vq_kick_needed(q->vq) &&
	    write(q->kick, &one, sizeof(one)) != sizeof(one))
		q->err = -errno;
}

static void *driver(void *arg)
{
	struct bench *b = ((void **)arg)[0];
	struct bq *q = ((void **)arg)[1];

	for (unsigned i = 0; i < IODEPTH; i++)
		if (submit(b, q, i) < 0)
			q->err = -ENOSPC;
	kick(q);
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed) &&
	       !q->err) {
		void *tok;
		uint32_t len;
		unsigned n = 0;

		while (td_vq_get_used(q->vq, &tok, &len) == 1) {
			unsigned i = (unsigned)(uintptr_t)tok - 1;

			if (*(uint8_t *)td_mem_hva(b->m, q->status[i]) !=
			    VIRTIO_BLK_S_OK)
				q->err = -EIO;
			q->done++;
			n++;
			if (submit(b, q, i) < 0)
				q->err = -ENOSPC;
		}
		if (n) {
			kick(q);
		} else {
			struct pollfd p = {.fd = q->call, .events = POLLIN};
			uint64_t v;

			poll(&p, 1, 100);
			if (read(q->call, &v, sizeof(v)) < 0) {
				/* EAGAIN after a timeout */
			}
		}
	}
	return NULL;
}

static int run(const char *path, const char *engine, unsigned nq, double *rps)
{
	char err[256], nqs[8];
	void *o = vd_blk_type.opts_new();
	struct vd_model *model = NULL;
	struct bench b;
	void *args[MAX_Q][2];
	uint64_t t0, t1, d0 = 0, d1 = 0;
	int r = 0;

	memset(&b, 0, sizeof(b));
	snprintf(nqs, sizeof(nqs), "%u", nq);
	if (!o || vd_blk_type.opts_set(o, "disk", path, err, sizeof(err)) ||
	    vd_blk_type.opts_set(o, "io-engine", engine, err, sizeof(err)) ||
	    vd_blk_type.opts_set(o, "num-queues", nqs, err, sizeof(err)) ||
	    vd_blk_type.create(o, &model, err, sizeof(err))) {
		fprintf(stderr, "core_blk: %s\n", err);
		vd_blk_type.opts_free(o);
		return -1;
	}
	vd_blk_type.opts_free(o);
	b.nq = nq;
	b.m = td_mem_new(8u << 20, 2);
	b.dev = vd_dev_new(model, td_mem_vd(b.m), &shim_ops, &b, "blk0");
	if (!b.dev ||
	    vd_dev_negotiate(b.dev, model->features &
					    ~(1ull << VIRTIO_F_RING_PACKED)) <
		    0)
		return -1;
	for (unsigned i = 0; i < nq; i++) {
		struct bq *q = &b.q[i];
		struct vd_queue_setup s;

		memset(&s, 0, sizeof(s));
		q->vq = td_vq_new(b.m, VD_VQ_SPLIT, QSIZE, true, true);
		td_vq_fill_config(q->vq, &s.vq);
		s.vq.max_iov = 0;
		q->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		q->call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		s.kick_fd = q->kick;
		q->seed = 0x9e3779b9u * (i + 1);
		for (unsigned j = 0; j < IODEPTH; j++) {
			q->hdr[j] = td_mem_alloc(b.m, 16, 16);
			q->data[j] = td_mem_alloc(b.m, BS, BS);
			q->status[j] = td_mem_alloc(b.m, 1, 1);
		}
		td_vq_enable_cb(q->vq);
		if (vd_queue_start(vd_dev_queue(b.dev, i), &s) < 0)
			return -1;
	}
	for (unsigned i = 0; i < nq; i++) {
		args[i][0] = &b;
		args[i][1] = &b.q[i];
		pthread_create(&b.q[i].thread, NULL, driver, args[i]);
	}
	usleep(WARMUP_MS * 1000);
	t0 = now_ns();
	for (unsigned i = 0; i < nq; i++)
		d0 += __atomic_load_n(&b.q[i].done, __ATOMIC_RELAXED);
	usleep(RUN_MS * 1000);
	t1 = now_ns();
	for (unsigned i = 0; i < nq; i++)
		d1 += __atomic_load_n(&b.q[i].done, __ATOMIC_RELAXED);
	atomic_store(&b.stop, true);
	for (unsigned i = 0; i < nq; i++) {
		pthread_join(b.q[i].thread, NULL);
		if (b.q[i].err)
			r = b.q[i].err;
	}
	*rps = (double)(d1 - d0) * 1e9 / (double)(t1 - t0);
	vd_dev_free(b.dev);
	for (unsigned i = 0; i < nq; i++) {
		td_vq_free(b.q[i].vq);
		close(b.q[i].kick);
		close(b.q[i].call);
	}
	td_mem_free(b.m);
	return r;
}

/* Optional argument: the directory for the image (default /dev/shm). */
int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	static const char *const engines[] = {"uring", "threads", "sync"};
	char path[256];
	char *buf = malloc(1 << 20);
	int fd, ret = 0;

	vd_log_set_level(VD_LOG_WARN);
	snprintf(path, sizeof(path), "%s/vd-bench-blk-%d.img", dir,
		 (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !buf) {
		perror("core_blk: image");
		return 1;
	}
	/* Real pages, not holes: reads copy data as they would on a disk
	 * image held in the page cache. */
	memset(buf, 0x5a, 1 << 20);
	for (uint64_t off = 0; off < IMG_SIZE; off += 1 << 20)
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20) {
			perror("core_blk: image");
			ret = 1;
			goto out;
		}
	printf("core_blk: 4 KiB random reads, image %s (%llu MiB, in the page "
	       "cache), iodepth %u per queue, %d ms\n",
	       path, IMG_SIZE >> 20, IODEPTH, RUN_MS);
	for (unsigned e = 0; e < sizeof(engines) / sizeof(engines[0]); e++)
		for (unsigned nq = 1; nq <= MAX_Q; nq++) {
			double rps = 0;

			if (run(path, engines[e], nq, &rps) < 0) {
				fprintf(stderr, "core_blk: %s %uq failed\n",
					engines[e], nq);
				ret = 1;
				continue;
			}
			printf("core_blk: %-7s %u queue%s %10.0f requests/s\n",
			       engines[e], nq, nq > 1 ? "s" : " ", rps);
		}
out:
	close(fd);
	unlink(path);
	free(buf);
	return ret;
}
