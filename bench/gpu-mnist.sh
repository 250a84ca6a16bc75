#!/usr/bin/env bash
# MNIST on a lent GPU in one call of at most about 6 minutes (issue 12): trains the W2 U-Net for
# TRAIN_S seconds (180 by default; the run stops at a step boundary and saves), then samples a
# 10×10 grid, an inpainting grid and 1,000 digits as .npy from the checkpoint, each under a time
# limit (at most 165 s together). Built and packed here, run there as
#   . .gpu/setup.sh && bash bench/gpu-mnist.sh
# $OUT (or ./gpu-mnist-out) receives mnist-samples.png, mnist-samples.npy, mnist-inpainting.png,
# checkpoint.safetensors, log.jsonl and summary.txt (the commands, steps, wall times and the card),
# each ready for docs/. CHANNELS (default 32), BATCH (128) and PRECISION (tf32) pick the model,
# the batch and the GPU arithmetic.
# Without a usable GPU it says so in one line and exits 1.
set -uo pipefail

app=${NCSN_APP:-/tmp/ncsn-app}
[ -d "$app/build" ] || app=$(cd "$(dirname "$0")/.." && pwd)
results=${OUT:-$app/gpu-mnist-out}
train_s=${TRAIN_S:-180}
channels=${CHANNELS:-32}
batch=${BATCH:-128}
precision=${PRECISION:-tf32}
mkdir -p "$results"
. "$(dirname "$0")/gpu-usable.sh"
cd "$app"
node_bin=(node "$app/bin/ncsn-cuda.js")

if ! problem=$(gpu_problem); then
  echo "gpu-mnist: no usable GPU here: $problem"
  exit 1
fi

run=$(mktemp -d)
summary="$results/summary.txt"
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
echo "gpu-mnist on ${card:-an unnamed GPU}, $(date -u +%Y-%m-%dT%H:%M:%SZ)" | tee "$summary"
failed=0
# timed LIMIT COMMAND...: runs it with a limit, prints and records the command, its wall time and exit status
timed() {
  local limit=$1 start=$SECONDS
  shift
  echo "\$ $*" | tee -a "$summary"
  # --foreground: the signal goes to the command alone, once (train leaves without saving at a second)
  timeout --foreground --signal=TERM --kill-after=20 "$limit" "$@" 2>&1 | tail -n 5 | sed 's/^/  /' | tee -a "$summary"
  local rc=${PIPESTATUS[0]}
  echo "  exit $rc after $((SECONDS - start)) s" | tee -a "$summary"
  return "$rc"
}

# SIGTERM at TRAIN_S makes train finish its step and write the checkpoint; timeout then exits 124
timed "$train_s" "${node_bin[@]}" train --data mnist --device cuda --precision "$precision" --channels "$channels" \
  --batch-size "$batch" --steps 1000000 --checkpoint-every 1000 --out "$run"
rc=$?
ckpt="$run/checkpoint.safetensors"
if [ ! -s "$ckpt" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; }; then
  echo "gpu-mnist: training failed (exit $rc)" | tee -a "$summary"
  exit 1
fi
tail -n 1 "$run/log.jsonl" | sed 's/^/  last log line: /' | tee -a "$summary"
cp "$ckpt" "$run/log.jsonl" "$results/"

# the grid first: it is the picture that matters most if time runs short
gpu=(--device cuda --precision "$precision")
timed 45 "${node_bin[@]}" sample --checkpoint "$ckpt" "${gpu[@]}" --n 100 --seed 0 --out "$results/mnist-samples.png" || failed=1
timed 30 "${node_bin[@]}" inpaint --checkpoint "$ckpt" "${gpu[@]}" --image mnist:test --index 0 --mask-half bottom --n 14 \
  --out "$results/mnist-inpainting.png" || failed=1
timed 90 "${node_bin[@]}" sample --checkpoint "$ckpt" "${gpu[@]}" --n 1000 --seed 1 --out "$results/mnist-samples.npy" || failed=1
rm -rf "$run"
ls -l "$results" | tee -a "$summary"
exit "$failed"
