/* Discovery: the xenstore watcher with Xen 4.17's and 4.18's node layouts
 * (x86 without a window in xenstore, Arm with one), device removal and
 * guest death; the static configuration file (a crashed device restarted)
 * and its parser. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "control.h"
#include "launch.h"
#include "xen_priv.h"
#include "xtest.h"

#define DOMID 7
#define BE    "/local/domain/0/backend"

static char img[64];
static int img_fd = -1;
static char *state_dir;
static char conf[128];
static struct sx_vdev *dev;
static pid_t daemon_pid = -1;
static bool arm;
static unsigned be_dom; /* the backend domain of the 4.17 nodes */

static void use_arm(void)
{
	sx_set_arch(SX_ARM);
	arm = true;
}

static int group_setup(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	sx_set_backend_domid(0);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, 64), 0);
	assert_int_equal(sx_xs_write("/local/domain/7/name", "guest1"), 0);
	img_fd = xt_image(img, sizeof(img));
	assert_true(img_fd >= 0);
	state_dir = xt_tmpdir();
	assert_non_null(state_dir);
	snprintf(conf, sizeof(conf), "%s/devices.conf", state_dir);
	return 0;
}

static void stop_daemon(void)
{
	int st;

	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, &st, 0);
		daemon_pid = -1;
	}
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	stop_daemon();
	sx_vdev_free(dev);
	dev = NULL;
	sx_domain_destroy(DOMID);
	sx_xs_rm("/local/domain/0/backend");
	sx_xs_rm("/local/domain/7");
	close(img_fd);
	unlink(img);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", state_dir);
	free(state_dir);
	sx_xs_rm("/local/domain/3/backend");
	sx_set_arch(SX_X86);
	arm = false;
	be_dom = 0;
	return 0;
}

