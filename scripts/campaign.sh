#!/usr/bin/env bash
# The fault campaign (tests/integration/campaign.rs), run long by hand: each seed runs the
# campaign on Postgres and on Redis for CAMPAIGN_SECONDS of faults, and the figures each run
# prints are gathered in target/campaign/report.txt. A failing seed keeps the shops' logs and
# says where; rerun it alone with CAMPAIGN_SEED=<seed>.
#
#   scripts/campaign.sh [seconds per run] [first seed] [runs]     (defaults: 600 1 3)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
first_seed=${2:-1}
runs=${3:-3}
out=target/campaign
mkdir -p "$out"
: > "$out/report.txt"

# Built once, before the clock starts, with the tests' own profile (the shops wait on the
# network and the database, not on the CPU): the shops are the demo shop's binary.
cargo build --all-features --example shop
cargo test --all-features --test integration --no-run

status=0
for seed in $(seq "$first_seed" $((first_seed + runs - 1))); do
    log="$out/seed-$seed.log"
    echo "seed $seed: $seconds s of faults on Postgres and Redis (log: $log)"
    if ! CAMPAIGN_SEED=$seed CAMPAIGN_SECONDS=$seconds cargo test --all-features --test integration \
        -- campaign --nocapture --test-threads 1 >"$log" 2>&1; then
        echo "seed $seed FAILED: see $log"
        status=1
    fi
    grep -E '^campaign on .*\(CAMPAIGN_SEED' "$log" | tee -a "$out/report.txt" || true
done
echo "figures: $out/report.txt"
exit $status
