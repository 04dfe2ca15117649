#!/usr/bin/env bash
# Load test: the demo shop (examples/shop) in release mode, with SovendusLayer and without it
# (SHOP_WITHOUT_SOVENDUS=1), driven by wrk on loopback with 99 % plain pages and 1 % landings
# of new visitors, each with its own token (benches/wrk/shop.lua). Prints the throughput ratio and p50/p99
# latencies, and writes them to target/criterion/load/results.json for benches/report.py.
#
# The two shops run side by side, each loaded by its own wrk at the same time, for ROUNDS
# rounds (both restarted every round). Both share one CPU and the machine's hiccups hit both
# at once, so the ratio of their throughputs is the ratio of what a request costs each; the
# figures are the medians over rounds of each round's ratio. On a machine with 2 CPUs or more
# (and taskset), the shops run on CPU 1 and the two wrk on CPU 0, so that the load generators
# take no cycles from the shops they measure. The two shops take turns at being started (and
# loaded) first, which cancels the small edge of going first.
#
#   bash benches/load.sh                  # 10 rounds of 8 s, 64 connections per shop
#   ROUNDS=9 SECONDS_PER_RUN=20 CONNECTIONS=128 bash benches/load.sh
#
# SHOP chooses the shop measured, AGAINST the one it is measured against (default: without):
#   layer (SHOP's default)    the shop with SovendusLayer
#   without (AGAINST's)       the shop without it (SHOP_WITHOUT_SOVENDUS=1)
#   none                      the shop without it, as SHOP: an A/A run, the method's own noise and bias
#   floor                     the least keeping a token in the session costs: the product page puts
#                             it there itself (SHOP_SESSION_FLOOR=1, examples/shop/app.rs)
#   floor-guarantees          the same page, also making the session last 30 days and saving it
#                             before the page is rendered, as the layer does (SHOP_SESSION_FLOOR=guarantees)
#   floor-guarantees-gate     that shop behind a SovendusLayer watching for a parameter no request
#                             carries: the least a capture by this layer costs (=guarantees-gate)
#   floor-guarantees-passthrough  that shop behind a layer handing every response back unchanged:
#                             the least a capture behind any layer costs (=guarantees-passthrough)
# SHOP=layer against the shop without writes results.json; other pairs write
# results-$SHOP.json, or results-$SHOP-vs-$AGAINST.json against another shop.
#
# Needs wrk (Debian: apt-get install wrk). Run by hand, not in CI. Stops every shop it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

SHOP=${SHOP:-layer}
AGAINST=${AGAINST:-without}
SHOPS='layer|without|none|floor|floor-guarantees|floor-guarantees-gate|floor-guarantees-passthrough'
for shop in "$SHOP" "$AGAINST"; do
    [[ $shop =~ ^($SHOPS)$ ]] || {
        echo "SHOP and AGAINST must each be one of ${SHOPS//|/, }, not $shop" >&2
        exit 1
    }
done
ROUNDS=${ROUNDS:-10}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
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
cargo build --release --example shop
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

