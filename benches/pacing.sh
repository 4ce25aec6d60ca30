#!/usr/bin/env bash
# Pacing benchmark: every standard scenario under every policy, 10 seeds each, plus the
# wall time of the 8-hour 100-agent day (scenario L) with 10 seeds. One JSON line each.
#   benches/pacing.sh            # all scenarios and policies
#   SEEDS=3 benches/pacing.sh    # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-10}
cargo build --release --quiet
for s in S M L D; do
  ./target/release/pacer simulate --scenario "benches/scenarios/$s.toml" --policy all --seeds "$seeds" --json
done
start=$(date +%s%N)
./target/release/pacer simulate --scenario benches/scenarios/L.toml --policy predictive --seeds "$seeds" --json >/dev/null
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
printf '{"benchmark":"simulate_L_8h_100_agents","seeds":%s,"wall_s":%d.%03d,"cores":%s}\n' "$seeds" $((ms / 1000)) $((ms % 1000)) "$(nproc)"
