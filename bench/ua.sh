#!/bin/sh
# User-Agent parsing (ngx_http_identity_ua.c): the time to load uap-core's
# regexes.yaml, the median time of one uncached parse over every
# user_agent_string of uap-core's three test files, and of a cache hit.
#
#   sh bench/ua.sh              5 parses of each string
#   REPS=20 sh bench/ua.sh
#   UAP=/path/to/uap-core sh bench/ua.sh    another regexes.yaml and tests/
set -eu

cd "$(dirname "$0")/.."

uap=${UAP:-/usr/share/uap-core}

[ -f "$uap/regexes.yaml" ] \
    || { echo "bench: no $uap/regexes.yaml (Debian: uap-core)" >&2; exit 1; }

make -s "$(pwd)/build/unit/ua_conformance"

exec build/unit/ua_conformance -b -n "${REPS:-5}" "$uap/regexes.yaml" \
    "$uap/tests/test_ua.yaml" "$uap/tests/test_os.yaml" \
    "$uap/tests/test_device.yaml"
