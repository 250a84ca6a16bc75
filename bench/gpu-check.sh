#!/usr/bin/env bash
# The whole GPU proof in one call on a lent GPU machine, which has no network and no compiler time
# to spare: everything was built on the development machine and packed with
#   PACK_DEV=1 bash ../shared/gpu/pack.sh
# and runs there as
#   . .gpu/setup.sh && bash bench/gpu-check.sh
# It builds nothing. Each step has its own time limit, and all of them end by DEADLINE seconds (330
# by default), so that one hang costs only its share. STEPS names the steps to run (default: all
# of them, in the order of the table), so that a session can run a part:
#   STEPS="gpu_tests unet_graphs graphs_api unet_memcheck unet_racecheck unet_ops w2_fp32 w2_tf32 w2_compile" DEADLINE=300 bash bench/gpu-check.sh
# (gpu_tests: the native tests that use the GPU or the U-Net, a part of native_tests; unet_graphs:
# the recorded-graph and run-to-run tests among them, in a line of their own; graphs_api: the
# `graphs` option through the library, test/graphs.test.ts, a part of vitest).
# $OUT (or ./gpu-check-out) receives summary.txt, the table printed last, and logs.tar.gz, every
# step's full log. Without a usable GPU it says so in one line and exits 1.
set -uo pipefail

app=${NCSN_APP:-/tmp/ncsn-app}
[ -d "$app/build" ] || app=$(cd "$(dirname "$0")/.." && pwd)
results=${OUT:-$app/gpu-check-out}
deadline=${DEADLINE:-330}
mkdir -p "$results"
out=$(mktemp -d)
. "$(dirname "$0")/gpu-usable.sh"
cd "$app"
node_bin=(node "$app/bin/ncsn-cuda.js")

# One line and exit 1 when no GPU is usable.
if ! problem=$(gpu_problem); then
  echo "gpu-check: no usable GPU here: $problem"
  exit 1
fi

all_steps="native_tests gpu_tests unet_graphs graphs_api fused_kernels w1_fp32 w1_tf32 memcheck racecheck unet_memcheck unet_racecheck unet_ops w2_fp32 w2_tf32 w2_compile vitest"
chosen=" ${STEPS:-$all_steps} "
declare -A status
# step NAME SECONDS COMMAND...: runs it with a limit, logs to $out/NAME.log, records pass/FAIL/timeout
step() {
  local name=$1 limit=$2
  shift 2
  [[ $chosen == *" $name "* ]] || return 0
  local start=$SECONDS
  [ $((deadline - SECONDS)) -lt "$limit" ] && limit=$((deadline - SECONDS))
  if [ "$limit" -lt 10 ]; then
    status[$name]="not run: past the ${deadline} s deadline"
    return
  fi
  echo "== $name (limit ${limit}s): $*"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  case $rc in
    0) status[$name]="pass" ;;
    124 | 137) status[$name]="TIMEOUT after ${limit}s" ;;
    *) status[$name]="FAIL (exit $rc)" ;;
  esac
  # compute-sanitizer refuses the GPU under gVisor (see the device notes): not a finding about the code
  grep -q 'Device not supported' "$out/$name.log" && status[$name]="FAIL: compute-sanitizer does not support this machine's GPU"
  status[$name]="${status[$name]}, $((SECONDS - start)) s"
  tail -n 4 "$out/$name.log" | sed 's/^/   /'
}

sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
python=${PYTHON:-python3}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "${node_bin[@]}" info
} > "$out/gpu.txt"
cat "$out/gpu.txt"

