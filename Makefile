# Interface: make, make test, make run, make bench, make fuzz, make asan.
# Everything is built under build/ against Debian's nginx (nginx-dev).

SHELL        := /bin/bash
NGX_SRC      ?= /usr/share/nginx/src
NGINX        ?= /usr/sbin/nginx
BUILD        := $(CURDIR)/build
MODULE       := $(BUILD)/nginx/objs/ngx_http_mpn_module.so
ASAN_MODULE  := $(BUILD)/asan/objs/ngx_http_mpn_module.so
# where the nginx workers (nobody) can write, wherever the checkout is
ASAN_REPORTS := /tmp/mpn-asan-reports
MOD_SRCS     := $(wildcard ngx_mpn_module/*.c ngx_mpn_module/*.h) config
# configure again only when the set of module files changes
SRC_LIST     := $(BUILD)/sources.list
$(shell mkdir -p $(BUILD); echo $(MOD_SRCS) | cmp -s - $(SRC_LIST) \
	|| echo $(MOD_SRCS) > $(SRC_LIST))
PURE_SRCS    := $(wildcard ngx_mpn_module/mpn_*.c)
PURE_HDRS    := $(wildcard ngx_mpn_module/mpn_*.h)
PURE_LIBS    := -lhiredis -ljansson -lcrypto -lm
FUZZ_SECONDS ?= 60

# what make deb and its package test need: debian/control's Build-Depends
# beyond the above, lintian, and man for the installed page
DEB_PKGS := debhelper dpkg-dev go-md2man lintian man-db

# Debian packages the build, the tests, the fuzzers and the benchmarks need
# (prometheus for promtool, which lints the status page in t/status.t)
DEPS_PKGS := build-essential nginx nginx-dev libpcre2-dev zlib1g-dev \
	libssl-dev openssl libhiredis-dev libjansson-dev redis-server \
	libcmocka-dev clang libclang-rt-14-dev valgrind wrk perl curl iproute2 \
	procps bsdutils util-linux prometheus \
	python3 python3-selenium python3-cryptography chromium chromium-driver \
	linux-perf $(DEB_PKGS)

NGX_CC_OPT   := -g -O2 -fPIC -fstack-protector-strong -Wformat \
	-Werror=format-security -D_FORTIFY_SOURCE=2
ASAN_CC_OPT  := -g -O1 -fPIC -fno-omit-frame-pointer \
	-fsanitize=address,undefined

UNIT_TESTS   := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))
FUZZERS      := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard t/fuzz/fuzz_*.c))
TOOLS        :=

.PHONY: all deps module unit integration test asan fuzz bench bench-token \
	bench-consume bench-tls bench-scale bench-judge run clean man deb package-test

all: deps module tools

deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -q $$missing; \
	fi


# a private copy of Debian's configure tree, configured with Debian's flags
$(BUILD)/%/Makefile: config $(SRC_LIST)
	rm -rf $(BUILD)/$* && mkdir -p $(BUILD) && cp -r $(NGX_SRC) $(BUILD)/$*
	cd $(BUILD)/$* && source ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(CURDIR) \
	    --with-cc-opt="$(if $(filter asan,$*),$(ASAN_CC_OPT),$(NGX_CC_OPT))" \
	    >$(BUILD)/configure-$*.log 2>&1 \
	    || { tail -20 $(BUILD)/configure-$*.log; exit 1; }

$(BUILD)/%/objs/ngx_http_mpn_module.so: $(BUILD)/%/Makefile $(MOD_SRCS)
	$(MAKE) -C $(BUILD)/$* -f objs/Makefile modules >$(BUILD)/make-$*.log 2>&1 \
	    || { grep -E 'error|warning' $(BUILD)/make-$*.log | head -40; exit 1; }
	@echo "built $@"

# make module NGINX_SRC=/path/to/nginx-x.y.z: the module for another nginx
# (nginx.org's packages), configured --with-compat on that version's own
# source; NGINX_CONFIGURE adds configure options (docs/deployment.md)
COMPAT_DIR    := $(BUILD)/compat-$(notdir $(abspath $(NGINX_SRC)))
COMPAT_MODULE := $(COMPAT_DIR)/objs/ngx_http_mpn_module.so

$(COMPAT_DIR)/objs/Makefile: config $(SRC_LIST)
	@test -x $(NGINX_SRC)/configure || { echo "NGINX_SRC=$(NGINX_SRC)" \
	    "has no ./configure: give an nginx source tree"; exit 1; }
	rm -rf $(COMPAT_DIR) && cp -r $(abspath $(NGINX_SRC)) $(COMPAT_DIR)
	cd $(COMPAT_DIR) && ./configure --with-compat $(NGINX_CONFIGURE) \
	    --add-dynamic-module=$(CURDIR) --with-cc-opt="$(NGX_CC_OPT)" \
	    >$(BUILD)/configure-compat.log 2>&1 \
	    || { tail -20 $(BUILD)/configure-compat.log; exit 1; }

$(COMPAT_MODULE): $(COMPAT_DIR)/objs/Makefile $(MOD_SRCS)
	$(MAKE) -C $(COMPAT_DIR) -f objs/Makefile modules \
	    >$(BUILD)/make-compat.log 2>&1 \
	    || { grep -E 'error|warning' $(BUILD)/make-compat.log | head -40; \
	         exit 1; }
	@echo "built $@"

module: $(if $(NGINX_SRC),$(COMPAT_MODULE),$(MODULE))

# C unit tests (cmocka) for the pure parts, under ASan and UBSan
$(BUILD)/unit/%: t/unit/%.c $(wildcard t/unit/*.h) $(PURE_SRCS) $(PURE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -g -O1 -Wall -Wextra -fsanitize=address,undefined \
	    -fno-sanitize-recover=all -Ingx_mpn_module -It/unit \
	    -o $@ $< $(PURE_SRCS) -lcmocka $(PURE_LIBS)

unit: deps $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do echo "== $$t"; $$t || exit 1; done

# mpnctl.mk adds the operator CLI to TOOLS
-include redis/mpnctl/mpnctl.mk

tools: $(TOOLS)

# mpnctl(1) is made from docs/mpnctl.md, so the two cannot drift apart:
# a man title line, a plain NAME dash for whatis, links as their text
man: $(BUILD)/man/mpnctl.1

$(BUILD)/man/mpnctl.1: docs/mpnctl.md
	@mkdir -p $(dir $@)
	sed -e '1s/^# mpnctl(1)$$/# MPNCTL 1 "" "mpn-tools" "User Commands"/' \
	    -e '/^## NAME/,/^## /s/^mpnctl — /mpnctl - /' \
	    -e 's/\[\([^]]*\)\]([^)]*)/\1/g' $< | go-md2man > $@

# Debian packages into build/deb/ (libnginx-mod-http-mpn, mpn-tools; their
# debug symbols in build/deb/dbgsym/), then lintian.  dpkg-buildpackage
# writes beside the tree it builds, so it builds a copy under build/debsrc/
# rather than litter the checkout's parent.
DEB_OUT := $(BUILD)/deb
DEB_SRC := $(BUILD)/debsrc

deb: deps
	rm -rf $(DEB_SRC) $(DEB_OUT) && mkdir -p $(DEB_SRC)/tree $(DEB_OUT)/dbgsym
	tar -c --exclude=./build --exclude=./.git . | tar -x -C $(DEB_SRC)/tree
	cd $(DEB_SRC)/tree && dpkg-buildpackage -us -uc -b -j2 \
	    >$(DEB_SRC)/build.log 2>&1 \
	    || { tail -40 $(DEB_SRC)/build.log; exit 1; }
	mv $(DEB_SRC)/*-dbgsym_*.deb $(DEB_OUT)/dbgsym/
	mv $(DEB_SRC)/*.deb $(DEB_SRC)/*.changes $(DEB_SRC)/*.buildinfo \
	    $(DEB_OUT)/
	lintian --display-info $(DEB_OUT)/*.deb $(DEB_OUT)/dbgsym/*.deb
	@ls -1 $(DEB_OUT)/*.deb

# builds the packages, installs them into this machine's nginx, uses them and
# purges them (root on a disposable machine; skipped otherwise)
package-test: deps
	prove -I t/lib t/package/

# an LD_PRELOAD shim that fails one malloc() size, for tests of the
# out-of-memory paths (t/redirects.t)
FAILALLOC    := $(BUILD)/failalloc.so

$(FAILALLOC): t/lib/failalloc.c
	$(CC) -O1 -g -Wall -Wextra -fPIC -shared -o $@ $<

integration: deps module tools $(FAILALLOC)
	MPN_MODULE=$(MODULE) MPN_ROOT=$(CURDIR) prove -j2 -I t/lib t/*.t

# the integration suite again, the module built with ASan and UBSan and the
# sanitizer runtimes preloaded into the stock nginx
asan: deps $(ASAN_MODULE) tools
	rm -rf $(ASAN_REPORTS) && mkdir -p -m 1777 $(ASAN_REPORTS)
	MPN_MODULE=$(ASAN_MODULE) MPN_ROOT=$(CURDIR) \
	MPN_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:log_path=$(ASAN_REPORTS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(ASAN_REPORTS)/ubsan \
	    prove -j2 -I t/lib t/*.t
	@if ls $(ASAN_REPORTS)/* >/dev/null 2>&1; then \
	    cat $(ASAN_REPORTS)/*; echo "asan: sanitizer reports found"; \
	    exit 1; fi; echo "asan: 0 sanitizer reports"

# libFuzzer targets, seeded from t/fuzz/seeds/<target>/
$(BUILD)/fuzz/%: t/fuzz/%.c $(PURE_SRCS) $(PURE_HDRS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -Ingx_mpn_module \
	    -o $@ $< $(PURE_SRCS) $(PURE_LIBS)

fuzz: deps $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); \
	    mkdir -p $(BUILD)/corpus/$$n; \
	    echo "== $$n for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
	        -print_final_stats=1 \
	        $(BUILD)/corpus/$$n t/fuzz/seeds/$$n 2>&1 \
	        | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|BINGO' ; \
	    [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; \
	done

BENCH_SECONDS ?= 3

# token verifications/s through mpn_token_verify next to `openssl speed`
$(BUILD)/bench/bench_token: t/bench/bench_token.c $(PURE_SRCS) $(PURE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Ingx_mpn_module \
	    -o $@ $< $(PURE_SRCS) $(PURE_LIBS)

bench-token: deps $(BUILD)/bench/bench_token
	t/bench/bench_token.sh $(BUILD)/bench/bench_token $(BENCH_SECONDS)

# the judge's conditions (../shared/peers/bench.sh) and the paired table:
# bare nginx, mpn_cache, no cache, the four token variants; knobs ROUNDS,
# DURATION, PARTNERS, DIST=uniform|zipf, ZONE, VARIANTS (t/bench/bench.sh)
bench: deps module
	t/bench/bench.sh $(MODULE) t/bench/tokens.py

# what a consuming request (mpn_consume, FCALL in Redis) costs over a plain
# allowed one with mpn_cache, under the same conditions
bench-consume: deps module
	VARIANTS="baseline mpn-cache mpn-consume" t/bench/bench.sh $(MODULE) \
	    t/bench/tokens.py

# what TLS to Redis costs per uncached lookup: mpn-nocache against the
# plain port and the TLS port of the same redis-server, the same round
bench-tls: deps module
	VARIANTS="baseline mpn-nocache mpn-nocache-tls" t/bench/bench.sh \
	    $(MODULE) t/bench/tokens.py

# mpn_cache from 10,000 to 1,000,000 partners, uniform and Zipf(1.0), the
# zone holding all of them or a tenth (t/bench/scale.sh; a quarter hour)
bench-scale: deps module
	t/bench/scale.sh $(MODULE) t/bench/tokens.py

# the judge itself, when the checkout sits next to it (not needed by any
# other target): PEERS=path/to/peers to point elsewhere
PEERS ?= $(CURDIR)/../shared/peers
JUDGE_VARIANTS ?= baseline lua-cache lua-nocache mpn-cache mpn-nocache \
	mpn-token-hs mpn-token-rs mpn-token-es mpn-token-ed

bench-judge: deps module
	@[ -x $(PEERS)/bench.sh ] || { echo "no judge at $(PEERS)" >&2; exit 1; }
	mkdir -p $(BUILD)/peers
	MPN_SO=$(MODULE) PEERS_RUN=/tmp/mpn-peers-run \
	OUT=$(BUILD)/peers/$$(date -u +%Y%m%dT%H%M%SZ) ROUNDS=$${ROUNDS:-5} \
	    $(PEERS)/bench.sh $(JUDGE_VARIANTS)

# unit tests, a short run of each fuzzer, the Debian packages installed and
# purged, the integration suite under ASan/UBSan, then the integration suite
# as shipped, whose summary ends it
test: deps unit module tools
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5
	@$(MAKE) --no-print-directory package-test
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory integration

# the demo portal on http://127.0.0.1:8080/ (redis/demo/); Ctrl-C stops it
# (exit 0).  What building prints goes to build/run-build.log, shown only
# when it fails.
run:
	@mkdir -p $(BUILD)
	@$(MAKE) -s --no-print-directory deps module tools \
	    >$(BUILD)/run-build.log 2>&1 \
	    || { cat $(BUILD)/run-build.log; exit 1; }
	@redis/demo/run.sh

clean:
	rm -rf $(BUILD)
