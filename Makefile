# skiff: GNU Makefile. `make` builds, `make check` runs every test,
# `make bench` runs the benchmarks, `make install` installs.
# Packages come from scripts/setup.sh, which every target that needs
# them calls first (quiet when everything is present).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

CC ?= cc
CLANG ?= clang
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
PKGS := libzstd libcrypto jansson liburing libcurl zlib libsystemd
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
STD := -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
# Tests run with a bounded fuzzing budget per target (seconds).
FUZZ_SECONDS ?= 30

B := build
BA := build-asan
SETUP_STAMP := $(B)/.setup-done

# pkg-config flags are looked up after setup.sh has run
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS))
ALL_CFLAGS = $(STD) $(WARN) $(CFLAGS) $(PKG_CFLAGS) -pthread -MMD -MP
LDLIBS = $(PKG_LIBS) -pthread

# the skiff command links only BASE (no daemon code); skiffd and the tests
# link everything
BASE_SRCS := $(wildcard common/*.c format/*.c backend/*.c ctl/*.c)
LIB_SRCS := $(BASE_SRCS) $(filter-out loader/main.c,$(wildcard loader/*.c))
CLI_SRCS := $(wildcard cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
TOOL_SRCS := tests/treecmp.c tests/readcheck.c tests/fdsup.c
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
BASE_OBJS := $(BASE_SRCS:%.c=$(B)/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=$(BA)/%.o)
ASAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BA)/tests/%)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)

.PHONY: bench-fscache check-kernel all demo check check-unit check-asan check-host check-fuzz bench install \
	uninstall clean setup
.DEFAULT_GOAL := all

all: $(B)/skiff $(B)/skiffd $(B)/treecmp $(B)/readcheck $(B)/fdsup $(B)/skiff-snapshotter $(B)/cripull

setup: $(SETUP_STAMP)
$(SETUP_STAMP): scripts/setup.sh
	@./scripts/setup.sh
	@mkdir -p $(B) && touch $@

$(B)/%.o: %.c | $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libskiff.a: $(LIB_OBJS)
	$(AR) rcs $@ $^
$(B)/libskiff-base.a: $(BASE_OBJS)
	$(AR) rcs $@ $^

$(B)/skiff: $(CLI_OBJS) $(B)/libskiff-base.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/skiffd: $(B)/loader/main.o $(B)/libskiff.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/treecmp: $(B)/tests/treecmp.o
	$(CC) $(CFLAGS) -o $@ $^

$(B)/readcheck: $(B)/tests/readcheck.o
	$(CC) $(CFLAGS) -o $@ $^ -pthread -lm

# plays systemd's part (notify socket, fd store, restarts) in tests
$(B)/fdsup: $(B)/tests/fdsup.o
	$(CC) $(CFLAGS) -o $@ $^

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libskiff.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# containerd's remote snapshotter: Go, offline, from Debian's Go packages
# (GOPATH mode, as Debian builds them: /usr/share/gocode); the sources are
# linked into a GOPATH under build/ and built by import path
GO ?= go
GO_ENV = env GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH=$(CURDIR)/$(B)/gopath:/usr/share/gocode \
	GOCACHE=$(CURDIR)/$(B)/gocache
GO_SRCS := $(wildcard snapshotter/*.go)
$(B)/gopath/src/skiff-snapshotter: | $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	ln -sfn ../../../snapshotter $@
$(B)/skiff-snapshotter: $(GO_SRCS) | $(B)/gopath/src/skiff-snapshotter
	$(GO_ENV) $(GO) vet skiff-snapshotter
	$(GO_ENV) $(GO) build -o $@ skiff-snapshotter
# kubelet's part in the tests: a CRI image pull
$(B)/gopath/src/skiff-cripull: | $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	ln -sfn ../../../tests/cripull $@
$(B)/cripull: tests/cripull/main.go | $(B)/gopath/src/skiff-cripull
	$(GO_ENV) $(GO) vet skiff-cripull
	$(GO_ENV) $(GO) build -o $@ skiff-cripull

# ASan + UBSan build of the library and unit tests
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
$(BA)/%.o: %.c | $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) $(ASAN_FLAGS) $(PKG_CFLAGS) -pthread -MMD -MP -c -o $@ $<
$(BA)/libskiff.a: $(ASAN_LIB_OBJS)
	$(AR) rcs $@ $^
$(BA)/tests/%: $(BA)/tests/unit/%.o $(BA)/libskiff.a
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)
# the daemon too: tests/asan/*.t run the integration suites against it
$(BA)/skiffd: $(BA)/loader/main.o $(BA)/libskiff.a
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets (clang), sanitized; the library is compiled once for
# all of them (instrumented for coverage, not linked with the fuzzer)
BF := $(B)/fuzz-lib
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(BF)/%.o)
$(BF)/%.o: %.c | $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	$(CLANG) $(STD) $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) \
		-pthread -MMD -MP -c -o $@ $<
$(BF)/libskiff.a: $(FUZZ_LIB_OBJS)
	$(AR) rcs $@ $^
$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(BF)/libskiff.a | $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	$(CLANG) $(STD) $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer \
		$(PKG_CFLAGS) -o $@ $< $(BF)/libskiff.a $(LDLIBS)

demo: all
	@./scripts/demo.sh

check: all $(UNIT_BINS) $(ASAN_UNIT_BINS) $(BA)/skiffd $(FUZZ_BINS)
	@./tests/run-all.sh

check-unit: $(UNIT_BINS)
	@prove --exec '' $(UNIT_BINS)
check-asan: all $(ASAN_UNIT_BINS) $(BA)/skiffd
	@prove --exec '' $(ASAN_UNIT_BINS) tests/asan/*.t
check-host: all
	@prove --exec '' tests/*.t
check-kernel: all
	@prove --exec '' kernel-tests/*.t
check-fuzz: $(FUZZ_BINS)
	@prove --exec '' tests/fuzz.t

bench: all
	@./scripts/setup.sh
	@./bench/build-bench.sh
	@./bench/fanotify-bench.sh
	@./bench/net-bench.sh
	@./bench/convert-bench.sh
	@./bench/prefetch-bench.sh
	@./bench/fetch-bench.sh
	@./bench/restart-bench.sh
	@./bench/containerd-bench.sh
	@./bench/scale-bench.sh
	@./bench/soak-bench.sh

# reads through skiffd's cachefiles frontend in the QEMU guest against
# loop mounts (the first run builds the guest kernel: ~10 minutes)
bench-fscache: all
	@./bench/fscache-bench.sh
	@SKIFF_CRASH_KILLS=$${SKIFF_CRASH_KILLS:-200} SKIFF_UPGRADES=$${SKIFF_UPGRADES:-100} \
		SKIFF_HOLDER_KILLS=$${SKIFF_HOLDER_KILLS:-20} SKIFF_GUEST_TIMEOUT=$${SKIFF_GUEST_TIMEOUT:-5400} \
		prove -v --timer --exec '' kernel-tests/failover-6.1.t kernel-tests/failover-6.12.t

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(B)/skiff $(DESTDIR)$(BINDIR)/skiff
	install -m 0755 $(B)/skiffd $(DESTDIR)$(BINDIR)/skiffd
	install -m 0755 $(B)/skiff-snapshotter $(DESTDIR)$(BINDIR)/skiff-snapshotter
	install -m 0644 man/skiff-snapshotter.8 $(DESTDIR)$(MANDIR)/man8/skiff-snapshotter.8
	install -m 0644 man/skiff.1 $(DESTDIR)$(MANDIR)/man1/skiff.1
	install -m 0644 man/skiffd.8 $(DESTDIR)$(MANDIR)/man8/skiffd.8
	install -m 0644 man/skiffd.json.5 $(DESTDIR)$(MANDIR)/man5/skiffd.json.5
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/skiffd.service.in >$(DESTDIR)$(UNITDIR)/skiffd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/skiffd.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/skiff $(DESTDIR)$(BINDIR)/skiffd $(DESTDIR)$(BINDIR)/skiff-snapshotter \
		$(DESTDIR)$(MANDIR)/man8/skiff-snapshotter.8 \
		$(DESTDIR)$(MANDIR)/man1/skiff.1 $(DESTDIR)$(MANDIR)/man8/skiffd.8 \
		$(DESTDIR)$(MANDIR)/man5/skiffd.json.5 $(DESTDIR)$(UNITDIR)/skiffd.service

clean:
	rm -rf $(B) $(BA)

-include $(shell find $(B) $(BA) -name '*.d' 2>/dev/null)
