#!/bin/sh
# Entry point of the benchmarks (`make bench`).
#
#   sh bench/run.sh              the authenticated request path (auth-path.pl)
#                                in both modes, light then full: redis, the
#                                test IdP, an upstream nginx, and a plain
#                                proxy, an identity-protected one and one with
#                                the session cache; wrk against each in turn;
#                                results on stdout and in bench/out/latest.txt
#   sh bench/run.sh light        the light mode only (1 worker, wrk -t1 -c50)
#   sh bench/run.sh full         the full-load mode only (2 workers, wrk -t2)
#   sh bench/run.sh list-page    bench/list-page.pl instead
#   sh bench/run.sh session-size bench/session-size.pl: bytes per session
#
# Knobs (environment): see bench/README.md.
set -eu

cd "$(dirname "$0")/.."

name=${1:-auth-path}
if [ $# -gt 0 ]; then shift; fi
case $name in
light|full|both) set -- "$name" "$@"; name=auth-path ;;
esac
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

perl "$driver_pl" "$@" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=
exit "$rc"
