/* vd-verify check and dump: the host side. Reads the record a guest run left
 * at the end of a disk image, proves it intact and the one the guest
 * announced on its console, then compares every byte of the image the
 * record vouches for. Reads the image only; never writes it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd_verify.h"

/* What the guest printed: its last "VD-VERIFY RESULT" line. */
struct console_result {
	bool found, pass, have_sum;
	uint64_t sum;
	char line[512];
};

static int read_console(const char *path, struct console_result *cr, char *err,
			size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, n, "console log %s: %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	memset(cr, 0, sizeof(*cr));
	/* The marker may follow a prefix (a harness's "[guest x] ", a
	 * timestamp) and the line may end in \r (xenconsoled logs CRLF). */
	while (getline(&line, &cap, f) > 0) {
		char *m = strstr(line, "VD-VERIFY RESULT ");
		if (!m)
			continue;
		m[strcspn(m, "\r\n")] = 0;
		cr->found = true;
		snprintf(cr->line, sizeof(cr->line), "%s", m);
		cr->pass = !strncmp(m + 17, "PASS", 4);
		const char *s = strstr(m, " record_sum=");
		cr->have_sum = false;
		if (s) {
			char *end;
			errno = 0;
			uint64_t v = strtoull(s + 12, &end, 16);
			if (!errno && end == s + 28) {
				cr->sum = v;
				cr->have_sum = true;
			}
		}
	}
	free(line);
	fclose(f);
	if (!cr->found) {
		snprintf(err, n, "no \"VD-VERIFY RESULT\" line in %s", path);
		return -1;
	}
	return 0;
}

static int open_image(const char *path, uint64_t *size, char *err, size_t n)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		*size = end > 0 ? (uint64_t)end : 0;
	} else {
		*size = (uint64_t)st.st_size;
	}
	/* the guest saw whole 512-byte sectors of it */
	*size = *size / VD_SECTOR * VD_SECTOR;
	return fd;
}

struct runs {
	unsigned reported, max;
	uint64_t n, bad_bytes, first_bad;
	bool open;
	uint64_t off, len;
	uint32_t gen;
	char desc[256];
};

static void run_close(struct runs *r)
{
	if (!r->open)
		return;
	r->open = false;
	r->n++;
	if (r->reported++ >= r->max)
		return;
	char g[48];
	printf("VD-VERIFY MISMATCH off=%" PRIu64 " len=%" PRIu64
	       " expected=\"%s\" found=\"%s\"\n",
	       r->off, r->len, vd_gen_str(r->gen, g, sizeof(g)), r->desc);
}

static void run_add(struct runs *r, const unsigned char *sec, uint64_t off,
		    uint64_t seed, uint32_t gen)
{
	if (!r->bad_bytes)
		r->first_bad = off;
	r->bad_bytes += VD_SECTOR;
	if (r->open && r->off + r->len == off && r->gen == gen) {
		r->len += VD_SECTOR;
		return;
	}
	run_close(r);
	r->open = true;
	r->off = off;
	r->len = VD_SECTOR;
	r->gen = gen;
	vd_sector_describe(sec, off, seed, gen, r->desc, sizeof(r->desc));
}

