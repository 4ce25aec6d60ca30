#!/bin/sh
# SIP load on loopback with SIPp as the far end; each run prints one JSON line of figures
# (BENCHMARKS.md §3). Usage: benches/sip_load.sh [CPS] [SECONDS] [STATIONS]
#   defaults: 500 CPS for 60 s (originate), 200 CPS for 30 s (b2bua latency), 5000 stations.
# MODES="originate" (or any of: originate b2bua register) runs only those.
set -eu
cd "$(dirname "$0")/.."
cps="${1:-500}"; secs="${2:-60}"; stations="${3:-5000}"
modes="${MODES:-originate b2bua register}"
cargo build --release -p pacer-sip --bench originate_load --quiet
bin=$(ls -t target/release/deps/originate_load-* | grep -v '\.d$' | head -1)
for mode in $modes; do
  case "$mode" in
    originate) "$bin" --mode originate --cps "$cps" --secs "$secs" ;;
    b2bua) "$bin" --mode b2bua --cps 200 --secs 30 ;;
    register) "$bin" --mode register --stations "$stations" --window 100 ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done
