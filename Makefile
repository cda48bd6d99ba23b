# ngx_http_identity_module: `make` builds the dynamic module against Debian's
# nginx, `make test` runs every test, `make demo` starts a working demo.
# Each installs what it needs first (scripts/install-deps.sh).

TOP        := $(abspath .)
BUILD      := $(TOP)/build
NGINX_SRC  := /usr/share/nginx/src
MODULE     := $(BUILD)/ngx_http_identity_module.so
SOURCES    := $(wildcard ngx_http_identity_module/*.[ch]) config

.PHONY: all deps module test test-fast test-slow demo bench clean

all: module

deps:
	@sh scripts/install-deps.sh

module: deps $(MODULE)

$(MODULE): $(SOURCES)
	@sh scripts/build-module.sh "$(BUILD)"

test: module
	prove -I t/lib t/

demo: module
	@sh scripts/demo.sh

bench: module
	@sh bench/run.sh

clean:
	rm -rf $(BUILD) t/tmp
