/* vd-verify: command line. Parses and validates every option, then hands
 * over to one mode (run, check, dump, pattern, bench). Exit status: 0 pass,
 * 1 failure (of the device, the data or the record), 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd_verify.h"

static const char usage[] =
	"usage: vd-verify run --dev DEV [options]      (in the guest: writes "
	"DEV!)\n"
	"       vd-verify check --image FILE (--console LOG | --expect-sum "
	"HEX)\n"
	"       vd-verify dump --image FILE [--extents]\n"
	"       vd-verify bench --dev DEV [options]    (writes DEV!)\n"
	"       vd-verify pattern --seed N --offset N --len N --gen N|zero\n"
	"\n"
	"run: O_DIRECT reads, writes, flushes, discards and write-zeroes on "
	"DEV\n"
	"(a block device or a file), through Linux native AIO, at each queue\n"
	"depth in turn; every read is checked against the data written. Then\n"
	"every byte the run knows is read back once more, and the run's "
	"record\n"
	"(which generation of data each block holds) is written at the end of\n"
	"DEV. The last line is \"VD-VERIFY RESULT PASS|FAIL ... "
	"record_sum=HEX\".\n"
	"  --area-offset N   start of the test area (multiple of 4096; 0)\n"
	"  --area-size N     its size (multiple of 4096; default: 64 MiB or\n"
	"                    what fits before the record's reserve)\n"
	"  --bytes N         bytes to read+write, over all depths (64M)\n"
	"  --seconds S       time limit, over all depths (0: none); the run\n"
	"                    stops at whichever limit comes first\n"
	"  --qd LIST         queue depths, one phase each, <= 64 (1,32)\n"
	"  --mix LIST        operation weights r=,w=,f=,d=,z= (read, write,\n"
	"                    flush, discard, write-zeroes; "
	"r=45,w=40,f=5,d=5,z=5;\n"
	"                    discard is dropped from the default if DEV has "
	"none)\n"
	"  --seed N          data seed (default: random, printed)\n"
	"  --discard-zeroes  discarded blocks must read as zeroes (files: "
	"always)\n"
	"  --progress S      progress line every S seconds (2; 0: none)\n"
	"  --timeout S       a request not completed after S seconds fails "
	"the\n"
	"                    run (60)\n"
	"  --inject KIND:N   self-test only: make the Nth write vanish\n"
	"                    (drop-write), the Nth completion short (short), "
	"or\n"
	"                    the Nth checked read wrong (corrupt-read)\n"
	"\n"
	"check: on the host, after the guest is gone. Reads the record at the\n"
	"end of FILE, checks its magic and checksum and that it is the record\n"
	"the guest announced, then compares every byte of FILE the record\n"
	"vouches for; prints a MISMATCH line (offset, length, expected, "
	"found)\n"
	"per wrong run of sectors and \"VD-VERIFY CHECK PASS|FAIL\".\n"
	"  --image FILE      the disk image (or block device) the guest used\n"
	"  --console LOG     the guest's console log: its last RESULT line\n"
	"                    gives the record sum; a FAIL there fails the "
	"check\n"
	"  --expect-sum HEX  the record_sum the guest printed\n"
	"  --record-at N     the record header's offset (default: the last\n"
	"                    4 KiB block of FILE)\n"
	"  --max-report N    MISMATCH lines to print at most (10)\n"
	"\n"
	"dump: print the record's header (and with --extents each extent).\n"
	"\n"
	"bench: O_DIRECT throughput, native AIO, one line per workload:\n"
	"\"VD-BENCH workload=... bs=... qd=... iops=... mbs=...\".\n"
	"  --seconds S       per workload (5)\n"
	"  --area-offset N, --area-size N   region used (default: all of DEV)\n"
	"  --workloads LIST  KIND:BS:QD,... with KIND randread, randwrite, "
	"read,\n"
	"                    write (default randread:4k:1,randread:4k:32,\n"
	"                    "
	"randwrite:4k:1,randwrite:4k:32,read:1m:8,write:1m:8)\n"
	"\n"
	"pattern: write to stdout the bytes a run of seed N writes at "
	"--offset\n"
	"with generation --gen (a test aid: makes stale data on purpose).\n"
	"\n"
	"Sizes take K, M, G suffixes (powers of 1024). Exit status: 0 pass,\n"
	"1 failure, 2 usage error. See docs/verify.md.\n";

enum {
	O_DEV = 1,
	O_AREA_OFF,
	O_AREA_SIZE,
	O_BYTES,
	O_SECONDS,
	O_QD,
	O_MIX,
	O_SEED,
	O_DZ,
	O_PROGRESS,
	O_TIMEOUT,
	O_INJECT,
	O_IMAGE,
	O_CONSOLE,
	O_SUM,
	O_REC_AT,
	O_MAXREP,
	O_EXTENTS,
	O_OFFSET,
	O_LEN,
	O_GEN,
	O_WORKLOADS,
	O_HELP,
};

static const struct option opts[] = {
	{"dev", required_argument, NULL, O_DEV},
	{"area-offset", required_argument, NULL, O_AREA_OFF},
	{"area-size", required_argument, NULL, O_AREA_SIZE},
	{"bytes", required_argument, NULL, O_BYTES},
	{"seconds", required_argument, NULL, O_SECONDS},
	{"qd", required_argument, NULL, O_QD},
	{"mix", required_argument, NULL, O_MIX},
	{"seed", required_argument, NULL, O_SEED},
	{"discard-zeroes", no_argument, NULL, O_DZ},
	{"progress", required_argument, NULL, O_PROGRESS},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"inject", required_argument, NULL, O_INJECT},
	{"image", required_argument, NULL, O_IMAGE},
	{"console", required_argument, NULL, O_CONSOLE},
	{"expect-sum", required_argument, NULL, O_SUM},
	{"record-at", required_argument, NULL, O_REC_AT},
	{"max-report", required_argument, NULL, O_MAXREP},
	{"extents", no_argument, NULL, O_EXTENTS},
	{"offset", required_argument, NULL, O_OFFSET},
	{"len", required_argument, NULL, O_LEN},
	{"gen", required_argument, NULL, O_GEN},
	{"workloads", required_argument, NULL, O_WORKLOADS},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "vd-verify: --%s %s: %s (--help lists the options)\n",
		opt, arg ? arg : "", why);
	return 2;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_qd(const char *s, struct vd_run_opts *o)
{
	char buf[128], *save, *tok;
	snprintf(buf, sizeof(buf), "%s", s);
	o->nqd = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (o->nqd == 8 || vd_parse_u64(tok, &v, false) || !v ||
		    v > VD_MAX_QD)
			return -EINVAL;
		o->qd[o->nqd++] = (unsigned)v;
	}
	return o->nqd ? 0 : -EINVAL;
}

static int parse_mix(const char *s, struct vd_run_opts *o)
{
	static const char keys[] = "rwfdz";
	char buf[128], *save, *tok;
	snprintf(buf, sizeof(buf), "%s", s);
	memset(o->mix, 0, sizeof(o->mix));
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		const char *k = strchr(keys, tok[0]);
		uint64_t v;
		if (!tok[0] || !k || tok[1] != '=' ||
		    vd_parse_u64(tok + 2, &v, false) || v > 1000)
			return -EINVAL;
		o->mix[k - keys] = (unsigned)v;
	}
	o->mix_set = true;
	return o->mix[0] + o->mix[1] ? 0 : -EINVAL; /* reads or writes */
}

