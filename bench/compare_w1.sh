#!/usr/bin/env bash
# W1 on this machine, ncsn-cuda and PyTorch side by side in one sitting, alternating so that both
# see the same load; prints each run's JSON line and then the ratios of the best figures.
#   bash bench/compare_w1.sh [rounds] [device] [precision]   (defaults: 3 rounds, cpu, fp32)
# On a GPU, fp32 is compared with PyTorch with TF32 off, tf32 with PyTorch with TF32 on.
# PYTHON picks the interpreter with torch (default /usr/bin/python3, Debian's python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
device=${2:-cpu}
precision=${3:-fp32}
tf32=off
[ "$precision" = tf32 ] && tf32=on
python=${PYTHON:-/usr/bin/python3}
threads=$(node -p "require('os').availableParallelism()")
out=$(mktemp)
for _ in $(seq "$rounds"); do
  "$python" bench/torch_w1.py --device "$device" --threads "$threads" --tf32 "$tf32" | tee -a "$out"
  node bin/ncsn-cuda.js bench --workload w1 --device "$device" --precision "$precision" | tee -a "$out"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const best = (impl, key) => Math.max(...rows.filter((r) => r.impl === impl).map((r) => r[key]));
const ratio = (key) => +(best("ncsn-cuda", key) / best("pytorch", key)).toFixed(2);
console.log(JSON.stringify({ workload: "w1", compare: "ncsn-cuda / pytorch, best of each",
  train_steps_per_s: ratio("train_steps_per_s"), sample_particle_steps_per_s: ratio("sample_particle_steps_per_s") }));
' "$out"
rm -f "$out"
