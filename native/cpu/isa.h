// The vector instruction sets the CPU kernels are built for. On x86-64 each hot loop is compiled
// for AVX-512, AVX2 and the SSE2 baseline and the widest the CPU runs is taken at run time;
// elsewhere (arm64, with NEON) the compiler's baseline is the only build.
// A build configured with -DNCSN_CPU_MAX_ISA=avx2 leaves AVX-512 out, so that the AVX2 kernels can
// be measured on a machine that has both.
#pragma once

#if defined(__x86_64__)
#define NCSN_X86_64 1
#if defined(NCSN_CPU_MAX_AVX2)
#define NCSN_AVX512 0
#define NCSN_ISA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NCSN_AVX512 1
#define NCSN_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#else
#define NCSN_X86_64 0
#define NCSN_AVX512 0
#define NCSN_ISA_CLONES
#endif
