#!/bin/sh
# make fuzz: builds the libFuzzer targets of unit/ with clang (ASan, UBSan)
# and runs each for FUZZ_SECONDS (60), or FUZZ_EXECS inputs if set: the user
# agent parser, starting from uap-core's own user agents, the claims
# sanitizer, against nginx's headers as `make module` configured them, a
# Redis Cluster's map and redirects from unit/corpus-cluster, the Cookie
# headers (unit/corpus-cookie), the return targets (unit/corpus-return) and
# the admin API's paths and ids (unit/corpus-admin) and POSTed forms
# (unit/corpus-form), provider JSON to an identity as each OAuth preset and
# OpenID Connect read it (unit/corpus-provider), the values of a SAML
# assertion (unit/corpus-saml) and the client addresses of the geo lookup
# (unit/corpus-geo), in databases unit/fuzz_geo_db.pl writes.
# FUZZ_TARGETS="geo saml" runs only those targets (all by default: ua
# claims cluster cookie return admin form provider saml geo).
# Installs clang and its runtime if they are missing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/fuzz
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-ua claims cluster cookie return admin form provider \
saml geo}

want() {
    case " $targets " in
        *" $1 "*) return 0 ;;
    esac

    return 1
}

if [ -n "${FUZZ_EXECS:-}" ]; then
    limit="-runs=$FUZZ_EXECS"
else
    limit="-max_total_time=$seconds"
fi

if ! command -v clang >/dev/null 2>&1 \
   || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null \
        | grep -q 'install ok installed'
then
    [ "$(id -u)" = 0 ] && SUDO= || SUDO=sudo
    $SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev
fi

mkdir -p "$out/corpus-ua"

if want ua; then
    clang -g -O1 -fsanitize=fuzzer,address,undefined \
        -I "$top/ngx_http_identity_module" "$top/unit/fuzz_ua.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_ua.c" \
        $(pkg-config --cflags --libs yaml-0.1 libpcre2-8) -o "$out/fuzz_ua"

    # seeds: a few hundred real user agents from uap-core's test file
    if [ -z "$(ls -A "$out/corpus-ua")" ]; then
        sed -n "s/^ *- user_agent_string: *['\"]\{0,1\}\(.*\)['\"]\{0,1\}$/\1/p" \
            /usr/share/uap-core/tests/test_ua.yaml | head -300 \
            | awk -v d="$out/corpus-ua" '{ f = sprintf("%s/seed-%04d", d, NR); printf "%s", $0 > f; close(f) }'
    fi

    "$out/fuzz_ua" $limit -max_len=2048 -timeout=5 \
        -print_final_stats=1 "$out/corpus-ua"
fi

# the claims sanitizer: nginx's headers, its pool and log stubbed
src=$top/build/nginx-src
[ -f "$src/objs/ngx_auto_config.h" ] || sh "$top/scripts/build-module.sh"
mkdir -p "$out/corpus-claims"

if want claims; then
    clang -g -O1 -fsanitize=fuzzer,address,undefined \
        -I "$src/src/core" -I "$src/src/event" -I "$src/src/event/modules" \
        -I "$src/src/event/quic" -I "$src/src/os/unix" -I "$src/objs" \
        -I "$src/src/http" -I "$src/src/http/modules" -I "$src/src/http/v2" \
        -I "$top/ngx_http_identity_module" -I "$top/unit" \
        "$top/unit/fuzz_claims.c" "$top/unit/ngx_stubs.c" \
        "$top/unit/fuzz_claims_check.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_claims.c" \
        $(pkg-config --cflags --libs jansson) -o "$out/fuzz_claims"

    # a seed: id, e-mail, name, username, sid, groups, JSON split at 0xff
    printf 'alice\377a@example.test\377Al\r\nX: y\377al\377\377staff\nadm\rins\377{"department":"d","groups":["a"]}' \
        > "$out/corpus-claims/seed-1"

    "$out/fuzz_claims" $limit -max_len=4096 -timeout=5 \
        -print_final_stats=1 "$out/corpus-claims"
fi