static void write_conf(const char *text)
{
	FILE *f = fopen(conf, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static volatile int daemon_stop;

extern const struct vd_device_type vd_blk_type;
static const struct vd_device_type *const types[] = {&vd_blk_type, NULL};

static void on_term(int sig)
{
	(void)sig;
	daemon_stop = VD_STOP;
}

/* The daemon in a process of its own, as `virtiod xen-watch` or
 * `virtiod --config` would run. */
static void start_watcher(bool with_conf)
{
	daemon_pid = fork();
	assert_true(daemon_pid >= 0);
	if (daemon_pid == 0) {
		char *argv[] = {
			"xen-watch", "--backend-domid", "0",  "--state-dir",
			state_dir,   "--config",	conf, NULL};

		signal(SIGTERM, on_term);
		if (!with_conf)
			argv[5] = NULL;
		_exit(vd_xen_watch_main(with_conf ? 7 : 5, argv,
					vd_launcher_new(&vd_xen_shim, types),
					&daemon_stop));
	}
}

/* The watcher in a driver domain (backend domid 3), without a mapping
 * file: everything it needs is in xenstore. */
static void start_watcher_in_driver_domain(void)
{
	daemon_pid = fork();
	assert_true(daemon_pid >= 0);
	if (daemon_pid == 0) {
		char *argv[] = {"xen-watch",   "--backend-domid", "3",
				"--state-dir", state_dir,	  NULL};

		signal(SIGTERM, on_term);
		_exit(vd_xen_watch_main(5, argv,
					vd_launcher_new(&vd_xen_shim, types),
					&daemon_stop));
	}
}

static void start_config_main(void)
{
	daemon_pid = fork();
	assert_true(daemon_pid >= 0);
	if (daemon_pid == 0) {
		signal(SIGTERM, on_term);
		_exit(vd_xen_config_file_main(
			conf, vd_launcher_new(&vd_xen_shim, types),
			&daemon_stop));
	}
}

static void probe(bool grant)
{
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = arm ? 0x2000000 : XT_BASE,
		.grant = grant,
		.features = 1ULL << VIRTIO_F_VERSION_1 |
			    1ULL << VIRTIO_F_ACCESS_PLATFORM,
		.queue_size = 64,
		.device_id = VIRTIO_ID_BLOCK,
	};

	/* The device's process creates its server before it claims the
	 * window: on a loaded machine a probe in between finds nobody. */
	for (int t = 0; t < 10000 && sx_server_for(DOMID, o.base) < 0; t += 10)
		usleep(10000);
	assert_int_equal(sx_vdev_probe(&o, &dev), 0);
}

static void io_check(uint64_t sector)
{
	uint8_t *ram = sx_guest_ram(DOMID), disk[4096];
	uint64_t b = sx_vdev_alloc(dev, 4096);

	for (size_t i = 0; i < 4096; i++)
		ram[b + i] = xt_pattern((uint32_t)sector, i);
	assert_int_equal(sx_blk_rw(dev, 0, VIRTIO_BLK_T_OUT, sector, b, 4096),
			 0);
	assert_int_equal(pread(img_fd, disk, 4096, (off_t)sector * 512), 4096);
	assert_memory_equal(disk, ram + b, 4096);
}

static int wait_servers(unsigned n, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (sx_servers(DOMID) == n)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* What Xen 4.17's libxl writes for a specification=virtio disk, in the
 * backend domain `be_dom` (dom0 unless a case says otherwise). */
static void toolstack_417(const char *base, const char *irq, const char *mode)
{
	char p[128], k[160];

	snprintf(p, sizeof(p), "/local/domain/%u/backend/virtio_disk/7/0",
		 be_dom);

	snprintf(k, sizeof(k), "%s/frontend", p);
	sx_xs_write(k, "/local/domain/7/device/virtio_disk/0");
	snprintf(k, sizeof(k), "%s/frontend-id", p);
	sx_xs_write(k, "7");
	snprintf(k, sizeof(k), "%s/params", p);
	sx_xs_write(k, img);
	snprintf(k, sizeof(k), "%s/mode", p);
	sx_xs_write(k, mode);
	snprintf(k, sizeof(k), "%s/type", p);
	sx_xs_write(k, "standalone");
	snprintf(k, sizeof(k), "%s/specification", p);
	sx_xs_write(k, "virtio");
	snprintf(k, sizeof(k), "%s/transport", p);
	sx_xs_write(k, "mmio");
	snprintf(k, sizeof(k), "%s/online", p);
	sx_xs_write(k, "1");
	if (base) {
		snprintf(k, sizeof(k), "%s/base", p);
		sx_xs_write(k, base);
		snprintf(k, sizeof(k), "%s/irq", p);
		sx_xs_write(k, irq);
	}
	/* state last: libxl then waits up to 10 s for InitWait */
	snprintf(k, sizeof(k), "%s/state", p);
	sx_xs_write(k, "1");
}

static void xs417_x86_window_from_config_then_removed(void **s)
{
	(void)s;
	write_conf("# x86: the toolstack allocates no window\n"
		   "blk domain=guest1 devid=0 base=0xfe000000 irq=7\n");
	start_watcher(true);
	toolstack_417(NULL, NULL, "w");
	/* InitWait within libxl's 10 s, the window already claimed */
	assert_int_equal(sx_xs_wait(BE "/virtio_disk/7/0/state", "2", 10000),
			 0);
	assert_true(sx_server_for(DOMID, XT_BASE) >= 0);
	probe(false);
	io_check(40);
	/* xl block-detach / domain destroy: the nodes go, so does the
	 * server, and nothing re-creates the node. */
	sx_xs_rm(BE "/virtio_disk/7/0");
	assert_int_equal(wait_servers(0, 5000), 0);
	usleep(100000);
	assert_null(sx_xs_read(BE "/virtio_disk/7/0/state"));
}

/* x86 without a --config line: no window and no IRQ, so nothing to serve
 * (not a window at guest-physical 0). */
static void xs417_x86_without_window_is_refused(void **s)
{
	struct sx_counters c0, c1;

	(void)s;
	sx_counters(&c0);
	start_watcher(false);
	toolstack_417(NULL, NULL, "w");
	usleep(800000);
	sx_counters(&c1);
	/* No device process even tried. */
	assert_int_equal(c1.dm_open, c0.dm_open);
	assert_int_equal(sx_servers(DOMID), 0);
}

static void xs417_readonly_arm_window_from_xenstore(void **s)
{
	uint8_t *ram;
	uint64_t b;

	(void)s;
	use_arm();
	start_watcher(false);
	/* Arm's libxl writes base and irq in decimal */
	toolstack_417("33554432", "33", "r");
	assert_int_equal(sx_xs_wait(BE "/virtio_disk/7/0/state", "2", 10000),
			 0);
	probe(false);
	ram = sx_guest_ram(DOMID);
	b = sx_vdev_alloc(dev, 4096);
	assert_int_equal(sx_blk_rw(dev, 0, VIRTIO_BLK_T_IN, 8, b, 4096), 0);
	assert_int_equal(ram[b], xt_pattern(8, 0));
	/* mode=r: writes refused by the device */
	assert_int_equal(sx_blk_rw(dev, 0, VIRTIO_BLK_T_OUT, 8, b, 4096),
			 VIRTIO_BLK_S_IOERR);
}

/* Found on Xen 4.17 for Arm: a backend other than dom0 makes libxl link the
 * guest's device to xen,grant-dma, so the guest uses grants; the node says
 * nothing of it and a driver domain has no right to map guest memory. */
static void xs417_arm_driver_domain_serves_with_grants(void **s)
{
	(void)s;
	use_arm();
	be_dom = 3;
	start_watcher_in_driver_domain();
	toolstack_417("33554432", "33", "w");
	assert_int_equal(
		sx_xs_wait("/local/domain/3/backend/virtio_disk/7/0/state", "2",
			   10000),
		0);
	probe(true);
	assert_true(sx_vdev_features(dev) & (1ULL << VIRTIO_F_ACCESS_PLATFORM));
	io_check(24);
}

/* The same node in dom0 is served by foreign mapping (no grant link). */
static void xs417_arm_dom0_backend_serves_foreign(void **s)
{
	(void)s;
	use_arm();
	start_watcher(false);
	toolstack_417("33554432", "33", "w");
	assert_int_equal(sx_xs_wait(BE "/virtio_disk/7/0/state", "2", 10000),
			 0);
	probe(false);
	assert_false(sx_vdev_features(dev) &
		     (1ULL << VIRTIO_F_ACCESS_PLATFORM));
	io_check(32);
}

static void toolstack_418(const char *grant, const char *type)
{
	const char *p = BE "/virtio/7/0";
	char k[128];

	snprintf(k, sizeof(k), "%s/frontend", p);
	sx_xs_write(k, "/local/domain/7/device/virtio/0");
	snprintf(k, sizeof(k), "%s/frontend-id", p);
	sx_xs_write(k, "7");
	snprintf(k, sizeof(k), "%s/type", p);
	sx_xs_write(k, type);
	snprintf(k, sizeof(k), "%s/transport", p);
	sx_xs_write(k, "mmio");
	snprintf(k, sizeof(k), "%s/grant_usage", p);
	sx_xs_write(k, grant);
	snprintf(k, sizeof(k), "%s/base", p);
	sx_xs_write(k, "0x2000000");
	snprintf(k, sizeof(k), "%s/irq", p);
	sx_xs_write(k, "33");
	snprintf(k, sizeof(k), "%s/state", p);
	sx_xs_write(k, "1");
}

static void xs418_grant_device_with_disk_from_config(void **s)
{
	char line[256];

	(void)s;
	use_arm();
	snprintf(line, sizeof(line), "blk domain=guest1 devid=0 disk=%s\n",
		 img);
	write_conf(line);
	start_watcher(true);
	toolstack_418("1", "virtio,device2");
	assert_int_equal(wait_servers(1, 10000), 0);
	probe(true);
	assert_true(sx_vdev_features(dev) & (1ULL << VIRTIO_F_ACCESS_PLATFORM));
	io_check(80);
	/* The guest dies: its server goes with it, the watcher's child ends
	 * and the toolstack cleans up the nodes. */
	sx_domain_destroy(DOMID);
	usleep(1500000);
	sx_xs_rm(BE "/virtio/7");
	sx_vdev_free(dev);
	dev = NULL;
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, 64), 0);
	assert_int_equal(sx_servers(DOMID), 0);
}

