// Standard normals from Philox (core/philox.h) a whole vector of blocks at a time, bit for bit the
// scalar normals_from_block: the same operations in the same order, every fmaf an FMA instruction
// and no other product fused, the branches of the log and the quadrant switch as selects.
// AVX-512 and AVX2 (targets with FMA), x86-64 only; elsewhere the scalar loop is the kernel.
#pragma once
#include <cstdint>

#include "../core/philox.h"

namespace ncsn {

// out[j] = element offset + j of the stream, for j < n: word e % 4 of block e / 4.
void normals_avx512(float* out, int64_t n, const RngStream& s, uint64_t offset);
void normals_avx2(float* out, int64_t n, const RngStream& s, uint64_t offset);

}  // namespace ncsn
