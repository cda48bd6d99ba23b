#!/bin/sh
# Builds the Debian package libnginx-mod-http-identity (debian/) and checks
# it with lintian: `make deb`.
#
#   build-deb.sh [BUILD_DIR]
#
# The source tree (without build/, t/tmp and node_modules) is copied to
# BUILD_DIR/deb/src and built there with `dpkg-buildpackage -us -uc -b`, so
# that the package comes from the files alone and dpkg-buildpackage's output
# (which it writes to the parent directory) lands in BUILD_DIR/deb/.
# lintian's tags are printed; any error or warning fails the build.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
out=$build/deb

for c in dpkg-buildpackage dh lintian; do
    command -v "$c" >/dev/null 2>&1 || {
        echo "$0: $c is missing (apt-get install dpkg-dev debhelper lintian)" >&2
        exit 1
    }
done

rm -rf "$out"
mkdir -p "$out/src"

cd "$top"
tar -cf - --exclude=./build --exclude=./t/tmp --exclude=node_modules \
    --exclude=./.git . | tar -xf - -C "$out/src"

cd "$out/src"
# the Build-Depends must be installed: `make deps` (scripts/install-deps.sh)
# installs them, or `apt-get build-dep ./` as the Dockerfile does
dpkg-checkbuilddeps || {
    echo "$0: install the Build-Depends: apt-get build-dep ./" >&2
    exit 1
}
dpkg-buildpackage -us -uc -b > "$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log"; exit 1; }

cd "$out"
deb=$(ls libnginx-mod-http-identity_*.deb)
echo "built $out/$deb"

# lintian: overrides are in debian/*.lintian-overrides, each explained
lintian -I -E --pedantic --show-overrides "$out"/*.changes \
    > "$out/lintian.log" 2>&1 || true
cat "$out/lintian.log"
if grep -q '^[EW]: ' "$out/lintian.log"; then
    echo "$0: lintian reports errors or warnings" >&2
    exit 1
fi
echo "lintian: no error, no warning ($out/lintian.log)"