static void xs418_without_config_is_refused(void **s)
{
	(void)s;
	use_arm();
	start_watcher(false);
	toolstack_418("0", "virtio,device2");
	usleep(500000);
	/* A generic virtio node names no disk: nothing is served. */
	assert_int_equal(sx_servers(DOMID), 0);
}

static void wrong_device_type_for_the_node_is_refused(void **s)
{
	char line[256];

	(void)s;
	use_arm();
	snprintf(line, sizeof(line), "blk domain=guest1 devid=0 disk=%s\n",
		 img);
	write_conf(line);
	start_watcher(true);
	toolstack_418("0", "virtio,device4"); /* an rng node */
	usleep(800000);
	assert_int_equal(sx_servers(DOMID), 0);
}

static void static_config_file_serves_dom0less_devices(void **s)
{
	char line[256];

	(void)s;
	snprintf(line, sizeof(line),
		 "# dom0less: everything known at build time\n"
		 "blk domid=7 base=0xfe000000 irq=7 disk=%s map-cache-size=8\n",
		 img);
	write_conf(line);
	start_config_main();
	assert_int_equal(wait_servers(1, 10000), 0);
	probe(false);
	io_check(120);
	stop_daemon();
	assert_int_equal(sx_servers(DOMID), 0);
}

/* With a control directory (--control DIR), each device process of
 * `virtiod --config` answers on DIR/<device>.ctl: its own counters, and
 * resize. */
