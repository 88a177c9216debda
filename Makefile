# virtiod build. Sources are found by directory, so adding a file needs no
# edit here. See README.md for the targets.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/virtiod
# Debian's packages put units in /lib/systemd/system (debian/rules says so)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

# `make ARCH=arm64 [targets]`: a cross build into build-arm64/ with Debian's
# aarch64 cross compiler, against Debian's arm64 packages extracted into a
# sysroot (scripts/arm64-sysroot.sh); test binaries run under qemu-user.
ifeq ($(ARCH),arm64)
BUILD ?= build-arm64
ifeq ($(origin CC),default)
CC := aarch64-linux-gnu-gcc
endif
SYSROOT := $(abspath $(BUILD))/sysroot
SYSROOT_LIBS := $(SYSROOT)/usr/lib/aarch64-linux-gnu:$(SYSROOT)/lib/aarch64-linux-gnu
PKG_CONFIG := PKG_CONFIG_SYSROOT_DIR=$(SYSROOT) PKG_CONFIG_LIBDIR=$(SYSROOT)/usr/lib/aarch64-linux-gnu/pkgconfig pkg-config
TEST_RUNNER := env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH=$(SYSROOT_LIBS) qemu-aarch64-static
# qemu-user 7.2 has no io_uring (ENOSYS) and refuses pwritev2's RWF_DSYNC:
# the block I/O tests cannot run under it (they run natively on x86).
UNIT_SKIP := test_blk test_blk_backing test_blk_io test_blk_io_engines \
	test_blk_discard test_blk_engine_failure
ifeq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(shell scripts/arm64-sysroot.sh $(SYSROOT) >&2 && echo ok),ok)
$(error arm64 sysroot: see above)
endif
endif
endif
BUILD ?= build
CC ?= cc
FUZZ_CC ?= clang
PKG_CONFIG ?= pkg-config

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)

XEN_PKGS := xendevicemodel xenforeignmemory xengnttab xenevtchn xenstore xentoolcore xencontrol
# blk's network stores (docs/storage.md): NBD through libnbd, Ceph RBD
# through librbd. NETSTORE=0 builds without them; the arm64 build does (its
# sysroot and Xen images carry no Ceph). Debian 12's librbd-dev has no .pc
# file: -lrbd -lrados where pkg-config knows none.
ifeq ($(ARCH),arm64)
NETSTORE ?= 0
endif
NETSTORE ?= 1
ifeq ($(NETSTORE),1)
STORE_CFLAGS = $(shell $(PKG_CONFIG) --cflags libnbd 2>/dev/null)
STORE_LIBS = $(shell $(PKG_CONFIG) --libs libnbd) \
	$(shell $(PKG_CONFIG) --libs librbd 2>/dev/null || echo -lrbd -lrados)
else
STORE_CFLAGS = -DVIRTIOD_NO_NETSTORE
NETSTORE_SRC := src/devices/blk_nbd.c src/devices/blk_rbd.c
endif
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags liburing $(XEN_PKGS) xencontrol 2>/dev/null) $(STORE_CFLAGS)
# Everything that links libvirtiod.a: io_uring and the network stores.
URING_LIBS = $(shell $(PKG_CONFIG) --libs liburing) $(STORE_LIBS)
XEN_LIBS = $(shell $(PKG_CONFIG) --libs $(XEN_PKGS))
# The sandbox (src/main/sandbox*): seccomp filters, capabilities.
SANDBOX_CFLAGS = $(shell $(PKG_CONFIG) --cflags libseccomp libcap-ng 2>/dev/null)
SANDBOX_LIBS = $(shell $(PKG_CONFIG) --libs libseccomp libcap-ng)
# sd_notify and socket activation (src/main only)
SYSTEMD_CFLAGS = $(shell $(PKG_CONFIG) --cflags libsystemd 2>/dev/null)
SYSTEMD_LIBS = $(shell $(PKG_CONFIG) --libs libsystemd)
CMOCKA_CFLAGS = $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

