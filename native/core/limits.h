// The largest sizes a model accepts, and size arithmetic that cannot wrap. A crafted config (a
// checkpoint's, or NcsnModel.create's) is checked against these before anything is allocated, so
// an absurd width is an error message rather than an int64 product that wraps and a buffer overrun.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "mlp.h"
#include "unet.h"

namespace ncsn {

struct Limits {
  static constexpr int64_t data_dim = int64_t(1) << 24;  // a 4096×4096 picture
  static constexpr int64_t width = 65536;
  static constexpr int64_t depth = 1000;
  static constexpr int64_t unet_base = 1024;
  static constexpr int64_t levels = 10000;
  // Parameters, and values in one batch, in one sample or one score call: every index fits an
  // int32 (the GPU kernels) and every result fits a JavaScript typed array.
  static constexpr int64_t elements = (int64_t(1) << 31) - 1;
  static constexpr int64_t steps_per_level = 1000000;
};

// a × b, or a std::invalid_argument naming `what` when the product passes `limit`.
inline int64_t checked_product(int64_t a, int64_t b, int64_t limit, const std::string& what) {
  if (a < 0 || b < 0 || (a > 0 && b > limit / a))
    throw std::invalid_argument(what + " is too large (" + std::to_string(a) + " × " + std::to_string(b) +
                                " values; at most " + std::to_string(limit) + ")");
  return a * b;
}

inline void check_bound(int64_t value, int64_t limit, const std::string& what) {
  if (value < 1 || value > limit)
    throw std::invalid_argument(what + " must be between 1 and " + std::to_string(limit) + " (got " +
                                std::to_string(value) + ")");
}

// Checks every dimension and the parameter count of the MLP before mlp_layout() multiplies them.
inline int64_t checked_mlp_param_count(const MlpShape& m) {
  check_bound(m.data_dim, Limits::data_dim, "the data dimension");
  check_bound(m.width, Limits::width, "the width");
  check_bound(m.depth, Limits::depth, "the depth");
  check_bound(m.levels, Limits::levels, "the number of noise levels");
  const int64_t cap = Limits::elements;
  const std::string what = "the model";
  // per hidden layer k: width × in weights, width biases, levels × width level biases
  const int64_t first = checked_product(m.width, m.data_dim + 1 + m.levels, cap, what);
  const int64_t hidden = checked_product(m.width, m.width + 1 + m.levels, cap, what);
  const int64_t rest = checked_product(m.depth - 1, hidden, cap, what);
  const int64_t out = checked_product(m.data_dim, m.width + 1, cap, what);
  if (first > cap - rest || first + rest > cap - out)
    throw std::invalid_argument("the model is too large (more than " + std::to_string(cap) + " parameters)");
  return first + rest + out;
}

// Checks the image and the widths of the U-Net, then its parameter count (its layout is only names
// and sizes, so making it allocates nothing large).
inline int64_t checked_unet_param_count(const UNetShape& u) {
  check_bound(u.channels, 64, "the number of image channels");
  check_bound(u.height, 4096, "the image height");
  check_bound(u.width, 4096, "the image width");
  check_bound(u.base, Limits::unet_base, "the U-Net's base width (--channels)");
  check_bound(u.levels, Limits::levels, "the number of noise levels");
  const int64_t params = UNet<float>(u).param_count();
  if (params > Limits::elements)
    throw std::invalid_argument("the model is too large (more than " + std::to_string(Limits::elements) + " parameters)");
  return params;
}

// The memory the host can hand out now without swapping: Linux's MemAvailable, else all of it.
inline double available_host_bytes() {
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    long long kb = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    std::fclose(f);
    if (kb >= 0) return 1024.0 * static_cast<double>(kb);
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
}

// Host buffers past the machine's memory are handed out lazily and the first writes to them bring
// in the OOM killer (or endless swapping) rather than a bad_alloc, so sizes are compared first.
inline void check_host_memory(double bytes, const std::string& what) {
  const double available = available_host_bytes();
  if (available <= 0 || bytes <= available) return;
  char text[160];
  std::snprintf(text, sizeof text, " needs %.1f GB of memory and %.1f GB is available", bytes / 1e9, available / 1e9);
  throw std::invalid_argument(what + text);
}

}  // namespace ncsn
