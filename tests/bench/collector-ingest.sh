#!/usr/bin/env bash
# How fast the fleet collector stores events, against PostgreSQL's own floor
# in the same run. AGENTS uploaders (each with its own enrolled identity and
# a store filled beforehand) drain EVENTS events each through the real path
# (SQLite outbox → gzip JSON → HTTPS with mutual TLS → idempotent partitioned
# insert + hourly counts); then PostgreSQL COPYs the same rows from a CSV
# file into the same partitioned table (no TLS, HTTP, JSON nor duplicate
# check): the floor. Reported: events/s of each and vigie/COPY.
#
#   bash tests/bench/collector-ingest.sh [AGENTS] [EVENTS]   (default 4 50000)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
rust_ensure
apt_ensure postgresql-15
export VIGIE_BENCH_AGENTS=${1:-4} VIGIE_BENCH_EVENTS=${2:-50000}
cargo test --release --locked -q -p vigie-collector --test ingest_bench -- --ignored --nocapture 2>&1 \
    | grep -E '^collector-ingest|panicked|FAILED'