comma := ,
# V=1 shows full command lines.
Q := $(if $(filter 1,$(V)),,@)

WARN := -Wall -Wextra -Werror
BASE_CFLAGS := -std=c11 $(WARN) -D_GNU_SOURCE -Iinclude -DVIRTIOD_VERSION='"$(VERSION)"'
CFLAGS ?= -O2 -g
# CPPFLAGS and LDFLAGS: what a packager adds (dpkg-buildflags: fortify,
# relro, bindnow), used for the daemon.
ALL_CFLAGS = $(BASE_CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP
LDLIBS_COMMON := -lpthread
ifeq ($(ARCH),arm64)
# the libraries' own dependencies are found in the sysroot too
LDLIBS_COMMON += $(patsubst %,-Wl$(comma)-rpath-link$(comma)%,$(subst :, ,$(SYSROOT_LIBS)))
endif

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined

# --------------------------------------------------------------- sources
CORE_SRC := $(filter-out $(NETSTORE_SRC),$(sort $(wildcard src/core/*.c src/transport/*.c src/devices/*.c)))
# src/main: the composition root (command line, registries, launcher).
MAIN_SRC := $(sort $(wildcard src/main/*.c))
# Shims: every folder under shims/ is one, built into $(BUILD)/libvd-NAME.a
# and linked whole into the daemon; shims/NAME/shim.mk may add to
# SHIM_LDLIBS. The shim itself is listed in src/main/registry.c.
SHIMS := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard shims/*/*.c)))))
shim_lib = $(BUILD)/libvd-$(1).a
SHIM_LDLIBS =
-include $(wildcard shims/*/shim.mk)
VU_SRC := $(sort $(wildcard shims/vhost-user/*.c))
XEN_SRC := $(sort $(wildcard shims/xen/*.c))
UNIT_LIB_SRC := $(sort $(wildcard tests/unit/lib/*.c))
UNIT_TESTS := $(sort $(wildcard tests/unit/test_*.c))
XEN_TEST_SRC := $(sort $(wildcard tests/xen/test_*.c))
XEN_STANDIN_SRC := $(sort $(wildcard tests/xen/standin/*.c))
# Helpers shared by the Xen stand-in tests and benchmarks (xtest.h).
XEN_TEST_LIB_SRC := $(sort $(wildcard tests/xen/lib/*.c))
VU_TEST_SRC := $(sort $(wildcard tests/vhost-user/*.c tests/vhost-user/lib/*.c))
# tests/storage: NBD and RBD stores against real servers, through the
# protocol tests' frontend (tests/vhost-user/lib).
STORAGE_TEST_SRC := $(sort $(wildcard tests/storage/*.c)) \
	tests/vhost-user/lib/daemon.c tests/vhost-user/lib/env.c tests/vhost-user/lib/frontend.c
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
# The fuzz targets' frontend side (fuzz_vhost_user's actions).
FUZZ_LIB_SRC := $(sort $(wildcard tests/fuzz/lib/*.c))
# bench/core_*.c: one program each, driving the core through the test driver;
# bench/loadgen/*.c: the vhost-user load generator.
BENCH_CORE_SRC := $(sort $(wildcard bench/core_*.c))
# bench/xen_*.c: one program each, driving the Xen shim through the stand-in.
BENCH_XEN_SRC := $(sort $(wildcard bench/xen_*.c))
LOADGEN_SRC := $(sort $(wildcard bench/loadgen/*.c))
# tests/lib/vhost-user-frontend: the vhost-user frontend library of the
# protocol tests, the fuzz targets and the load generator; it shares
# nothing with the daemon (docs/vhost-user.md).
VUF_DIR := tests/lib/vhost-user-frontend
VUF_SRC := $(sort $(wildcard $(VUF_DIR)/*.c))
# tests/verify/*.c: vd-verify, the guest-side block verifier (static, runs in
# any Linux guest) and its host-side checker. docs/verify.md.
VERIFY_SRC := $(sort $(wildcard tests/verify/*.c))

obj = $(patsubst %.c,$(1)/obj/%.o,$(2))

# --------------------------------------------------------------- outputs
LIB := $(BUILD)/libvirtiod.a
SHIM_LIBS := $(foreach s,$(SHIMS),$(call shim_lib,$(s)))
VU_LIB := $(call shim_lib,vhost-user)
XEN_LIB := $(call shim_lib,xen)
# The composition root without main(), for tests that drive the launcher.
MAIN_LIB := $(BUILD)/libvirtiod-main.a
DAEMON := $(BUILD)/virtiod
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_TESTS))
ASAN_BUILD := $(BUILD)/asan
ASAN_LIB := $(ASAN_BUILD)/libvirtiod.a
ASAN_UNIT_BINS := $(patsubst tests/unit/%.c,$(ASAN_BUILD)/tests/unit/%,$(UNIT_TESTS))
XEN_TEST_BINS := $(patsubst tests/xen/%.c,$(BUILD)/tests/xen/%,$(XEN_TEST_SRC))
VU_TEST_BIN := $(if $(VU_TEST_SRC),$(BUILD)/tests/vhost-user/vu-test)
STORAGE_TEST_BIN := $(BUILD)/tests/storage/storage-test
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
BENCH_CORE_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_CORE_SRC))
BENCH_XEN_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_XEN_SRC))
LOADGEN_BIN := $(if $(LOADGEN_SRC),$(BUILD)/bench/vd-loadgen)
VERIFY_BIN := $(BUILD)/tests/vd-verify
# arm64 build of vd-verify, made when the cross compiler is installed
# (`make verify-arm64` insists on it; make check builds it if it is there).
CROSS_CC ?= aarch64-linux-gnu-gcc
VERIFY_ARM64 := $(BUILD)/arm64/vd-verify
HAVE_CROSS_CC := $(shell command -v $(CROSS_CC) 2>/dev/null)

.PHONY: all deps check check-loadgen check-verify verify-arm64 check-unit check-asan check-xen-standin check-vhost-user \
	check-guest check-dpdk check-storage check-xen check-xen-netrng bench-xen check-arm64 check-xen-arm64 fuzz fuzz-smoke demo bench bench-core bench-net fuzz-run bench-sandbox \
	install deb check-ops clean format lint \
	test tests
.DEFAULT_GOAL := all
# Keep objects built through pattern-rule chains (test objects).
.SECONDARY:

all: $(DAEMON) $(LIB)

deps:
	@scripts/deps.sh

# --------------------------------------------------------------- library
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(call obj,$(BUILD),$(CORE_SRC))
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

define shim_rule
$(call shim_lib,$(1)): $(call obj,$(BUILD),$(sort $(wildcard shims/$(1)/*.c)))
	@mkdir -p $$(dir $$@)
	@printf "  %-4s %s\n" AR $$@
	$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach s,$(SHIMS),$(eval $(call shim_rule,$(s))))

$(MAIN_LIB): $(call obj,$(BUILD),$(filter-out src/main/main.c,$(MAIN_SRC)))
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(DAEMON): $(call obj,$(BUILD),$(MAIN_SRC)) $(SHIM_LIBS) $(LIB)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(call obj,$(BUILD),$(MAIN_SRC)) \
		-Wl,--whole-archive $(SHIM_LIBS) -Wl,--no-whole-archive $(LIB) \
		$(URING_LIBS) $(SHIM_LDLIBS) $(SYSTEMD_LIBS) $(SANDBOX_LIBS) $(LDLIBS_COMMON)
$(call obj,$(BUILD),$(MAIN_SRC)): ALL_CFLAGS += $(SYSTEMD_CFLAGS) $(SANDBOX_CFLAGS)

# --------------------------------------------------------------- unit tests
TEST_CFLAGS = $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/unit/lib

$(BUILD)/tests/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" CC $@
	$(Q)$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/tests/obj/tests/unit/%.o $(call obj,$(BUILD)/tests,$(UNIT_LIB_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(URING_LIBS) $(LDLIBS_COMMON)

# test_loadgen: the load generator's pieces and the frontend library's
# ring, linked from their objects.
LOADGEN_UNIT_SRC := bench/loadgen/histogram.c bench/loadgen/pattern.c $(VUF_DIR)/vuf_vq.c
LOADGEN_UNIT_INC := -Ibench/loadgen -I$(VUF_DIR)
$(BUILD)/tests/unit/test_loadgen: $(call obj,$(BUILD)/tests,$(LOADGEN_UNIT_SRC))
$(BUILD)/tests/obj/tests/unit/test_loadgen.o: TEST_CFLAGS += $(LOADGEN_UNIT_INC)

# test_rng drives the rng model's token bucket (src/devices/rng.h).
$(BUILD)/tests/obj/tests/unit/test_rng.o: TEST_CFLAGS += -Isrc/devices
$(ASAN_BUILD)/tests/obj/tests/unit/test_rng.o: BASE_CFLAGS += -Isrc/devices

# ASan+UBSan: the same library and tests rebuilt with sanitizers.
$(ASAN_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" CC $@
	$(Q)$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(ASAN_LIB): $(call obj,$(ASAN_BUILD),$(CORE_SRC))
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(ASAN_BUILD)/tests/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" CC $@
	$(Q)$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) $(CMOCKA_CFLAGS) -Itests/unit/lib $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(ASAN_BUILD)/tests/unit/%: $(ASAN_BUILD)/tests/obj/tests/unit/%.o $(call obj,$(ASAN_BUILD)/tests,$(UNIT_LIB_SRC)) $(ASAN_LIB)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(CMOCKA_LIBS) $(URING_LIBS) $(LDLIBS_COMMON)

$(ASAN_BUILD)/tests/unit/test_loadgen: $(call obj,$(ASAN_BUILD)/tests,$(LOADGEN_UNIT_SRC))
$(ASAN_BUILD)/tests/obj/tests/unit/test_loadgen.o: BASE_CFLAGS += $(LOADGEN_UNIT_INC)

# --------------------------------------------------------------- Xen stand-in tests
# The shim's objects are the daemon's own; only the libxen* they link
# against differ (tests/xen/standin provides those symbols).
# The multi-device modes also need the composition root's launcher.
XEN_TEST_CFLAGS = $(TEST_CFLAGS) -Itests/xen -Ishims/xen -Isrc/main

$(BUILD)/tests/xen/%: $(BUILD)/tests/obj/tests/xen/%.o $(call obj,$(BUILD)/tests,$(XEN_STANDIN_SRC) $(XEN_TEST_LIB_SRC)) $(call obj,$(BUILD)/tests,$(UNIT_LIB_SRC)) $(MAIN_LIB) $(XEN_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(URING_LIBS) $(SANDBOX_LIBS) $(LDLIBS_COMMON)

$(BUILD)/tests/obj/tests/xen/%.o: tests/xen/%.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" CC $@
	$(Q)$(CC) $(XEN_TEST_CFLAGS) -c -o $@ $<

# Xen's public headers (xenctrl.h: anonymous unions, asm barriers) need GNU C.
$(call obj,$(BUILD),$(XEN_SRC)) $(call obj,$(BUILD)/tests,$(XEN_STANDIN_SRC) $(XEN_TEST_SRC) $(XEN_TEST_LIB_SRC)): ALL_CFLAGS += -std=gnu11

# --------------------------------------------------------------- vhost-user tests
$(VU_TEST_BIN): $(call obj,$(BUILD)/tests,$(VU_TEST_SRC) $(VUF_SRC))
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS_COMMON)

$(call obj,$(BUILD)/tests,$(VU_TEST_SRC)): TEST_CFLAGS += -Itests/vhost-user/lib -I$(VUF_DIR)

# test_sandbox's LD_PRELOAD library: a forbidden call before fdatasync
# (tests only; the daemon never links it).
FORBIDDEN_PRELOAD := $(BUILD)/tests/vhost-user/forbidden_call.so
$(FORBIDDEN_PRELOAD): tests/vhost-user/preload/forbidden_call.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

$(STORAGE_TEST_BIN): $(call obj,$(BUILD)/tests,$(STORAGE_TEST_SRC) $(VUF_SRC))
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS_COMMON)

$(call obj,$(BUILD)/tests,$(filter tests/storage/%,$(STORAGE_TEST_SRC))): TEST_CFLAGS += -Itests/vhost-user/lib -I$(VUF_DIR)

# --------------------------------------------------------------- benchmarks
$(BUILD)/bench/core_%: $(BUILD)/tests/obj/bench/core_%.o $(call obj,$(BUILD)/tests,$(UNIT_LIB_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(URING_LIBS) $(LDLIBS_COMMON) -lm

# The Xen shim's own objects linked against the stand-in libxen*, as the
# Xen stand-in tests are; GNU C for Xen's headers.
$(BUILD)/bench/xen_%: $(BUILD)/tests/obj/bench/xen_%.o $(call obj,$(BUILD)/tests,$(XEN_STANDIN_SRC) $(XEN_TEST_LIB_SRC)) $(call obj,$(BUILD)/tests,$(UNIT_LIB_SRC)) $(XEN_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(URING_LIBS) $(LDLIBS_COMMON) -lm

$(BUILD)/tests/obj/bench/xen_%.o: bench/xen_%.c
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" CC $@
	$(Q)$(CC) $(XEN_TEST_CFLAGS) -c -o $@ $<

$(call obj,$(BUILD)/tests,$(BENCH_XEN_SRC)): ALL_CFLAGS += -std=gnu11

$(LOADGEN_BIN): $(call obj,$(BUILD)/tests,$(LOADGEN_SRC) $(VUF_SRC))
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_COMMON) -lm

$(call obj,$(BUILD)/tests,$(LOADGEN_SRC)): TEST_CFLAGS += -I$(VUF_DIR)

# --------------------------------------------------------------- vd-verify
# One static program (glibc only), so it can be dropped into any initramfs.
VERIFY_CFLAGS = -std=c11 $(WARN) -D_GNU_SOURCE -O2 -static

$(VERIFY_BIN): $(VERIFY_SRC) $(wildcard tests/verify/*.h)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CC) $(VERIFY_CFLAGS) -o $@ $(VERIFY_SRC)

$(VERIFY_ARM64): $(VERIFY_SRC) $(wildcard tests/verify/*.h)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(CROSS_CC) $(VERIFY_CFLAGS) -o $@ $(VERIFY_SRC)

verify-arm64: $(VERIFY_ARM64)

# Self-tests of vd-verify on host files (never timing); the arm64 binary is
# checked to be a static AArch64 executable when it was built.
check-verify: $(VERIFY_BIN) $(if $(HAVE_CROSS_CC),$(VERIFY_ARM64))
	BUILD=$(BUILD) VERIFY_ARM64=$(if $(HAVE_CROSS_CC),$(VERIFY_ARM64)) tests/verify/selftest.sh

bench-core: $(BENCH_CORE_BINS) $(BENCH_XEN_BINS)
	@for b in $(BENCH_CORE_BINS) $(BENCH_XEN_BINS); do $$b || exit 1; done

bench: deps $(DAEMON) $(LOADGEN_BIN)
	BUILD=$(BUILD) scripts/bench.sh

# The sandbox's cost: vd-loadgen against virtiod with --sandbox=seccomp and
# --sandbox=none in alternating rounds (bench/sandbox.sh; figures only).
bench-sandbox: $(DAEMON) $(LOADGEN_BIN)
	BUILD=$(BUILD) bench/sandbox.sh

# virtio-net figures: testpmd through virtiod vs DPDK's vhost+tap, and the
# test guest's TCP through virtiod vs QEMU's -netdev tap (bench/README.md).
bench-net: deps $(DAEMON) $(VERIFY_BIN)
	BUILD=$(BUILD) bench/net.sh

# --------------------------------------------------------------- fuzzing
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# The vhost-user shim is linked in too (fuzz_vhost_user drives it), with
# the frontend side: tests/fuzz/lib and the frontend library.
FUZZ_INC := -Itests/fuzz/lib -I$(VUF_DIR) -Ishims/vhost-user
$(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(VU_SRC) $(FUZZ_LIB_SRC) $(VUF_SRC) \
		$(wildcard tests/fuzz/lib/*.h $(VUF_DIR)/*.h shims/vhost-user/*.h)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(FUZZ_CC) $(BASE_CFLAGS) $(PKG_CFLAGS) $(FUZZ_FLAGS) $(FUZZ_INC) -o $@ $< $(CORE_SRC) $(VU_SRC) \
		$(FUZZ_LIB_SRC) $(VUF_SRC) $(URING_LIBS) $(LDLIBS_COMMON)

# The device and Xen targets link what they drive instead of the
# vhost-user frontend: blk and net with the unit tests' driver (rings in
# canary-fenced memory), the Xen shim with the stand-in libxen* and the Xen
# tests' helpers (GNU C for Xen's headers).
FUZZ_DEV_BINS := $(filter $(BUILD)/fuzz/fuzz_blk_% $(BUILD)/fuzz/fuzz_net_%,$(FUZZ_BINS))
FUZZ_DEV_SRC := tests/unit/lib/test_driver.c tests/fuzz/lib/fz_input.c
$(FUZZ_DEV_BINS): $(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(FUZZ_DEV_SRC) \
		$(wildcard tests/fuzz/lib/*.h tests/unit/lib/*.h src/devices/*.h)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(FUZZ_CC) $(BASE_CFLAGS) $(PKG_CFLAGS) $(FUZZ_FLAGS) -Itests/fuzz/lib -Itests/unit/lib \
		-o $@ $< $(CORE_SRC) $(FUZZ_DEV_SRC) $(URING_LIBS) $(LDLIBS_COMMON)

FUZZ_XEN_BINS := $(filter $(BUILD)/fuzz/fuzz_xen_%,$(FUZZ_BINS))
FUZZ_XEN_SRC := $(XEN_SRC) $(XEN_STANDIN_SRC) $(XEN_TEST_LIB_SRC) tests/fuzz/lib/fz_input.c
$(FUZZ_XEN_BINS): $(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(FUZZ_XEN_SRC) \
		$(wildcard tests/fuzz/lib/*.h tests/xen/*.h tests/xen/standin/*.h shims/xen/*.h)
	@mkdir -p $(dir $@)
	@printf "  %-4s %s\n" LD $@
	$(Q)$(FUZZ_CC) $(BASE_CFLAGS) -std=gnu11 $(PKG_CFLAGS) $(FUZZ_FLAGS) -Itests/fuzz/lib -Itests/xen \
		-Ishims/xen -o $@ $< $(CORE_SRC) $(FUZZ_XEN_SRC) $(URING_LIBS) $(LDLIBS_COMMON)

fuzz: $(FUZZ_BINS)

# Each fuzz target runs for a few seconds in `make check` (regression smoke)
# over its seed corpus (tests/fuzz/corpus/<target>); a crashing input is
# kept next to its log, not in the source tree.
fuzz-smoke: $(FUZZ_BINS)
	@BUILD=$(BUILD) FUZZ_SECONDS=$${FUZZ_SECONDS:-5} tests/fuzz/run.sh smoke $(FUZZ_BINS)

# A campaign: every target FUZZ_SECONDS (default 60) one after another
# (FUZZ_JOBS parallel jobs each), progress every 30 s, a table at the end;
# exits non-zero on a finding (docs/security.md).
fuzz-run: $(FUZZ_BINS)
	@BUILD=$(BUILD) FUZZ_SECONDS=$${FUZZ_SECONDS:-60} tests/fuzz/run.sh run $(FUZZ_BINS)

# --------------------------------------------------------------- test entry points
tests: $(UNIT_BINS) $(ASAN_UNIT_BINS) $(XEN_TEST_BINS) $(VU_TEST_BIN) $(FORBIDDEN_PRELOAD) $(if $(filter 1,$(NETSTORE)),$(STORAGE_TEST_BIN)) $(BENCH_CORE_BINS) $(BENCH_XEN_BINS) $(LOADGEN_BIN) \
	$(VERIFY_BIN) $(if $(HAVE_CROSS_CC),$(VERIFY_ARM64))

UNIT_RUN := $(filter-out $(addprefix $(BUILD)/tests/unit/,$(UNIT_SKIP)),$(UNIT_BINS))

check-unit: $(UNIT_RUN)
	TEST_RUNNER="$(TEST_RUNNER)" scripts/run-tests.sh unit$(if $(TEST_RUNNER),-$(ARCH)) $(UNIT_RUN)

# The daemon and the unit tests built for arm64, the tests run under qemu-user.
check-arm64:
	VIRTIOD_DEPS=arm64 scripts/deps.sh
	$(MAKE) --no-print-directory ARCH=arm64 BUILD=$(BUILD)-arm64 all check-unit

check-asan: $(ASAN_UNIT_BINS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		scripts/run-tests.sh unit-asan $(ASAN_UNIT_BINS)

check-xen-standin: $(XEN_TEST_BINS)
	scripts/run-tests.sh xen-standin $(XEN_TEST_BINS)

check-vhost-user: $(DAEMON) $(VU_TEST_BIN) $(FORBIDDEN_PRELOAD)
	$(if $(VU_TEST_BIN),VIRTIOD=$(DAEMON) VD_FORBIDDEN_PRELOAD=$(FORBIDDEN_PRELOAD) scripts/run-tests.sh vhost-user $(VU_TEST_BIN))

# The load generator's own correctness checks (never timing).
check-loadgen: $(DAEMON) $(LOADGEN_BIN)
	BUILD=$(BUILD) scripts/bench.sh --selftest

# What an operator runs (docs/operations.md): install layout, systemd-analyze
# verify, the man page against --help, the vhost-user descriptor, libvirt's
# schema, virtiod stat under load, socket activation and READY=1.
check-ops: $(DAEMON) $(LOADGEN_BIN)
	BUILD=$(BUILD) tests/ops/run.sh

# NBD and RBD stores against nbdkit and a one-node Ceph cluster that the
# script starts and stops (docs/storage.md).
check-storage: $(DAEMON) $(STORAGE_TEST_BIN) $(VERIFY_BIN)
	BUILD=$(BUILD) VIRTIOD=$(DAEMON) tests/storage/run.sh

check-guest: $(DAEMON) $(VERIFY_BIN)
	$(if $(wildcard tests/guest/run.sh),BUILD=$(BUILD) tests/guest/run.sh)

# DPDK's testpmd as a vhost-user-net frontend (tests/dpdk/run.sh).
check-dpdk: $(DAEMON)
	BUILD=$(BUILD) tests/dpdk/run.sh

# The real-Xen matrix (docs/testing-xen-real.md): Debian's Xen under QEMU,
# guests served by virtiod, vd-verify in the guests, the images checked in
# dom0. bench-xen: virtiod beside xen-blkback in one guest (figures only).
check-xen: $(DAEMON) $(VERIFY_BIN)
	VIRTIOD_DEPS=xen scripts/deps.sh
	BUILD=$(BUILD) VERIFY=$(VERIFY_BIN) tests/xen-real/run.sh

# The same Xen with virtio-rng and virtio-net beside the disks of the
# direct-boot guests (docs/testing-xen-real.md: the disk-boot guests died
# more often before their userspace with the two extra windows).
# XR_NETRNG_CASES picks the guests.
XR_NETRNG_CASES ?= generic-direct cloud-direct
check-xen-netrng: $(DAEMON) $(VERIFY_BIN)
	VIRTIOD_DEPS=xen scripts/deps.sh
	BUILD=$(BUILD) VERIFY=$(VERIFY_BIN) XR_NETRNG="rng net" \
		XR_CASES="$(XR_NETRNG_CASES)" tests/xen-real/run.sh

bench-xen: $(DAEMON) $(VERIFY_BIN)
	VIRTIOD_DEPS=xen scripts/deps.sh
	BUILD=$(BUILD) VERIFY=$(VERIFY_BIN) XR_CASES=bench tests/xen-real/run.sh

# Real Xen on arm64 under qemu-system-aarch64 (docs/testing-xen-real-arm64.md):
# the arm64 daemon, a hypervisor built from Debian's source with the IOREQ
# server, Debian's arm64 tools and kernels.
# The guests check their data with the arm64 vd-verify (tests/verify).
check-xen-arm64:
	VIRTIOD_DEPS=xen-arm64 scripts/deps.sh
	$(MAKE) --no-print-directory ARCH=arm64 BUILD=$(BUILD)-arm64 all
	$(MAKE) --no-print-directory verify-arm64
	BUILD=$(BUILD) ARM64_BUILD=$(BUILD)-arm64 tests/xen-real-arm64/run.sh

# The full suite. Sub-makes run in order so that output stays readable.
check: deps
	$(MAKE) --no-print-directory all tests $(FUZZ_BINS)
	$(MAKE) --no-print-directory check-unit
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory check-xen-standin
	$(MAKE) --no-print-directory check-vhost-user
	$(MAKE) --no-print-directory check-storage
	$(MAKE) --no-print-directory check-loadgen
	$(MAKE) --no-print-directory check-ops
	$(MAKE) --no-print-directory check-verify
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory check-guest
	$(MAKE) --no-print-directory check-dpdk
	$(MAKE) --no-print-directory check-arm64
	@echo "make check: all suites passed"

# One test binary: make test T=test_virtqueue_split
test: $(BUILD)/tests/unit/$(T)
	$(BUILD)/tests/unit/$(T)

# demo.sh explains what is missing when QEMU cannot be installed, so a
# failure to install the demo's packages is not fatal here.
demo:
	@VIRTIOD_DEPS=build scripts/deps.sh
	@scripts/deps.sh || echo "make demo: some demo packages could not be installed; continuing" >&2
	$(MAKE) --no-print-directory $(DAEMON)
	BUILD=$(BUILD) scripts/demo.sh

# The daemon, its man page, the systemd units, the vhost-user backend
# descriptor and its program, the docs (docs/operations.md). Paths in the
# units and the descriptor are the installed ones.
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
	-e 's|@DATADIR@|$(DATADIR)|g'
install: $(DAEMON)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/virtiod \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(DATADIR)/qemu/vhost-user $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(DAEMON) $(DESTDIR)$(BINDIR)/virtiod
	$(SUBST) vhost-user/vhost-user-blk.in >$(DESTDIR)$(LIBEXECDIR)/virtiod/vhost-user-blk
	chmod 0755 $(DESTDIR)$(LIBEXECDIR)/virtiod/vhost-user-blk
	$(SUBST) vhost-user/50-virtiod-blk.json.in >$(DESTDIR)$(DATADIR)/qemu/vhost-user/50-virtiod-blk.json
	chmod 0644 $(DESTDIR)$(DATADIR)/qemu/vhost-user/50-virtiod-blk.json
	install -m 0644 man/virtiod.8 $(DESTDIR)$(MANDIR)/man8/virtiod.8
	for u in systemd/*.service systemd/*.socket; do \
		$(SUBST) $$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/} && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/} || exit 1; \
	done
	install -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(wildcard docs/examples/*) $(DESTDIR)$(DOCDIR)/examples/
	$(if $(NO_LICENSE),,install -m 0644 LICENSE $(DESTDIR)$(DOCDIR)/)

# The Debian package (debian/), built from the tracked files in
# $(BUILD)/deb, checked with lintian and for its contents.
deb:
	VIRTIOD_DEPS=deb scripts/deps.sh
	BUILD=$(BUILD) scripts/deb.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# cppcheck over the tree, clang-tidy over src/ and shims/ (.clang-tidy,
# .cppcheck-suppressions); any finding fails. CI runs it after make check.
lint:
	@VIRTIOD_DEPS=lint scripts/deps.sh
	scripts/lint.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
