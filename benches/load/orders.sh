#!/usr/bin/env bash
# Order load test: what an order from a Sovendus visitor costs the demo shop under load, against
# an order without a token. The demo shop (examples/shop, release build) runs as a process on a
# fresh database, its conversions delivered to its embedded sandbox on loopback; 16 visitors at
# once (benches/load/orders.rs) land, fill a cart and order, in rounds that alternate visitors
# with a token of their own and visitors without. Prints each kind's orders per second and the
# ratio with / without (the median of each pair of rounds' ratio, and their range), and writes
# them to target/criterion/load/orders-STORE.json for benches/report.py.
#
# Then it checks the run, and fails if a check fails: every answer was a successful order's, and
# the sandbox booked every token exactly once (one call each, answered 200, the store's
# conversions all delivered).
#
# On SQLite (a fresh file, the shop's settings: sqlx's defaults, synchronous FULL) and on
# Postgres (a throwaway server on loopback, benches/servers.sh, with synchronous_commit at
# Postgres' default, on), one after the other; the stock is large enough that no order sells out.
#
#   bash benches/load/orders.sh                    # both stores, 6 pairs of 5 s rounds each
#   STORES=sqlite ROUNDS=10 SECONDS_PER_ROUND=5 VISITORS=16 bash benches/load/orders.sh
#   SYNCHRONOUS_COMMIT=off bash benches/load/orders.sh   # Postgres without waiting for its WAL flush
#
# Needs Debian's postgresql and redis-server for Postgres (benches/servers.sh starts both). Run
# by hand, not in CI. Stops every process it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."

STORES=${STORES:-sqlite postgres}
export ROUNDS=${ROUNDS:-6} SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-5} VISITORS=${VISITORS:-16}
SYNCHRONOUS_COMMIT=${SYNCHRONOUS_COMMIT:-on}
[[ $SYNCHRONOUS_COMMIT =~ ^(on|off)$ ]] || { echo "SYNCHRONOUS_COMMIT must be on or off" >&2; exit 1; }
# Every product a visitor orders, in stock for any run.
STOCK=1=1000000000,2=1000000000,3=1000000000
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT="$TARGET_DIR/criterion/load"

cargo build --release --example shop --example load-orders
mkdir -p "$OUT"
work=$(mktemp -d /tmp/tower-sovendus-orders.XXXXXX)

shop_pid=
stop_servers=
stop_shop() {
    if [[ -n $shop_pid ]]; then
        kill -INT "$shop_pid" 2>/dev/null || true
        wait "$shop_pid" 2>/dev/null || true
        shop_pid=
    fi
}
cleanup() {
    stop_shop
    if [[ -n $stop_servers ]]; then
        eval "$stop_servers" >/dev/null 2>&1 || true
        # The servers' folder, from their stop command: `... pg_ctl -D FOLDER/pg stop; ...`.
        if [[ $stop_servers =~ -D\ ([^ ]+)/pg\ stop ]]; then rm -rf "${BASH_REMATCH[1]}"; fi
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts the shop on database $2, loads it with the visitors and checks the run; $1 names the
# store.
measure() {
    local store=$1 database=$2 port log="$OUT/orders-shop-$1.log"
    port=$(free_port)
    SHOP_DATABASE_URL=$database SHOP_ADDR="127.0.0.1:$port" SHOP_STOCK=$STOCK RUST_LOG=warn \
        "$TARGET_DIR/release/examples/shop" >"$log" 2>&1 &
    shop_pid=$!
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        kill -0 "$shop_pid" 2>/dev/null || { echo "the shop stopped; see $log" >&2; exit 1; }
        sleep 0.1
    done
    STORE=$store SHOP_URL="http://127.0.0.1:$port" RESULTS="$OUT/orders-$store.json" \
        "$TARGET_DIR/release/examples/load-orders"
    stop_shop
}

for store in $STORES; do
    case $store in
    sqlite) measure sqlite "sqlite://$work/shop.db?mode=rwc" ;;
    postgres)
        servers=$(bash benches/servers.sh)
        eval "$servers"
        stop_servers=${servers##*# to stop them: }
        measure postgres "$SOVENDUS_BENCH_POSTGRES_URL?options=-c%20synchronous_commit%3D$SYNCHRONOUS_COMMIT"
        ;;
    *) echo "STORES lists sqlite and postgres, not $store" >&2; exit 1 ;;
    esac
done