static void static_config_gives_each_device_a_control_socket(void **s)
{
	char line[256], dir[160], path[200], err[256], *body = NULL;
	struct stat st;
	int r = -1;

	(void)s;
	snprintf(dir, sizeof(dir), "%s/ctl", state_dir);
	snprintf(path, sizeof(path), "%s/blk-dom7-dev0.ctl", dir);
	snprintf(line, sizeof(line),
		 "blk domid=7 base=0xfe000000 irq=7 disk=%s\n", img);
	write_conf(line);
	vd_launch_set_control_dir(dir);
	start_config_main();
	vd_launch_set_control_dir(NULL);
	assert_int_equal(wait_servers(1, 10000), 0);
	probe(false);
	io_check(120);
	for (int t = 0; t < 200 && r < 0; t++) {
		r = vd_control_call(path, "stats json", &body, err,
				    sizeof(err));
		if (r < 0)
			usleep(10000);
	}
	assert_int_equal(r, 0);
	assert_non_null(strstr(body, "\"name\":\"blk dom7 dev0\""));
	assert_null(strstr(body, "\"requests\":0,"));
	free(body);
	assert_int_equal(vd_control_call(path, "resize 8388608", &body, err,
					 sizeof(err)),
			 0);
	free(body);
	assert_int_equal(fstat(img_fd, &st), 0);
	assert_int_equal(st.st_size, 8388608);
	stop_daemon();
	/* the device process removed its socket */
	assert_int_equal(stat(path, &st), -1);
}

/* The one device process of the supervisor, or -1. */
static pid_t device_process(void)
{
	char path[64];
	int pid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
		 (int)daemon_pid, (int)daemon_pid);
	f = fopen(path, "r");
	if (f && fscanf(f, "%d", &pid) != 1)
		pid = -1;
	if (f)
		fclose(f);
	return pid;
}

/* `virtiod --config`: a device process that crashes is started again and
 * takes its IOREQ server over; the guest's device carries on. */
static void static_config_restarts_a_crashed_device(void **s)
{
	struct sx_counters c0, c1;
	char line[256];
	pid_t first, second = -1;

	(void)s;
	snprintf(line, sizeof(line),
		 "blk domid=7 base=0xfe000000 irq=7 disk=%s\n", img);
	write_conf(line);
	start_config_main();
	assert_int_equal(wait_servers(1, 10000), 0);
	probe(false);
	io_check(120);
	first = device_process();
	assert_true(first > 0);
	sx_counters(&c0);
	kill(first, SIGKILL);
	for (int t = 0; t < 5000 && (second <= 0 || second == first); t += 10) {
		usleep(10000);
		second = device_process();
	}
	assert_true(second > 0 && second != first);
	io_check(160); /* answered by the successor */
	sx_counters(&c1);
	assert_int_equal(c1.dm_create, c0.dm_create);
	assert_int_equal(sx_servers(DOMID), 1);
	stop_daemon();
	assert_int_equal(sx_servers(DOMID), 0);
}

/* A device process that crashes while its node is there is started again
 * and takes its server over: the guest's disk goes on. */
