#!/usr/bin/env bash
# Load test: the demo shop's pages in release mode, with SovendusLayer and without it
# (benches/load/shop.rs), driven by wrk on loopback with 99 % plain pages and 1 % landings of
# new visitors, each with its own token (benches/load/shop.lua). Prints the throughput ratio
# and p50/p99 latencies, and writes them to target/criterion/load/results.json for
# benches/report.py.
#
# The two shops run side by side, each loaded by its own wrk at the same time, for ROUNDS
# rounds (both restarted every round), so that the machine's hiccups hit both at once; the
# figures are the medians over rounds of each round's ratio. With 2 CPUs or more (and
# taskset), the shops run on CPU 1 and the two wrk on CPU 0. The shops take turns at being
# started and loaded first, which cancels the small edge of going first. Each round also reads
# the CPU time each shop used (user and system, from /proc) per request served.
#
#   bash benches/load/load.sh                  # 10 rounds of 8 s, 64 connections per shop
#   ROUNDS=30 SECONDS_PER_RUN=8 CONNECTIONS=64 bash benches/load/load.sh
#   SHOP=without bash benches/load/load.sh     # A/A: the shop without against itself, the method's noise
#   PROFILE=release-lto bash benches/load/load.sh   # both shops built with fat LTO, one codegen unit
#
# Needs wrk (Debian: apt-get install wrk). Run by hand, not in CI. Stops every shop it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."

SHOP=${SHOP:-with}
[[ $SHOP =~ ^(with|without)$ ]] || { echo "SHOP must be with or without, not $SHOP" >&2; exit 1; }
ROUNDS=${ROUNDS:-10}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
PROFILE=${PROFILE:-release}
[[ $PROFILE =~ ^[a-z][a-z0-9-]*$ ]] || { echo "PROFILE must be a Cargo profile's name, not $PROFILE" >&2; exit 1; }
# The directory Cargo builds a profile into: its name, except for the built-in profiles.
case $PROFILE in dev | test) PROFILE_DIR=debug ;; bench) PROFILE_DIR=release ;; *) PROFILE_DIR=$PROFILE ;; esac
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    SHOPS_ON=(taskset -c 1)
    WRK_ON=(taskset -c 0)
else
    SHOPS_ON=()
    WRK_ON=()
fi
PORT_WITH=${PORT:-39117}
PORT_WITHOUT=$((PORT_WITH + 1))
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT="$TARGET_DIR/criterion/load"

command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
cargo build --profile "$PROFILE" --example load-shop
mkdir -p "$OUT"

shop_pids=()
stop_shops() {
    for pid in "${shop_pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    shop_pids=()
}
trap stop_shops EXIT

# Starts the shop $2 (with or without) on port $1, waits until it accepts connections.
start_shop() {
    local port=$1
    "${SHOPS_ON[@]}" env SHOP_ADDR="127.0.0.1:$port" RUST_LOG=warn "$TARGET_DIR/$PROFILE_DIR/examples/load-shop" "$2" \
        >"$OUT/shop-$port.log" 2>&1 &
    shop_pids+=($!)
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "the shop did not start; see $OUT/shop-$port.log" >&2
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

# Loads the shop on port $1 with wrk into file $2.
load() {
    "${WRK_ON[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s benches/load/shop.lua \
        "http://127.0.0.1:$1" >"$2"
}

# wrk's output in file $1 as "requests_per_second p50_us p99_us".
summary() {
    if grep -q "Non-2xx" "$1"; then
        cat "$1" >&2
        echo "some pages failed" >&2
        exit 1
    fi
    echo "$(awk '$1 == "Requests/sec:" { print $2 }' "$1") $(percentile_us 50% <"$1") $(percentile_us 99% <"$1")"
}

# The CPU time of process $1 so far: user and system, in clock ticks.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# The number of requests wrk's output in file $1 counts.
served() { awk '$2 == "requests" && $3 == "in" { print $1 }' "$1"; }

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$OUT/with.txt"
: >"$OUT/without.txt"
: >"$OUT/ratios.txt"
: >"$OUT/cpu.txt"
CLOCK_TICKS=$(getconf CLK_TCK)
echo "load, the shop $SHOP the layer against the one without, built with profile $PROFILE: $ROUNDS rounds x ${SECONDS_PER_RUN}s, both shops at once, $CONNECTIONS connections and $THREADS wrk" \
    "thread(s) each; shops ${SHOPS_ON[*]:-unpinned}, wrk ${WRK_ON[*]:-unpinned};" \
    "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Starts shop $1: "with" is the measured one, "without" the baseline.
start() {
    if [[ $1 == with ]]; then
        start_shop "$PORT_WITH" "$SHOP"
    else
        start_shop "$PORT_WITHOUT" without
    fi
}
# Loads shop $1 (with or without) into $OUT/wrk-$1.txt.
load_shop() {
    local port=$PORT_WITH
    [[ $1 == without ]] && port=$PORT_WITHOUT
    load "$port" "$OUT/wrk-$1.txt"
}
for round in $(seq "$ROUNDS"); do
    # The shop started first, and loaded by the wrk started first, has an edge: 0.7 % in an
    # A/A run. The two shops take turns in that place, so that the edge cancels out.
    if ((round % 2)); then order=(with without); else order=(without with); fi
    start "${order[0]}"
    start "${order[1]}"
    load_shop "${order[0]}" &
    first_pid=$!
    load_shop "${order[1]}"
    wait "$first_pid"
    # CPU time (user, system, in clock ticks) of each shop, before they stop.
    declare -A cpu_of=(["${order[0]}"]="$(cpu_ticks "${shop_pids[0]}")" ["${order[1]}"]="$(cpu_ticks "${shop_pids[1]}")")
    stop_shops
    with=$(summary "$OUT/wrk-with.txt")
    without=$(summary "$OUT/wrk-without.txt")
    echo "round $round: $SHOP [req/s p50us p99us] $with | without $without"
    echo "$with" >>"$OUT/with.txt"
    echo "$without" >>"$OUT/without.txt"
    # This round's throughput and p99 ratios.
    echo "$with $without" | awk '{ printf "%.4f %.4f\n", $1 / $4, $3 / $6 }' >>"$OUT/ratios.txt"
    # CPU time per request, in microseconds: user and system of each shop, then the ratios
    # (without / with, like the throughput's) of their sums, users and systems.
    echo "$(served "$OUT/wrk-with.txt") ${cpu_of[with]} $(served "$OUT/wrk-without.txt") ${cpu_of[without]}" |
        awk -v tick="$((1000000 / CLOCK_TICKS))" '{
            wu = $2 * tick / $1; ws = $3 * tick / $1; ou = $5 * tick / $4; os = $6 * tick / $4
            printf "%.3f %.3f %.3f %.3f %.4f %.4f %.4f\n", wu, ws, ou, os, (ou + os) / (wu + ws), ou / wu, os / ws
        }' >>"$OUT/cpu.txt"
