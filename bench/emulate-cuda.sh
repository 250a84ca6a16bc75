#!/usr/bin/env bash
# The whole CUDA backend (every file of native/cuda) run on the host, without a GPU: the native
# tests' CUDA cases (cuda_parity.cpp, the op harness's CUDA rows) against the CPU backend, on the
# emulated runtime of native/tests/emulation (blocks one after another, a block's warps in turn
# between barriers, its threads as fibers, device memory in host memory, stream capture and graph
# replay, the tensor cores' tiles). It checks the kernels' arithmetic, index maps and barriers and
# the backend's logic (fused paths, recorded steps, determinism) before a session with a GPU runs
# them; it proves nothing of speed (bench/gpu-check.sh).
#
#   bash bench/emulate-cuda.sh [test-name-filter …]     (default: every test whose name says cuda)
#
#   EMULATE_ORDER=reverse       threads, warps and blocks in reverse order: a barrier missing
#                               between two threads reads the old value in one order and the new
#                               one in the other, so run both (ctest does)
#   EMULATE_SANITIZE=address    built with AddressSanitizer: a read or write past a device
#                               allocation or a shared array stops the run with its place, as
#                               compute-sanitizer's memcheck does (a few times slower)
#
# Needs x86-64, g++ with C++20 and python3 (else it exits 77, which ctest counts as skipped), and
# the CPU objects of the usual build (build/libncsn_core.a, or NCSN_CORE_LIB=path). The launches
# `k<<<grid, block[, shared[, stream]]>>>(args)` are rewritten as emu_launch(grid, block, shared,
# stream, k, args) and `extern __shared__` arrays as the launch's buffer; nothing else in
# native/cuda changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in g++ python3; do
  command -v $tool >/dev/null || { echo "emulate-cuda: skipped, no $tool"; exit 77; }
done
[ "$(uname -m)" = x86_64 ] || { echo "emulate-cuda: skipped, the fibers are written for x86-64"; exit 77; }
lib=${NCSN_CORE_LIB:-$root/build/libncsn_core.a}
[ -f "$lib" ] || { echo "emulate-cuda: no $lib (build first, or set NCSN_CORE_LIB)" >&2; exit 2; }
work=${EMULATE_WORK:-$(mktemp -d)}
mkdir -p "$work/cuda"
python3 - "$root/native/cuda" "$work/cuda" <<'PY'
import os, re, sys
src, out = sys.argv[1], sys.argv[2]

def rewrite_launches(s, name):
    pieces, pos, count = [], 0, 0
    while (at := s.find('<<<', pos)) >= 0:
        # the kernel: an identifier, with template arguments if any, ending where <<< starts
        k = at
        if s[k - 1] == '>':
            depth = 0
            while True:
                k -= 1
                depth += s[k] == '>'
                depth -= s[k] == '<'
                if depth == 0:
                    break
        m = re.search(r'[A-Za-z_][\w:]*$', s[:k])
        kernel_start = m.start()
        kernel = s[kernel_start:at]
        close = s.index('>>>', at)
        config, depth, part = [], 0, ''
        for ch in s[at + 3:close]:  # the configuration's arguments, split at top-level commas
            depth += (ch == '(') - (ch == ')')
            if ch == ',' and depth == 0:
                config.append(part.strip())
                part = ''
            else:
                part += ch
        config.append(part.strip())
        config += ['0', 'nullptr'][len(config) - 2:] if len(config) < 4 else []
        assert s[close + 3] == '(', f'{name}: a launch without arguments after >>>'
        depth, i = 0, close + 3
        while True:
            depth += s[i] == '('
            depth -= s[i] == ')'
            if depth == 0:
                break
            i += 1
        args = s[close + 4:i].strip()
        call = f'emu_launch({", ".join(config)}, {kernel}' + (f', {args})' if args else ')')
        pieces.append(s[pos:kernel_start] + call)
        pos, count = i + 1, count + 1
    return ''.join(pieces) + s[pos:], count

for f in sorted(os.listdir(src)):
    if not f.endswith('.cu'):
        continue
    s = open(os.path.join(src, f)).read()
    s, n = rewrite_launches(s, f)
    s, m = re.subn(r'extern __shared__ (?:__align__\(\d+\) )?unsigned char (\w+)\[\];',
                   r'unsigned char* \1 = emu_dynamic_shared();', s)
    if n == 0 or '<<<' in s or 'extern __shared__' in s:
        sys.exit(f'emulate-cuda: could not rewrite the launches of {f}')
    open(os.path.join(out, f[:-3] + '.cpp'), 'w').write(s)
    print(f'emulate-cuda: {f}: {n} launches' + (f', {m} dynamic shared arrays' if m else ''))
PY

inc=(-I"$root/native/tests/emulation" -I"$root/native" -I"$root/native/cuda")
# -march=x86-64-v3: FMAs, which nvcc contracts a·b + c into as g++ then does
cuda_flags=(-std=c++20 -O2 -w -march=x86-64-v3 -D__CUDA_ARCH__=900 -DNCSN_CUDA_ARCHS='"90-real"' "${inc[@]}")
test_flags=(-std=c++20 -O1 -w -DNCSN_WITH_CUDA "${inc[@]}")
# EMULATE_SANITIZE=address: every object and the link with AddressSanitizer (cudaMalloc is malloc
# here, a static __shared__ array a static)
sanitize=()
objdir=$work
if [ -n "${EMULATE_SANITIZE:-}" ]; then
  [ "$EMULATE_SANITIZE" = address ] || { echo "emulate-cuda: EMULATE_SANITIZE takes only 'address'" >&2; exit 2; }
  sanitize=(-fsanitize=address -fno-omit-frame-pointer)
  echo 'int main() { return 0; }' | g++ "${sanitize[@]}" -x c++ - -o "$work/asan-probe" 2>/dev/null ||
    { echo "emulate-cuda: skipped, g++ cannot link AddressSanitizer here (libasan)"; exit 77; }
  # host leaks at exit are not what this looks for, and LeakSanitizer fails where ptrace is denied
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
  cuda_flags+=("${sanitize[@]}")
  test_flags+=("${sanitize[@]}")
  objdir=$work/asan
  mkdir -p "$objdir"
fi
objects=()
compile() {  # compile SOURCE FLAGS… into $objdir, in parallel; again (with EMULATE_WORK kept) when a header changed
  local source=$1; shift
  local object="$objdir/$(echo "$source" | tr '/' '_').o"
  objects+=("$object")
  if [ ! -f "$object" ] || [ "$source" -nt "$object" ] ||
     [ -n "$(find "$root/native" \( -name '*.h' -o -name '*.cuh' \) -newer "$object" -print -quit)" ]; then
    nice -n 19 g++ "$@" -c "$source" -o "$object" &
  fi
}
for f in "$work"/cuda/*.cpp; do compile "$f" "${cuda_flags[@]}"; done
wait
compile "$root/native/model/model.cpp" "${test_flags[@]}"
for f in "$root"/native/tests/*.cpp; do compile "$f" "${test_flags[@]}"; done
wait
nice -n 19 g++ "${sanitize[@]}" "${objects[@]}" "$lib" -lpthread -o "$objdir/emulated_tests"
echo "emulate-cuda: built $objdir/emulated_tests"
if [ $# -eq 0 ]; then set -- cuda; fi
nice -n 19 "$objdir/emulated_tests" "$@"