static void xs417_crashed_device_process_is_restarted(void **s)
{
	struct sx_counters c0, c1;
	pid_t first, second = -1;

	(void)s;
	write_conf("blk domain=guest1 devid=0 base=0xfe000000 irq=7\n");
	start_watcher(true);
	toolstack_417(NULL, NULL, "w");
	assert_int_equal(sx_xs_wait(BE "/virtio_disk/7/0/state", "2", 10000),
			 0);
	probe(false);
	io_check(40);
	first = device_process();
	assert_true(first > 0);
	sx_counters(&c0);
	kill(first, SIGKILL);
	for (int t = 0; t < 5000 && (second <= 0 || second == first); t += 10) {
		usleep(10000);
		second = device_process();
	}
	assert_true(second > 0 && second != first);
	io_check(80); /* answered by the successor */
	sx_counters(&c1);
	assert_int_equal(c1.dm_create, c0.dm_create); /* taken over */
	assert_int_equal(sx_servers(DOMID), 1);
	sx_xs_rm(BE "/virtio_disk/7/0");
	assert_int_equal(wait_servers(0, 5000), 0);
}

static void config_lines_are_checked(void **s)
{
	struct vd_xen_device_spec sp;
	char err[256];

	(void)s;
	assert_int_equal(vd_xen_config_parse_line("  # nothing\n", &sp, err,
						  sizeof(err)),
			 1);
	assert_int_equal(vd_xen_config_parse_line("\n", &sp, err, sizeof(err)),
			 1);
	assert_int_equal(
		vd_xen_config_parse_line("blk domid=3 base=0x2000200 irq=34 "
					 "disk=/a.img readonly grant "
					 "map-cache-size=0 devid=1",
					 &sp, err, sizeof(err)),
		0);
	assert_string_equal(sp.dev.type, "blk");
	assert_int_equal(sp.xen.cfg.domid, 3);
	assert_int_equal(sp.xen.cfg.mmio_base, 0x2000200);
	assert_int_equal(sp.xen.cfg.irq, 34);
	assert_int_equal(sp.devid, 1);
	assert_int_equal(sp.xen.cfg.mem_mode, VD_XEN_MEM_GRANT);
	assert_int_equal(sp.xen.cfg.map_cache_size, VD_XEN_MAP_CACHE_NONE);
	assert_int_equal(sp.dev.nopt, 2);
	assert_string_equal(sp.dev.opt_name[0], "disk");
	assert_string_equal(sp.dev.opt_val[0], "/a.img");
	assert_string_equal(sp.dev.opt_name[1], "readonly");
	assert_false(sp.dev.opt_has_val[1]);
	/* refused, with a reason */
	assert_int_equal(vd_xen_config_parse_line("blk base=1 irq=2", &sp, err,
						  sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "domid"));
	assert_int_equal(
		vd_xen_config_parse_line("blk domid=x", &sp, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(vd_xen_config_parse_line("blk domid=1 irq=5000", &sp,
						  err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vd_xen_config_parse_line("blk domid=1 base=-1", &sp,
						  err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vd_xen_config_parse_line("blk domid=99999", &sp, err,
						  sizeof(err)),
			 -EINVAL);
	/* An option without a name (fuzz_xen_config, corpus
	 * fixed-option-without-name) is refused with the line. */
	assert_int_equal(vd_xen_config_parse_line("blk domid=1 =x disk=/a", &sp,
						  err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "needs a name"));
	/* A window at 0 or past the top of the address space (corpus
	 * fixed-window-at-zero). */
	assert_int_equal(vd_xen_config_parse_line("blk domid=1 base=0 irq=33",
						  &sp, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "MMIO window"));
	assert_int_equal(
		vd_xen_config_parse_line("blk domid=1 base=0xfffffffffffffe01 "
					 "irq=33",
					 &sp, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(vd_xen_config_parse_line("blk domid=1 "
						  "base=0xfffffffffffffe00 "
						  "irq=33",
						  &sp, err, sizeof(err)),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			xs417_x86_window_from_config_then_removed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			xs417_x86_without_window_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
			xs417_crashed_device_process_is_restarted, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			xs417_readonly_arm_window_from_xenstore, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			xs417_arm_driver_domain_serves_with_grants, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			xs417_arm_dom0_backend_serves_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(
			xs418_grant_device_with_disk_from_config, setup,
			teardown),
		cmocka_unit_test_setup_teardown(xs418_without_config_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			wrong_device_type_for_the_node_is_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			static_config_file_serves_dom0less_devices, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			static_config_restarts_a_crashed_device, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			static_config_gives_each_device_a_control_socket, setup,
			teardown),
		cmocka_unit_test(config_lines_are_checked),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