done

column_median() { cut -d' ' -f"$1" "$2" | median; }
read -r rate_with p50_with p99_with <<<"$(for c in 1 2 3; do column_median "$c" "$OUT/with.txt"; done | xargs)"
read -r rate_without p50_without p99_without <<<"$(for c in 1 2 3; do column_median "$c" "$OUT/without.txt"; done | xargs)"
throughput_ratio=$(column_median 1 "$OUT/ratios.txt")
p99_ratio=$(column_median 2 "$OUT/ratios.txt")
read -r user_with sys_with user_without sys_without cpu_ratio user_ratio sys_ratio \
    <<<"$(for c in 1 2 3 4 5 6 7; do column_median "$c" "$OUT/cpu.txt"; done | xargs)"
# The mean of the rounds' throughput ratios and its standard error: how far the figure can be
# trusted.
read -r throughput_mean throughput_error <<<"$(awk '{ s += $1; q += $1 * $1 } END {
    m = s / NR; sd = (NR > 1) ? sqrt((q - NR * m * m) / (NR - 1)) : 0; printf "%.4f %.4f", m, sd / sqrt(NR) }' "$OUT/ratios.txt")"

cat <<REPORT
medians over $ROUNDS rounds (the ratios: medians of each round's ratio):
  $SHOP: $rate_with req/s, p50 ${p50_with} us, p99 ${p99_with} us
  without: $rate_without req/s, p50 ${p50_without} us, p99 ${p99_without} us
  throughput ratio:      $throughput_ratio (target >= 0.95); mean $throughput_mean, standard error $throughput_error
  p99 ratio:             $p99_ratio (target <= 1.05)
  CPU time per request:  $SHOP user ${user_with} us, system ${sys_with} us; without user ${user_without} us, system ${sys_without} us
  CPU time ratio:        $cpu_ratio (user $user_ratio, system $sys_ratio; without's per request / $SHOP's)
REPORT
RESULTS=$OUT/results.json
[[ $SHOP == with ]] || RESULTS=$OUT/results-aa.json
[[ $PROFILE == release ]] || RESULTS=${RESULTS%.json}-$PROFILE.json
cat >"$RESULTS" <<JSON
{"rounds": $ROUNDS, "seconds_per_run": $SECONDS_PER_RUN, "connections": $CONNECTIONS, "threads": $THREADS,
 "shop": "$SHOP", "profile": "$PROFILE", "side_by_side": true, "alternating": true, "pinned": $([[ ${#SHOPS_ON[@]} -gt 0 ]] && echo true || echo false),
 "round_ratios": [$(awk '{ printf "%s[%s, %s]", (NR > 1 ? ", " : ""), $1, $2 }' "$OUT/ratios.txt")],
 "with": {"requests_per_second": $rate_with, "p50_us": $p50_with, "p99_us": $p99_with,
          "user_us_per_request": $user_with, "system_us_per_request": $sys_with},
 "without": {"requests_per_second": $rate_without, "p50_us": $p50_without, "p99_us": $p99_without,
             "user_us_per_request": $user_without, "system_us_per_request": $sys_without},
 "cpu_time_ratio": $cpu_ratio, "user_time_ratio": $user_ratio, "system_time_ratio": $sys_ratio,
 "throughput_ratio": $throughput_ratio, "throughput_mean": $throughput_mean,
 "throughput_standard_error": $throughput_error, "p99_ratio": $p99_ratio}
JSON