step native_tests 90 build/ncsn_tests
step gpu_tests 60 build/ncsn_tests cuda image_ops conv3x3 unet
# a U-Net's Langevin (ald and pc) and training steps replayed from recorded CUDA graphs against
# plain launches, bit for bit, and the same seed giving the same particles and weights run to run
step unet_graphs 30 build/ncsn_tests _from_a_graph_ cuda_unet_sampling_repeats cuda_unet_training_repeats
# the same through the library's `graphs` option, for the U-Net and the MLP, with the replay counts
step graphs_api 45 env NO_COLOR=1 node node_modules/vitest/vitest.mjs run --reporter=verbose test/graphs.test.ts
step fused_kernels 30 build/ncsn_fused_bench 1000000 4096
step w1_fp32 75 env PYTHON="$python" bash bench/compare.sh w1 2 cuda fp32
step w1_tf32 75 env PYTHON="$python" bash bench/compare.sh w1 2 cuda tf32
if [ -n "$sanitizer" ]; then
  # the kernels that share memory between threads, and every CUDA op once
  step memcheck 60 "$sanitizer" --tool memcheck --error-exitcode 1 build/ncsn_tests cuda_fused_ cuda_elementwise
  step racecheck 60 "$sanitizer" --tool racecheck --error-exitcode 1 build/ncsn_tests cuda_fused_dsm cuda_fused_langevin
  # the U-Net's ops at small sizes in every precision (the convolutions' tiles, the norms' block
  # sums), the sampling ops (pc's step size from the batch's norms among them), and a U-Net sampled
  # by ald and pc op by op and from recorded graphs
  step unet_memcheck 45 "$sanitizer" --tool memcheck --error-exitcode 1 build/ncsn_tests image_ops_on_cuda conv3x3_on_cuda dsm_and_langevin_ops_on_cuda cuda_unet_sampling cuda_unet_pc_sampling
  step unet_racecheck 45 "$sanitizer" --tool racecheck --error-exitcode 1 build/ncsn_tests image_ops_on_cuda conv3x3_on_cuda dsm_and_langevin_ops_on_cuda
else
  for name in memcheck racecheck unet_memcheck unet_racecheck; do
    [[ $chosen == *" $name "* ]] && status[$name]="not run: no compute-sanitizer"
  done
fi
# each U-Net op timed at W2's GPU size (C = 64, batch 128) in every precision, and a whole
# Langevin step from a recorded graph and op by op
step unet_ops 75 build/ncsn_image_op_bench 5
# W2 at its GPU size against PyTorch with cuDNN: TF32 off, on, and compiled
step w2_fp32 50 env PYTHON="$python" bash bench/compare.sh w2 1 cuda fp32
step w2_tf32 50 env PYTHON="$python" bash bench/compare.sh w2 1 cuda tf32
step w2_compile 150 env PYTHON="$python" TORCH_COMPILE=on bash bench/compare.sh w2 1 cuda tf32
step vitest 150 env NO_COLOR=1 node node_modules/vitest/vitest.mjs run --reporter=dot

{
  echo
  echo "gpu-check: $(head -n 2 "$out/gpu.txt" | tail -n 1)"
  printf '%-14s %s\n' step result
  for name in $all_steps; do
    [[ $chosen == *" $name "* ]] && printf '%-14s %s\n' "$name" "${status[$name]:-not run}"
  done
  grep -h '"kernel"' "$out/fused_kernels.log" 2>/dev/null
  grep -h '"op":"conv3x3.*"backend":"cuda' "$out/unet_ops.log" 2>/dev/null | sed -E 's/"forward_ms[^,]*,"backward_ms[^,]*,//'
  grep -h '"op":"unet langevin step"' "$out/unet_ops.log" 2>/dev/null
  for name in w1_fp32 w1_tf32 w2_fp32 w2_tf32 w2_compile; do
    grep -h '"compare"' "$out/$name.log" 2>/dev/null | sed "s/^/$name: /"
  done
  # W2's figures themselves (W1's are in the logs), for docs/performance.md
  for name in w2_fp32 w2_tf32 w2_compile; do
    grep -h '"impl"' "$out/$name.log" 2>/dev/null | sed "s/^/$name: /"
  done
  grep -hE '^(ok|FAIL|skip) ' "$out/native_tests.log" "$out/gpu_tests.log" "$out/unet_graphs.log" 2>/dev/null | grep -v '^ok' | sort -u | head -n 20
  grep -hE '(✓|×|↓) ' "$out/graphs_api.log" 2>/dev/null | grep -v '✓' | head -n 10
  grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$out"/*memcheck.log "$out"/*racecheck.log 2>/dev/null
} | tee "$results/summary.txt"
tar -C "$out" -czf "$results/logs.tar.gz" .
rm -rf "$out"
for name in "${!status[@]}"; do
  case ${status[$name]} in pass*) ;; *) exit 1 ;; esac
done
