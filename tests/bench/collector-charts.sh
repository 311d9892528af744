#!/usr/bin/env bash
# A 30-day chart (events per day, service and decision) over EVENTS events
# in the collector's PostgreSQL schema, read from the events and from the
# hourly counts the collector keeps as it stores them; both timed in the
# same database (best of three, through psql, as a console would ask).
#
#   bash tests/bench/collector-charts.sh [EVENTS]      (default 5000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
rust_ensure
apt_ensure postgresql-15
export VIGIE_BENCH_EVENTS=${1:-5000000}
cargo test --release --locked -q -p vigie-collector --test charts_bench -- --ignored --nocapture 2>&1 \
    | grep -E '^collector-(charts|report)|panicked|FAILED'