static int parse_inject(const char *s, struct vd_run_opts *o)
{
	static const struct {
		const char *name;
		enum vd_inject kind;
	} kinds[] = {{"drop-write:", VD_INJ_DROP_WRITE},
		     {"short:", VD_INJ_SHORT},
		     {"corrupt-read:", VD_INJ_CORRUPT}};
	for (unsigned i = 0; i < 3; i++) {
		size_t n = strlen(kinds[i].name);
		if (strncmp(s, kinds[i].name, n))
			continue;
		if (vd_parse_u64(s + n, &o->inject_n, false) || !o->inject_n)
			return -EINVAL;
		o->inject = kinds[i].kind;
		return 0;
	}
	return -EINVAL;
}

/* pattern: stdout gets the bytes generation gen holds at [off, off+len) */
static int do_pattern(uint64_t seed, uint64_t off, uint64_t len, uint32_t gen)
{
	static unsigned char buf[1 << 16];
	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		vd_pattern_fill(buf, off, n, seed, gen);
		if (fwrite(buf, 1, n, stdout) != n)
			return 1;
		off += n;
		len -= n;
	}
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct vd_run_opts ro = {.bytes = 64ull << 20,
				 .qd = {1, 32},
				 .nqd = 2,
				 .progress = 2,
				 .timeout = 60};
	struct vd_check_opts co = {.max_report = 10};
	struct vd_bench_opts bo = {.seconds = 5};
	uint64_t v, p_off = 0, p_len = 0, p_gen = 0;
	bool extents = false, have_seed = false, have_off = false,
	     have_len = false, have_gen = false, bytes_set = false;
	const char *dev = NULL;
	double secs = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *mode = argv[1];
	if (strcmp(mode, "run") && strcmp(mode, "check") &&
	    strcmp(mode, "dump") && strcmp(mode, "bench") &&
	    strcmp(mode, "pattern")) {
		fprintf(stderr, "vd-verify: unknown mode '%s' (--help)\n",
			mode);
		return 2;
	}
	optind = 2;
	int c, li = -1;
	while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
		const char *name = li >= 0 ? opts[li].name : "?";
		li = -1;
		switch (c) {
		case O_DEV:
			dev = optarg;
			break;
		case O_AREA_OFF:
			if (vd_parse_u64(optarg, &v, true))
				return bad(name, optarg, "not a size");
			ro.area_off = bo.area_off = v;
			break;
		case O_AREA_SIZE:
			if (vd_parse_u64(optarg, &v, true) || !v)
				return bad(name, optarg, "not a size");
			ro.area_len = bo.area_len = v;
			break;
		case O_BYTES:
			if (vd_parse_u64(optarg, &ro.bytes, true))
				return bad(name, optarg, "not a size");
			bytes_set = true;
			break;
		case O_SECONDS:
			if (parse_secs(optarg, &secs))
				return bad(name, optarg, "not a duration");
			break;
		case O_QD:
			if (parse_qd(optarg, &ro))
				return bad(name, optarg,
					   "a list of 1 to 8 depths in 1..64");
			break;
		case O_MIX:
			if (parse_mix(optarg, &ro))
				return bad(
					name, optarg,
					"r=N,w=N,f=N,d=N,z=N with r or w > 0");
			break;
		case O_SEED:
			if (vd_parse_u64(optarg, &ro.seed, false))
				return bad(name, optarg, "not a number");
			ro.seed_set = have_seed = true;
			break;
		case O_DZ:
			ro.discard_zeroes = true;
			break;
		case O_PROGRESS:
			if (parse_secs(optarg, &ro.progress))
				return bad(name, optarg, "not a duration");
			break;
		case O_TIMEOUT:
			if (parse_secs(optarg, &ro.timeout) || ro.timeout < 1)
				return bad(name, optarg, "at least 1 second");
			break;
		case O_INJECT:
			if (parse_inject(optarg, &ro))
				return bad(name, optarg,
					   "drop-write:N, short:N or "
					   "corrupt-read:N");
			break;
		case O_IMAGE:
			co.image = optarg;
			break;
		case O_CONSOLE:
			co.console = optarg;
			break;
		case O_SUM: {
			char *end;
			errno = 0;
			co.expect_sum = strtoull(optarg, &end, 16);
			if (errno || strlen(optarg) != 16 || *end)
				return bad(name, optarg, "16 hex digits");
			co.have_sum = true;
			break;
		}
		case O_REC_AT:
			if (vd_parse_u64(optarg, &co.record_at, true))
				return bad(name, optarg, "not an offset");
			break;
		case O_MAXREP:
			if (vd_parse_u64(optarg, &v, false) || v > 100000)
				return bad(name, optarg, "0..100000");
			co.max_report = (unsigned)v;
			break;
		case O_EXTENTS:
			extents = true;
			break;
		case O_OFFSET:
			if (vd_parse_u64(optarg, &p_off, true))
				return bad(name, optarg, "not an offset");
			have_off = true;
			break;
		case O_LEN:
			if (vd_parse_u64(optarg, &p_len, true))
				return bad(name, optarg, "not a size");
			have_len = true;
			break;
		case O_GEN:
			if (!strcmp(optarg, "zero"))
				p_gen = VD_GEN_ZERO;
			else if (vd_parse_u64(optarg, &p_gen, false) ||
				 !p_gen || p_gen > VD_GEN_MAX)
				return bad(name, optarg,
					   "a generation (1..) or zero");
			have_gen = true;
			break;
		case O_WORKLOADS:
			bo.workloads = optarg;
			break;
		case 'h':
		case O_HELP:
			fputs(usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vd-verify: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}

	if (!strcmp(mode, "run")) {
		if (!dev)
			return bad("dev", NULL, "required");
		ro.dev = dev;
		if (secs >= 0) {
			ro.seconds = secs;
			if (!bytes_set) /* time alone limits the run */
				ro.bytes = UINT64_MAX;
		}
		return vd_run(&ro);
	}
	if (!strcmp(mode, "bench")) {
		if (!dev)
			return bad("dev", NULL, "required");
		bo.dev = dev;
		if (secs > 0)
			bo.seconds = secs;
		return vd_bench(&bo);
	}
	if (!strcmp(mode, "pattern")) {
		if (!have_seed || !have_off || !have_len || !have_gen ||
		    p_off % VD_SECTOR || p_len % VD_SECTOR)
			return bad(
				"pattern", NULL,
				"needs --seed, --offset and --len (multiples "
				"of 512) and --gen");
		return do_pattern(ro.seed, p_off, p_len, (uint32_t)p_gen);
	}
	if (!co.image)
		return bad("image", NULL, "required");
	if (!strcmp(mode, "dump"))
		return vd_dump(co.image, co.record_at, extents);
	if (!co.console && !co.have_sum)
		return bad("console", NULL,
			   "check needs --console or --expect-sum (the guest's "
			   "record_sum): without it a stale record would pass");
	return vd_check(&co);
}
