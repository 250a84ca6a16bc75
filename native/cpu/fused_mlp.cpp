#include "fused_mlp.h"

#include <algorithm>

#include "gemm.h"

namespace ncsn {

std::string CpuFusedMlp::langevin_unavailable(const MlpShape& shape) const {
  // op by op, a layer this narrow is a row of dot products, not a product with an epilogue
  if (shape.width < kDotProductOutputs)
    return "the fused CPU path needs a hidden width of at least " + std::to_string(kDotProductOutputs);
  // its epilogue applies softplus to every hidden layer
  if (shape.first_layer != FirstLayer::softplus) return "the fused CPU path is written for a softplus first layer, not sin";
  return "";
}

bool CpuFusedMlp::langevin_level(const MlpShape& shape, const float* params, const float* inv_sigma, int32_t level,
                                 Mat<float> x, int64_t steps, float drift, float diffusion, uint64_t seed,
                                 uint64_t first_step, float denoise, const std::atomic<bool>* cancel) {
  if (!langevin_unavailable(shape).empty()) return false;
  const std::vector<ParamTensor> layout = mlp_layout(shape);
  const int64_t n = x.rows, d = shape.data_dim, width = shape.width, depth = shape.depth;
  weights_t_.resize(static_cast<size_t>(depth));
  for (int64_t k = 0; k < depth; ++k) {
    const ParamTensor& w = layout[3 * k];
    weights_t_[k].resize(static_cast<size_t>(w.size));
    transpose(weights_t_[k].data(), width, params + w.offset, w.shape[1], width, w.shape[1]);
  }
  const Mat<float> out_w{const_cast<float*>(params) + layout[3 * depth].offset, d, width};
  const float* out_b = params + layout[3 * depth + 1].offset;
  const float inv_s = inv_sigma[level];

  const int64_t block_rows = kBlockTiles * gemm_tile_rows(thread_isa()), blocks = (n + block_rows - 1) / block_rows;
  ops_.run_chunks(blocks, [&](int64_t block, int) {
    const int64_t r0 = block * block_rows, m = std::min(n, r0 + block_rows) - r0;
    thread_local std::vector<float> act[2], score, noise;
    for (auto& a : act) a.resize(static_cast<size_t>(block_rows * width));
    score.resize(static_cast<size_t>(block_rows * d));
    noise.resize(static_cast<size_t>(block_rows * d));
    const Mat<float> xb = x.row_range(r0, r0 + m), sb{score.data(), m, d}, zb{noise.data(), m, d};

    auto score_block = [&] {
      const float* in = xb.data;
      int64_t in_cols = d;
      for (int64_t k = 0; k < depth; ++k) {
        float* out = act[k % 2].data();
        GemmArgs<float> g{out, width, in, in_cols, 1, weights_t_[k].data(), width, m, width, in_cols, false};
        g.bias = params + layout[3 * k + 1].offset;
        g.bias2 = params + layout[3 * k + 2].offset + level * width;
        g.softplus = true;
        gemm(g);
        in = out;
        in_cols = width;
      }
      ops_.matmul_forward(sb, {const_cast<float*>(in), m, width}, out_w);  // the score layer as op by op
      ops_.add_bias_forward(sb, out_b, Mat<float>{}, nullptr);
      for (int64_t i = 0; i < m * d; ++i) sb.data[i] *= inv_s;
    };

    for (int64_t t = 0; t < steps; ++t) {
      if (cancel && cancel->load(std::memory_order_relaxed)) return;
      score_block();
      ops_.random_normal(zb, {seed, RngPurpose::sample_noise, first_step + static_cast<uint64_t>(t)},
                         static_cast<uint64_t>(r0 * d));
      ops_.langevin_step(xb, sb, zb, drift, diffusion);
    }
    if (denoise > 0) {
      score_block();
      ops_.langevin_step(xb, sb, Mat<float>{}, denoise, 0.0f);
    }
  });
  ++langevin_runs_;
  return true;
}

}  // namespace ncsn
