#!/bin/sh
# Outbound SIP load on loopback: pacer-sip originates calls to a SIPp carrier that answers.
# Usage: benches/sip_load.sh [CPS] [SECONDS]   (defaults: 500 CPS for 60 s, BENCHMARKS.md §3)
set -eu
cd "$(dirname "$0")/.."
exec cargo bench -p pacer-sip --bench originate_load -- --cps "${1:-500}" --secs "${2:-60}"
