// CUDA errors as C++ exceptions that the bindings turn into JavaScript errors.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ncsn {

struct CudaError : std::runtime_error {
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(describe(code, what)), code(code) {}
  static std::string describe(cudaError_t code, const std::string& what) {
    std::string msg = "CUDA error in " + what + ": " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")";
    if (code == cudaErrorMemoryAllocation) msg = "out of GPU memory in " + what;
    if (code == cudaErrorIllegalAddress || code == cudaErrorLaunchFailure)
      msg += "; the GPU context is lost, restart the process";
    return msg;
  }
  cudaError_t code;
};

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CudaError(e, what);
}

// After a kernel launch: launch-configuration errors now, execution errors at the next sync.
inline void launch_check(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

// Launches a tiny kernel on the current device: "" when it ran, else why it did not.
std::string test_launch();

}  // namespace ncsn
