# ngx_http_identity_module: `make` builds the dynamic module against Debian's
# nginx, `make test` runs every test (`make test-asan` under AddressSanitizer),
# `make soak` runs two nginx under load for half an hour, `make demo` starts
# a working demo.
# Each installs what it needs first (scripts/install-deps.sh).

TOP        := $(abspath .)
BUILD      := $(TOP)/build
NGINX_SRC  := /usr/share/nginx/src
MODULE     := $(BUILD)/ngx_http_identity_module.so
SOURCES    := $(wildcard ngx_http_identity_module/*.[ch]) config

.PHONY: all deps module test test-asan test-fast test-slow demo bench fuzz soak clean \
	deb deb-install-test

all: module

deps:
	@sh scripts/install-deps.sh

module: deps $(MODULE)

$(MODULE): $(SOURCES)
	@sh scripts/build-module.sh "$(BUILD)"

test: module
	prove -I t/lib t/

# the same tests, the module built with ASan and UBSan, leaks checked
test-asan: deps
	@sh scripts/test-asan.sh

demo: module
	@sh scripts/demo.sh

# the authenticated path in its light and full-load modes (bench/README.md);
# BENCH_MODE=light or BENCH_MODE=full for one of them
bench: module
	@sh bench/run.sh

fuzz: deps
	@sh scripts/fuzz.sh

# two nginx under a mix of logins, requests, revocations and expiry for
# SOAK_SECONDS (1800): flat RSS and fds, Redis back at its baseline, no 5xx,
# no alert (docs/testing.md); the report in build/soak/report.txt
soak: module
	@perl scripts/soak.pl

clean:
	rm -rf $(BUILD) t/tmp

# the Debian package libnginx-mod-http-identity in build/deb/, checked by
# lintian (docs/debian.md); deb-install-test installs it into a fresh
# Debian 12 root and logs in through it (root, network; not part of test)
deb:
	@sh scripts/build-deb.sh "$(BUILD)"

deb-install-test: deb
	@perl -I t/lib scripts/deb-install-test.pl "$(BUILD)/deb"

# unit programs: plain C pieces of the module, built and run without nginx
.PHONY: unit
unit: $(BUILD)/unit/geo_lookup

$(BUILD)/unit/geo_lookup: unit/geo_lookup.c \
		ngx_http_identity_module/ngx_http_identity_geo.c \
		ngx_http_identity_module/ngx_http_identity_geo.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -Ingx_http_identity_module -o $@ \
		unit/geo_lookup.c ngx_http_identity_module/ngx_http_identity_geo.c \
		-lmaxminddb

# prerequisites of "unit" add up: one line and one rule per program
UA_PKGS    := yaml-0.1 libpcre2-8

unit: $(BUILD)/unit/ua_conformance

$(BUILD)/unit/ua_conformance: unit/ua_conformance.c \
		ngx_http_identity_module/ngx_http_identity_ua.c \
		ngx_http_identity_module/ngx_http_identity_ua.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -Ingx_http_identity_module \
		`pkg-config --cflags $(UA_PKGS)` -o $@ \
		unit/ua_conformance.c ngx_http_identity_module/ngx_http_identity_ua.c \
		`pkg-config --libs $(UA_PKGS)`

# the Redis Cluster's slot map and redirects, against nginx's headers as
# `make module` configured them and hiredis's reply reader
NGX_SRC    := $(BUILD)/nginx-src
NGX_INCS   := $(foreach d,src/core src/event src/event/modules src/event/quic \
		src/os/unix objs src/http src/http/modules src/http/v2, \
		-I$(NGX_SRC)/$(d))

unit: $(BUILD)/unit/redis_cluster

$(BUILD)/unit/redis_cluster: unit/redis_cluster.c unit/ngx_stubs.c \
		unit/ngx_stubs.h \
		ngx_http_identity_module/ngx_http_identity_redis_cluster.c \
		ngx_http_identity_module/ngx_http_identity_redis_cluster.h
	@[ -f $(NGX_SRC)/objs/ngx_auto_config.h ] \
		|| sh scripts/build-module.sh "$(BUILD)"
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Wno-unused-parameter -Werror $(NGX_INCS) \
		-Ingx_http_identity_module -Iunit -o $@ \
		unit/redis_cluster.c unit/ngx_stubs.c \
		ngx_http_identity_module/ngx_http_identity_redis_cluster.c \
		-lhiredis

# the parsers of a request's input (parse.c) that make fuzz fuzzes: their
# known answers
unit: $(BUILD)/unit/parse_check

$(BUILD)/unit/parse_check: unit/parse_check.c unit/ngx_stubs.c \
		unit/ngx_stubs.h \
		ngx_http_identity_module/ngx_http_identity_parse.c \
		ngx_http_identity_module/ngx_http_identity_parse.h
	@[ -f $(NGX_SRC)/objs/ngx_auto_config.h ] \
		|| sh scripts/build-module.sh "$(BUILD)"
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Wno-unused-parameter -Werror $(NGX_INCS) \
		-Ingx_http_identity_module -Iunit -o $@ \
		unit/parse_check.c unit/ngx_stubs.c \
		ngx_http_identity_module/ngx_http_identity_parse.c

# the risk signals' arithmetic (ngx_http_identity_risk.c): t/98-risk.t
unit: $(BUILD)/unit/risk_check

$(BUILD)/unit/risk_check: unit/risk_check.c \
		ngx_http_identity_module/ngx_http_identity_risk.c \
		ngx_http_identity_module/ngx_http_identity_risk.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -Ingx_http_identity_module -o $@ \
		unit/risk_check.c ngx_http_identity_module/ngx_http_identity_risk.c \
		-lm
