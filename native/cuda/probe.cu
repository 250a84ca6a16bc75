// The device probe: driver, devices, compute capability, and a tiny kernel launch on each GPU,
// since under lazy loading a missing kernel image only shows at the first launch.
#include <cstdio>

#include "check.cuh"
#include "cuda_backend.h"

#ifndef NCSN_CUDA_ARCHS
#define NCSN_CUDA_ARCHS "unknown"
#endif

namespace ncsn {
namespace {

__global__ void probe_kernel(int* flag) { *flag = 42; }

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Launches probe_kernel on the current device; returns "" or the reason it failed.
std::string try_launch() {
  int* flag = nullptr;
  cudaError_t e = cudaMalloc(&flag, sizeof(int));
  if (e != cudaSuccess) return std::string("cannot allocate on it: ") + cudaGetErrorString(e);
  probe_kernel<<<1, 1>>>(flag);
  e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  int value = 0;
  if (e == cudaSuccess) e = cudaMemcpy(&value, flag, sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(flag);
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion)
    return std::string("this build has no kernels for it (compiled for ") + NCSN_CUDA_ARCHS + "): " + cudaGetErrorString(e);
  if (e != cudaSuccess) return std::string("a test kernel failed: ") + cudaGetErrorString(e);
  if (value != 42) return "a test kernel ran but wrote the wrong value";
  return "";
}

GpuProbe run_probe() {
  GpuProbe p;
  p.compiled_archs = NCSN_CUDA_ARCHS;
  cudaRuntimeGetVersion(&p.runtime_version);
  if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess || p.driver_version == 0) {
    p.problem = "no NVIDIA driver is installed";
    return p;
  }
  if (p.driver_version / 1000 < p.runtime_version / 1000) {
    p.problem = "the NVIDIA driver supports CUDA " + version_text(p.driver_version) + " but this build needs CUDA " +
                version_text(p.runtime_version) + " (driver 580 or newer)";
    return p;
  }
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    p.problem = "no CUDA device is visible (check CUDA_VISIBLE_DEVICES)";
    return p;
  }
  if (e != cudaSuccess) {
    p.problem = std::string("CUDA cannot start: ") + cudaGetErrorString(e);
    return p;
  }
  for (int i = 0; i < n; ++i) {
    GpuInfo g;
    g.index = i;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      g.problem = "cannot read its properties";
      p.devices.push_back(g);
      continue;
    }
    g.name = prop.name;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.memory_bytes = prop.totalGlobalMem;
    g.multiprocessors = prop.multiProcessorCount;
    if (prop.major * 10 + prop.minor < 75) {
      g.problem = "compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                  " is older than 7.5, the oldest CUDA 13 supports";
    } else if (cudaSetDevice(i) != cudaSuccess) {
      g.problem = "cannot select it (exclusive mode or in use?)";
    } else {
      g.problem = try_launch();
    }
    g.usable = g.problem.empty();
    p.devices.push_back(g);
  }
  bool any = false;
  for (const auto& g : p.devices) any = any || g.usable;
  if (!any) p.problem = "no GPU is usable: " + p.devices[0].name + ": " + p.devices[0].problem;
  return p;
}

}  // namespace

const GpuProbe& probe_gpus() {
  static const GpuProbe probe = run_probe();
  return probe;
}

}  // namespace ncsn