# Starts a shop on port $1 (extra environment in the rest), waits until it accepts connections.
start_shop() {
    local port=$1
    shift
    "${SHOPS_ON[@]}" env "$@" SHOP_ADDR="127.0.0.1:$port" RUST_LOG=warn "$TARGET_DIR/release/examples/shop" \
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
    "${WRK_ON[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s benches/wrk/shop.lua \
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

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$OUT/with.txt"
: >"$OUT/without.txt"
: >"$OUT/ratios.txt"
echo "load, SHOP=$SHOP against $AGAINST: $ROUNDS rounds x ${SECONDS_PER_RUN}s, both shops at once, $CONNECTIONS connections and $THREADS wrk" \
    "thread(s) each; shops ${SHOPS_ON[*]:-unpinned}, wrk ${WRK_ON[*]:-unpinned};" \
    "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# The environment that starts shop $1 (a SHOP or AGAINST value).
shop_env() {
    case $1 in
        layer) ;;
        without | none) echo SHOP_WITHOUT_SOVENDUS=1 ;;
        floor) echo SHOP_SESSION_FLOOR=1 ;;
        floor-*) echo "SHOP_SESSION_FLOOR=${1#floor-}" ;;
    esac
}
read -r -a WITH_ENV <<<"$(shop_env "$SHOP")"
read -r -a WITHOUT_ENV <<<"$(shop_env "$AGAINST")"
# Starts shop $1 (with or without).
start() {
    if [[ $1 == with ]]; then
        start_shop "$PORT_WITH" "${WITH_ENV[@]}"
    else
        start_shop "$PORT_WITHOUT" "${WITHOUT_ENV[@]}"
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
    stop_shops
    with=$(summary "$OUT/wrk-with.txt")
    without=$(summary "$OUT/wrk-without.txt")
    echo "round $round: $SHOP [req/s p50us p99us] $with | $AGAINST $without"
    echo "$with" >>"$OUT/with.txt"
    echo "$without" >>"$OUT/without.txt"
    # This round's throughput and p99 ratios.
    echo "$with $without" | awk '{ printf "%.4f %.4f\n", $1 / $4, $3 / $6 }' >>"$OUT/ratios.txt"
done

column_median() { cut -d' ' -f"$1" "$2" | median; }
read -r rate_with p50_with p99_with <<<"$(for c in 1 2 3; do column_median "$c" "$OUT/with.txt"; done | xargs)"
read -r rate_without p50_without p99_without <<<"$(for c in 1 2 3; do column_median "$c" "$OUT/without.txt"; done | xargs)"
throughput_ratio=$(column_median 1 "$OUT/ratios.txt")
p99_ratio=$(column_median 2 "$OUT/ratios.txt")
# The mean of the rounds' throughput ratios and its standard error: how far the figure can be
# trusted.
read -r throughput_mean throughput_error <<<"$(awk '{ s += $1; q += $1 * $1 } END {
    m = s / NR; sd = (NR > 1) ? sqrt((q - NR * m * m) / (NR - 1)) : 0; printf "%.4f %.4f", m, sd / sqrt(NR) }' "$OUT/ratios.txt")"

cat <<REPORT
medians over $ROUNDS rounds (the ratios: medians of each round's ratio):
  $SHOP: $rate_with req/s, p50 ${p50_with} us, p99 ${p99_with} us
  $AGAINST: $rate_without req/s, p50 ${p50_without} us, p99 ${p99_without} us
  throughput ratio:      $throughput_ratio (target >= 0.98); mean $throughput_mean, standard error $throughput_error
  p99 ratio:             $p99_ratio (target <= 1.05)
REPORT
RESULTS=$OUT/results.json
[[ $SHOP == layer ]] || RESULTS=$OUT/results-$SHOP.json
[[ $AGAINST == without ]] || RESULTS=$OUT/results-$SHOP-vs-$AGAINST.json
cat >"$RESULTS" <<JSON
{"rounds": $ROUNDS, "seconds_per_run": $SECONDS_PER_RUN, "connections": $CONNECTIONS, "threads": $THREADS,
 "shop": "$SHOP", "against": "$AGAINST", "side_by_side": true, "alternating": true, "pinned": $([[ ${#SHOPS_ON[@]} -gt 0 ]] && echo true || echo false),
 "round_ratios": [$(awk '{ printf "%s[%s, %s]", (NR > 1 ? ", " : ""), $1, $2 }' "$OUT/ratios.txt")],
 "with": {"requests_per_second": $rate_with, "p50_us": $p50_with, "p99_us": $p99_with},
 "without": {"requests_per_second": $rate_without, "p50_us": $p50_without, "p99_us": $p99_without},
 "throughput_ratio": $throughput_ratio, "throughput_mean": $throughput_mean,
 "throughput_standard_error": $throughput_error, "p99_ratio": $p99_ratio}
JSON
