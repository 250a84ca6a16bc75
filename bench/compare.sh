#!/usr/bin/env bash
# A workload of docs/workloads.md on this machine, ncsn-cuda and its PyTorch peer side by side in
# one sitting, alternating so that both see the same load; prints each run's JSON line and then
# the ratios of the best figures.
#   bash bench/compare.sh [workload] [rounds] [device] [precision]   (defaults: w1, 3 rounds, cpu, fp32)
# W1 runs bench/torch_w1.py, W2 bench/torch_w2.py. On a GPU, fp32 is compared with PyTorch with
# TF32 off, tf32 and bf16 with PyTorch with TF32 on; TORCH_COMPILE=on runs W2's peer under
# torch.compile. PYTHON picks the interpreter with torch (default /usr/bin/python3, Debian's
# python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:-w1}
rounds=${2:-3}
device=${3:-cpu}
precision=${4:-fp32}
python=${PYTHON:-/usr/bin/python3}
threads=$(node -p "require('os').availableParallelism()")
tf32=off
[ "$precision" = fp32 ] || tf32=on
peer_device=cpu
[ "$device" = cpu ] || peer_device=cuda
case $workload in
  w1)
    peer=(bench/torch_w1.py --device "$peer_device" --threads "$threads" --tf32 "$tf32") ;;
  w2)
    peer=(bench/torch_w2.py --device "$peer_device" --threads "$threads" --tf32 "$tf32" --compile "${TORCH_COMPILE:-off}") ;;
  *) echo "compare.sh: the workload must be w1 or w2" >&2; exit 2 ;;
esac
out=$(mktemp)
for _ in $(seq "$rounds"); do
  "$python" "${peer[@]}" | tee -a "$out"
  node bin/ncsn-cuda.js bench --workload "$workload" --device "$device" --precision "$precision" | tee -a "$out"
done
node -e '
const [file, workload] = process.argv.slice(1);
const rows = require("fs").readFileSync(file, "utf8").trim().split("\n").map(JSON.parse);
const keys = workload === "w1" ? ["train_steps_per_s", "sample_particle_steps_per_s"] : ["train_images_per_s", "sample_image_steps_per_s"];
const best = (impl, key) => Math.max(...rows.filter((r) => r.impl === impl).map((r) => r[key]));
const ratios = Object.fromEntries(keys.map((k) => [k, +(best("ncsn-cuda", k) / best("pytorch", k)).toFixed(2)]));
console.log(JSON.stringify({ workload, compare: "ncsn-cuda / pytorch, best of each", ...ratios }));
' "$out" "$workload"
rm -f "$out"
