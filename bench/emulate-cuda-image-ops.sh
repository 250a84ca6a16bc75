#!/usr/bin/env bash
# The CUDA image-op kernels (native/cuda/conv.cu, norm.cu, image_pointwise.cu) run on the host,
# without a GPU, against the CPU ops: a check of their indexing, tiling, split-K and reductions for
# sessions that have no GPU. Each launch becomes a loop over blocks whose threads are std::threads
# meeting at a barrier for __syncthreads (native/tests/emulation/cuda_runtime.h), so it proves the
# arithmetic, not the absence of races or the tensor-core kernels (which it leaves out).
# Needs build/libncsn_core.a (the usual build), g++ with C++20 and python3; takes a few minutes.
#   bash bench/emulate-cuda-image-ops.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$root/native/cuda" "$work" <<'PY'
import re, sys
src, out = sys.argv[1], sys.argv[2]
for name in ['conv', 'norm', 'image_pointwise']:
    s = open(f'{src}/{name}.cu').read()
    s = s.replace('#include <cuda_bf16.h>\n', '').replace('#include <mma.h>\n', '')
    for header in ['check.cuh', 'grid.cuh', 'image_ops.cuh']:
        s = s.replace(f'#include "{header}"', f'#include "cuda/{header}"')
    if name == 'conv':  # the tensor-core kernel and its launches
        a = s.index('template <class P, bool BF16>\n__global__')
        s = s[:a] + s[s.index('#endif\n}\n', a) + len('#endif\n}\n'):]
        s = re.sub(r'case Precision::(tf32|bf16): conv_gemm_tc<[^;]*; break;',
                   r'case Precision::\1: throw std::logic_error("the emulation has no tensor cores");', s)
    s, n = re.subn(r'([A-Za-z_]\w*(?:<[^<>]*>)?)<<<(.+?), (\w+), 0, (\w+)>>>\((.*?)\);',
                   lambda m: f'emu_launch(dim3({m.group(2)}), dim3({m.group(3)}), [&] {{ {m.group(1)}({m.group(5)}); }});',
                   s, flags=re.S)
    if n == 0 or '<<<' in s:
        sys.exit(f'emulate: could not rewrite the launches of {name}.cu')
    open(f'{out}/{name}.cpp', 'w').write(s)
PY
nice -n 19 g++ -std=c++20 -O2 -w -I"$root/native/tests/emulation" -I"$root/native" \
  "$root/native/tests/emulation/image_ops_emulated.cpp" "$work"/conv.cpp "$work"/norm.cpp "$work"/image_pointwise.cpp \
  "$root/build/libncsn_core.a" -lpthread -o "$work/emulated"
nice -n 19 "$work/emulated"