int vd_check(const struct vd_check_opts *o)
{
	char err[512];
	struct console_result cr = {0};
	struct vd_record_hdr h;
	struct vd_extent *ext = NULL;
	uint64_t size, expect = o->expect_sum;
	unsigned char *buf = NULL;
	int fd = -1, ret = 1;

	if (o->console) {
		if (read_console(o->console, &cr, err, sizeof(err)))
			goto fail;
		if (!cr.have_sum) {
			snprintf(err, sizeof(err),
				 "the guest wrote no record (console: %.400s)",
				 cr.line);
			goto fail;
		}
		if (o->have_sum && o->expect_sum != cr.sum) {
			snprintf(err, sizeof(err),
				 "--expect-sum %016" PRIx64
				 " and the console's record_sum=%016" PRIx64
				 " differ",
				 o->expect_sum, cr.sum);
			goto fail;
		}
		expect = cr.sum;
	}
	if ((fd = open_image(o->image, &size, err, sizeof(err))) < 0)
		goto fail;
	uint64_t anchor = o->record_at ? o->record_at : vd_record_anchor(size);
	if (vd_record_load(fd, size, anchor, &h, &ext, err, sizeof(err)))
		goto fail;
	if (h.sum != expect) {
		snprintf(err, sizeof(err),
			 "the image's record has sum %016" PRIx64
			 ", the guest announced %016" PRIx64
			 ": not this run's record (a stale or foreign image?)",
			 h.sum, expect);
		goto fail;
	}
	if (h.dev_size != size) {
		snprintf(err, sizeof(err),
			 "the image is %" PRIu64 " bytes, the guest's device "
			 "was %" PRIu64
			 " (truncated, grown or not the same disk)",
			 size, h.dev_size);
		goto fail;
	}
	printf("VD-VERIFY CHECK record at=%" PRIu64 " seed=0x%016" PRIx64
	       " dev_size=%" PRIu64 " area=%" PRIu64 "+%" PRIu64
	       " gran=%u extents=%" PRIu64 " guest_ops=%" PRIu64
	       " sum=%016" PRIx64 " (intact, matches %s)\n",
	       h.ext_off, h.seed, h.dev_size, h.area_off, h.area_len, h.gran,
	       h.n_ext, h.ops, h.sum,
	       o->console ? "the console" : "--expect-sum");

	buf = malloc(VD_MAX_IO);
	if (!buf) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	struct runs runs = {.max = o->max_report};
	uint64_t data_b = 0, zero_b = 0, skip_b = 0;
	uint64_t granules = h.area_len / h.gran;
	for (uint64_t i = 0; i < h.n_ext; i++) {
		uint64_t g0 = ext[i].start;
		uint64_t g1 = i + 1 < h.n_ext ? ext[i + 1].start : granules;
		uint64_t off = h.area_off + g0 * h.gran;
		uint64_t end = h.area_off + g1 * h.gran;
		uint32_t gen = ext[i].gen;
		if (!vd_gen_checked(gen)) {
			skip_b += end - off;
			continue;
		}
		*(gen == VD_GEN_ZERO ? &zero_b : &data_b) += end - off;
		while (off < end) {
			size_t len =
				end - off < VD_MAX_IO ? end - off : VD_MAX_IO;
			ssize_t r = pread(fd, buf, len, (off_t)off);
			if (r != (ssize_t)len) {
				snprintf(err, sizeof(err),
					 "reading %zu bytes of the image at "
					 "%" PRIu64 ": %s",
					 len, off,
					 r < 0 ? strerror(errno)
					       : "short read");
				goto fail;
			}
			for (size_t b = 0; b < len; b += VD_SECTOR) {
				unsigned diff;
				if (vd_sector_check(buf + b, off + b, h.seed,
						    gen, &diff))
					run_add(&runs, buf + b, off + b, h.seed,
						gen);
				else
					run_close(&runs);
			}
			off += len;
		}
		run_close(&runs);
	}
	if (runs.bad_bytes) {
		if (runs.reported > runs.max)
			printf("VD-VERIFY MISMATCH ... %u more run(s) not "
			       "shown\n",
			       runs.reported - runs.max);
		snprintf(err, sizeof(err),
			 "%" PRIu64 " bytes in %" PRIu64
			 " run(s) differ from the record; first at offset "
			 "%" PRIu64,
			 runs.bad_bytes, runs.n, runs.first_bad);
		goto fail;
	}
	if (o->console && !cr.pass) {
		snprintf(err, sizeof(err),
			 "the image matches the record, but the guest reported "
			 "a failure (a read-path problem?): %.400s",
			 cr.line);
		goto fail;
	}
	printf("VD-VERIFY CHECK PASS image=%s data_bytes=%" PRIu64
	       " zero_bytes=%" PRIu64 " unchecked_bytes=%" PRIu64
	       " extents=%" PRIu64 " record_sum=%016" PRIx64 "\n",
	       o->image, data_b, zero_b, skip_b, h.n_ext, h.sum);
	ret = 0;
	goto out;
fail:
	printf("VD-VERIFY CHECK FAIL image=%s error=\"%s\"\n", o->image, err);
out:
	free(buf);
	free(ext);
	if (fd >= 0)
		close(fd);
	return ret;
}

int vd_dump(const char *image, uint64_t record_at, bool extents)
{
	char err[512], g[48];
	struct vd_record_hdr h;
	struct vd_extent *ext;
	uint64_t size;
	int fd = open_image(image, &size, err, sizeof(err));
	if (fd < 0 ||
	    vd_record_load(fd, size,
			   record_at ? record_at : vd_record_anchor(size), &h,
			   &ext, err, sizeof(err))) {
		printf("VD-VERIFY DUMP FAIL image=%s error=\"%s\"\n", image,
		       err);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	printf("VD-VERIFY RECORD at=%" PRIu64 " seed=0x%016" PRIx64
	       " dev_size=%" PRIu64 " area=%" PRIu64 "+%" PRIu64
	       " gran=%u flags=%u extents=%" PRIu64 " ops=%" PRIu64
	       " bytes_w=%" PRIu64 " bytes_r=%" PRIu64 " flushes=%" PRIu64
	       " discards=%" PRIu64 " zeroes=%" PRIu64 " sum=%016" PRIx64 "\n",
	       h.ext_off, h.seed, h.dev_size, h.area_off, h.area_len, h.gran,
	       h.flags, h.n_ext, h.ops, h.bytes_w, h.bytes_r, h.flushes,
	       h.discards, h.zeroes, h.sum);
	uint64_t granules = h.area_len / h.gran;
	for (uint64_t i = 0; extents && i < h.n_ext; i++) {
		uint64_t g1 = i + 1 < h.n_ext ? ext[i + 1].start : granules;
		uint32_t gen = ext[i].gen;
		const char *name = gen == VD_GEN_ZERO	   ? "zero"
				   : gen == VD_GEN_DISCARD ? "discard"
				   : gen == VD_GEN_UNKNOWN ? "unknown"
							   : NULL;
		if (!name) {
			snprintf(g, sizeof(g), "%u", gen);
			name = g;
		}
		printf("VD-VERIFY EXTENT off=%" PRIu64 " len=%" PRIu64
		       " gen=%s\n",
		       h.area_off + ext[i].start * (uint64_t)h.gran,
		       (g1 - ext[i].start) * h.gran, name);
	}
	free(ext);
	close(fd);
	return 0;
}