# a Redis Cluster's replies: CLUSTER SLOTS, MOVED and ASK, through hiredis's
# reader; the seeds of unit/corpus-cluster are copied in
if want cluster; then
    mkdir -p "$out/corpus-cluster"
    cp -n "$top"/unit/corpus-cluster/* "$out/corpus-cluster/"

    clang -g -O1 -fsanitize=fuzzer,address,undefined \
        -I "$src/src/core" -I "$src/src/event" -I "$src/src/event/modules" \
        -I "$src/src/event/quic" -I "$src/src/os/unix" -I "$src/objs" \
        -I "$src/src/http" -I "$src/src/http/modules" -I "$src/src/http/v2" \
        -I "$top/ngx_http_identity_module" -I "$top/unit" \
        "$top/unit/fuzz_cluster.c" "$top/unit/ngx_stubs.c" -lhiredis \
        -o "$out/fuzz_cluster"

    "$out/fuzz_cluster" $limit -max_len=4096 -timeout=5 \
        -print_final_stats=1 "$out/corpus-cluster"
fi

# a target against nginx's headers as `make module` configured them, with
# the stubs of unit/ngx_stubs.c: the sources and libraries as arguments
fuzz_cc() {
    clang -g -O1 -fsanitize=fuzzer,address,undefined \
        -I "$src/src/core" -I "$src/src/event" -I "$src/src/event/modules" \
        -I "$src/src/event/quic" -I "$src/src/os/unix" -I "$src/objs" \
        -I "$src/src/http" -I "$src/src/http/modules" -I "$src/src/http/v2" \
        -I "$top/ngx_http_identity_module" -I "$top/unit" \
        "$top/unit/ngx_stubs.c" "$@"
}

# the parsers of parse.c, as cookie.c, request.c, admin.c and the form
# readers call them: the Cookie headers of a request, return targets (the
# open-redirect gate), the admin API's paths and ids, and the parameters of
# a POSTed form
for target in cookie return admin form; do
    want $target || continue
    mkdir -p "$out/corpus-$target"
    cp -n "$top"/unit/corpus-$target/* "$out/corpus-$target/"

    fuzz_cc "$top/unit/fuzz_$target.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_parse.c" \
        -o "$out/fuzz_$target"

    "$out/fuzz_$target" $limit -max_len=4096 -timeout=5 \
        -print_final_stats=1 "$out/corpus-$target"
done

# provider JSON to an identity: the claim paths and e-mail rule of each
# OAuth preset (oauth_user.c), OpenID Connect's claims (json.c), GitHub's
# e-mail list, Microsoft's ID token claims, then the claims sanitizer; the
# seeds of unit/corpus-provider (first byte: which of these)
if want provider; then
    mkdir -p "$out/corpus-provider"
    cp -n "$top"/unit/corpus-provider/* "$out/corpus-provider/"

    fuzz_cc "$top/unit/fuzz_provider.c" "$top/unit/fuzz_claims_check.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_json.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_oauth_user.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_claims.c" \
        $(pkg-config --cflags --libs jansson) -o "$out/fuzz_provider"

    "$out/fuzz_provider" $limit -max_len=4096 -timeout=5 \
        -print_final_stats=1 "$out/corpus-provider"
fi

# the values of a SAML assertion, as saml_message.c reads them once the
# response is checked: lasso parses the bytes, saml_assertion.c reads its
# NameID, attributes and times; the seeds of unit/corpus-saml.  lasso and
# libxml2 are slow on some inputs: 8 KiB at most
if want saml; then
    mkdir -p "$out/corpus-saml"
    cp -n "$top"/unit/corpus-saml/* "$out/corpus-saml/"

    fuzz_cc "$top/unit/fuzz_saml.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_saml_assertion.c" \
        $(pkg-config --cflags --libs lasso gobject-2.0 libxml-2.0) \
        -o "$out/fuzz_saml"

    "$out/fuzz_saml" $limit -max_len=8192 -timeout=10 \
        -print_final_stats=1 "$out/corpus-saml"
fi

# the geo lookup, as meta.c calls it with a connection's address: the
# databases of unit/fuzz_geo_db.pl (t/lib/Identity/GeoDB.pm's shapes, and
# one with a corrupt data section), the seeds of unit/corpus-geo
if want geo; then
    mkdir -p "$out/corpus-geo" "$out/geo"
    cp -n "$top"/unit/corpus-geo/* "$out/corpus-geo/"
    perl "$top/unit/fuzz_geo_db.pl" "$out/geo"

    clang -g -O1 -fsanitize=fuzzer,address,undefined \
        -I "$top/ngx_http_identity_module" "$top/unit/fuzz_geo.c" \
        "$top/ngx_http_identity_module/ngx_http_identity_geo.c" \
        -lmaxminddb -o "$out/fuzz_geo"

    FUZZ_GEO_DIR="$out/geo" "$out/fuzz_geo" $limit -max_len=64 -timeout=5 \
        -print_final_stats=1 "$out/corpus-geo"
fi
