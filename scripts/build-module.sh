#!/bin/sh
# Builds ngx_http_identity_module.so as a dynamic module against the nginx
# build tree that Debian's nginx-dev ships, with Debian's configure flags, so
# that it loads into the packaged nginx.
#
#   build-module.sh [BUILD_DIR] [asan]
#
# "asan" instruments the module with AddressSanitizer and UBSan (make
# test-asan); Debian's nginx binary is not instrumented, so such a module
# loads only into an nginx started with libasan in LD_PRELOAD.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
src=$build/nginx-src

ccopt="-Wall -Werror -g -O2"
ldopt=""

if [ "${2:-}" = asan ]; then
    ccopt="-Wall -Werror -g -O1 -fno-omit-frame-pointer"
    ccopt="$ccopt -fsanitize=address,undefined"
    # nodelete: nginx unloads modules as it exits, before LeakSanitizer
    # reports; loaded, their frames (and their libraries') have names
    ldopt="-fsanitize=address,undefined -Wl,-z,nodelete"
fi

mkdir -p "$build"

if [ ! -f "$src/conf_flags" ]; then
    rm -rf "$src"
    cp -a /usr/share/nginx/src "$src"
fi

cd "$src"

# conf_flags is a bash array assignment: NGX_CONF_FLAGS=( ... )
flags=$(sed -n 's/^NGX_CONF_FLAGS=(\(.*\))$/\1/p' conf_flags)

if [ ! -f objs/Makefile ] || [ "$top/config" -nt objs/Makefile ]; then
    # shellcheck disable=SC2086
    ./configure $flags --add-dynamic-module="$top" \
        --with-cc-opt="$ccopt" --with-ld-opt="$ldopt" \
        > "$build/configure.log" 2>&1 \
        || { tail -30 "$build/configure.log"; exit 1; }
fi

make -f objs/Makefile modules > "$build/make.log" 2>&1 \
    || { grep -E 'error|warning' "$build/make.log" | head -40; exit 1; }

# a new file renamed into place: running nginx keep their mapped copy
cp objs/ngx_http_identity_module.so "$build/.ngx_http_identity_module.so.new"
mv -f "$build/.ngx_http_identity_module.so.new" \
    "$build/ngx_http_identity_module.so"
echo "built $build/ngx_http_identity_module.so"
