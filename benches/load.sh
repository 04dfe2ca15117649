#!/usr/bin/env bash
# Load test: the demo shop (examples/shop) in release mode, with SovendusLayer and without it
# (SHOP_WITHOUT_SOVENDUS=1), driven by wrk on loopback with 99 % plain pages and 1 % landings
# with a fresh token (benches/wrk/shop.lua). The two shops take turns, ROUNDS times each, and
# the medians over the rounds are compared. Prints the throughput ratio and p50/p99 latencies,
# and writes them to target/criterion/load/results.json for benches/report.py.
#
#   bash benches/load.sh                  # 5 rounds of 10 s per shop, 64 connections
#   ROUNDS=9 SECONDS_PER_RUN=20 CONNECTIONS=128 bash benches/load.sh
#
# Needs wrk (Debian: apt-get install wrk). Run by hand, not in CI. Stops every shop it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-39117}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT="$TARGET_DIR/criterion/load"

command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
cargo build --release --example shop
mkdir -p "$OUT"

shop_pid=""
stop_shop() {
    if [[ -n "$shop_pid" ]]; then
        kill -INT "$shop_pid" 2>/dev/null || true
        wait "$shop_pid" 2>/dev/null || true
        shop_pid=""
    fi
}
trap stop_shop EXIT

# Starts the shop (extra environment in "$@"), waits until it accepts connections.
start_shop() {
    env "$@" SHOP_ADDR="127.0.0.1:$PORT" RUST_LOG=warn "$TARGET_DIR/release/examples/shop" >"$OUT/shop.log" 2>&1 &
    shop_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "the shop did not start; see $OUT/shop.log" >&2
    exit 1
}

# wrk's latency percentile ($1: 50%, 99%) in microseconds, from wrk's output on stdin.
percentile_us() {
    awk -v p="$1" '$1 == p {
        v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
        f = (unit == "us") ? 1 : (unit == "ms") ? 1000 : (unit == "s") ? 1000000 : -1
        printf "%.0f", v * f
    }'
}

# One run: prints "requests_per_second p50_us p99_us".
run() {
    start_shop "$@"
    local output
    output=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s benches/wrk/shop.lua \
        "http://127.0.0.1:$PORT")
    stop_shop
    if grep -q "Non-2xx" <<<"$output"; then
        echo "$output" >&2
        echo "some pages failed" >&2
        exit 1
    fi
    local rate
    rate=$(awk '$1 == "Requests/sec:" { print $2 }' <<<"$output")
    echo "$rate $(percentile_us 50% <<<"$output") $(percentile_us 99% <<<"$output")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$OUT/with.txt"
: >"$OUT/without.txt"
echo "load: $ROUNDS rounds x ${SECONDS_PER_RUN}s per shop, $CONNECTIONS connections, $THREADS wrk threads; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    with=$(run)
    without=$(run SHOP_WITHOUT_SOVENDUS=1)
    echo "round $round: with layer [req/s p50us p99us] $with | without $without"
    echo "$with" >>"$OUT/with.txt"
    echo "$without" >>"$OUT/without.txt"
done

column_median() { cut -d' ' -f"$1" "$2" | median; }
read -r rate_with p50_with p99_with <<<"$(for c in 1 2 3; do column_median "$c" "$OUT/with.txt"; done | xargs)"
read -r rate_without p50_without p99_without <<<"$(for c in 1 2 3; do column_median "$c" "$OUT/without.txt"; done | xargs)"
throughput_ratio=$(awk -v a="$rate_with" -v b="$rate_without" 'BEGIN { printf "%.3f", a / b }')
p99_ratio=$(awk -v a="$p99_with" -v b="$p99_without" 'BEGIN { printf "%.3f", a / b }')

cat <<REPORT
medians over $ROUNDS rounds:
  with SovendusLayer:    $rate_with req/s, p50 ${p50_with} us, p99 ${p99_with} us
  without:               $rate_without req/s, p50 ${p50_without} us, p99 ${p99_without} us
  throughput ratio:      $throughput_ratio (target >= 0.98)
  p99 ratio:             $p99_ratio (target <= 1.05)
REPORT
cat >"$OUT/results.json" <<JSON
{"rounds": $ROUNDS, "seconds_per_run": $SECONDS_PER_RUN, "connections": $CONNECTIONS, "threads": $THREADS,
 "with": {"requests_per_second": $rate_with, "p50_us": $p50_with, "p99_us": $p99_with},
 "without": {"requests_per_second": $rate_without, "p50_us": $p50_without, "p99_us": $p99_without},
 "throughput_ratio": $throughput_ratio, "p99_ratio": $p99_ratio}
JSON
