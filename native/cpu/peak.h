// The CPU's FP32 FMA rate, measured rather than read off a datasheet: `threads` threads each run
// independent chains of vector FMAs on the widest instruction set this CPU and build share, for
// `seconds`; the best rate of each thread, summed. Benchmarks set their arithmetic rate beside it.
#pragma once

namespace ncsn {

double fma_peak_gflops(int threads, double seconds = 0.2);

}  // namespace ncsn
