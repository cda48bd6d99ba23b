#!/bin/sh
# make test-asan: every test of t/ with the module built with
# AddressSanitizer and UBSan (build/asan) and nginx started with libasan
# preloaded, LeakSanitizer on.  Each test fails when nginx wrote a sanitizer
# report (t/lib/Identity/Test.pm).  Installs the sanitizer runtimes if they
# are missing.
#
#   sh scripts/test-asan.sh [prove arguments]     (default: t/)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build/asan

missing=""
for p in libasan8 libubsan1; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q 'install ok installed'
    then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] && SUDO= || SUDO=sudo
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi

sh "$top/scripts/build-module.sh" "$build" asan

# only nginx gets libasan (Test.pm sets LD_PRELOAD for it alone): redis,
# node, php and perl are not ours to check
IDENTITY_MODULE=$build/ngx_http_identity_module.so
IDENTITY_ASAN_PRELOAD=$(gcc -print-file-name=libasan.so)
IDENTITY_ASAN_SUPPRESSIONS=$top/t/asan.supp
export IDENTITY_MODULE IDENTITY_ASAN_PRELOAD IDENTITY_ASAN_SUPPRESSIONS

cd "$top"

if [ $# -eq 0 ]; then
    set -- t/
fi

prove -I t/lib "$@"
