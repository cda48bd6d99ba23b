#!/bin/sh
# Entry point of the benchmarks (`make bench`).
#
#   sh bench/run.sh              the authenticated request path (auth-path.pl):
#                                redis, the test IdP and one nginx with a plain
#                                proxy and an identity-protected one side by
#                                side, wrk against both; results on stdout and
#                                in bench/out/latest.txt
#   sh bench/run.sh list-page    bench/list-page.pl instead
#   sh bench/run.sh session-size bench/session-size.pl: bytes per session
#
# Knobs (environment): see bench/README.md.
set -eu

cd "$(dirname "$0")/.."

name=${1:-auth-path}
driver_pl=bench/$name.pl
[ -f "$driver_pl" ] || { echo "bench: no $driver_pl" >&2; exit 2; }

for cmd in "${WRK:-/usr/bin/wrk}" redis-server node /usr/sbin/nginx perl; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "bench: $cmd not found" >&2; exit 1; }
done
[ -n "${IDENTITY_MODULE:-}" ] || [ -f build/ngx_http_identity_module.so ] || make module

mkdir -p bench/out
pids=bench/out/run.pids
rm -f "$pids"

# The driver stops everything it started by pid (END block); should it die
# without doing so, the pids it recorded are stopped here.
cleanup() {
    if [ -n "${driver:-}" ] && kill -0 "$driver" 2>/dev/null; then
        kill -TERM "$driver" 2>/dev/null || true
        wait "$driver" 2>/dev/null || true
    fi
    if [ -s "$pids" ]; then
        while read -r pid; do
            kill -TERM "$pid" 2>/dev/null || true
        done < "$pids"
        rm -f "$pids"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

perl "$driver_pl" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=
exit "$rc"
