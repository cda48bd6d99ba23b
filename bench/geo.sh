#!/bin/sh
# The authenticated path with and without identity_geoip_database
# (`sh bench/geo.sh`): two runs of bench/auth-path.pl, each against its own
# plain proxy, then the (b) figures side by side.  Sessions are located at
# login only, so the two should be equal.
set -eu

cd "$(dirname "$0")/.."

export BENCH_ROUNDS="${BENCH_ROUNDS:-5}" BENCH_DURATION="${BENCH_DURATION:-5}"
export BENCH_SERIAL="${BENCH_SERIAL:-0}" BENCH_MODE="${BENCH_MODE:-light}"
export BENCH_CACHE="${BENCH_CACHE:-0}"

out=bench/out
mkdir -p "$out"

BENCH_GEO= sh bench/run.sh auth-path > "$out/geo-without.txt"
BENCH_GEO="${BENCH_GEO_DB:-1}" sh bench/run.sh auth-path > "$out/geo-with.txt"

rps() {
    sed -n "s/^$1 *\([0-9.]*\) .*/\1/p" "$2" | head -1
}

a1=$(rps '(a) plain proxy' "$out/geo-without.txt")
b1=$(rps '(b) identity strict' "$out/geo-without.txt")
a2=$(rps '(a) plain proxy' "$out/geo-with.txt")
b2=$(rps '(b) identity strict' "$out/geo-with.txt")

echo "authenticated path, median req/s (rounds: $BENCH_ROUNDS x ${BENCH_DURATION}s)"
printf '%-28s %10s %10s %8s\n' '' 'plain' 'identity' 'ratio'
awk -v a="$a1" -v b="$b1" 'BEGIN { printf "%-28s %10.0f %10.0f %8.3f\n", "without a geo database", a, b, b / a }'
awk -v a="$a2" -v b="$b2" 'BEGIN { printf "%-28s %10.0f %10.0f %8.3f\n", "with identity_geoip_database", a, b, b / a }'
awk -v x="$b1" -v y="$b2" -v a1="$a1" -v a2="$a2" \
    'BEGIN { printf "with/without, identity ratio to its plain proxy: %.3f\n", (y / a2) / (x / a1) }'
