// Training on 8-bit images dequantises each batch as NCSN does: x·255/256 + U(0, 1)/256.
#include <algorithm>
#include <vector>

#include "check.h"
#include "core/training.h"
#include "cpu/cpu_ops.h"

using namespace ncsn;

namespace {

// A network that learns nothing and records the perturbed batches it is shown.
struct RecordingModel final : ScoreModel<float> {
  std::vector<ParamTensor> params{{"w", {1}, 0, 1}};
  std::vector<float> seen;
  int64_t data_dim() const override { return 4; }
  const std::vector<ParamTensor>& layout() const override { return params; }
  void reserve(Ops<float>&, int64_t) override {}
  void score(Ops<float>&, int, Mat<float> s, Mat<float> x, const int32_t*, const float*) override {
    seen.insert(seen.end(), x.data, x.data + x.size());
    std::fill(s.data, s.data + s.size(), 0.0f);
  }
  bool trainable() const override { return true; }
  void backward(Ops<float>&, int, Mat<float>, Mat<float>, const int32_t*, const float*, float* grads) override {
    grads[0] = 0;
  }
};

}  // namespace

TEST(image_batches_are_dequantised) {
  CpuOps<float> ops(1);
  RecordingModel model;
  const std::vector<float> sigma = {1e-7f};  // x̃ is the dequantised x
  DsmTrainer<float> trainer(ops, model, sigma.data(), {1e-7});
  const std::vector<float> data = {0, 1, 0, 1, 1, 0, 1, 0};
  trainer.set_data(data.data(), 2, 4);
  TrainState<float> state(ops, 1);
  for (Array<float>* a : {&state.params, &state.adam_m, &state.adam_v, &state.ema}) {
    const float zero = 0;
    a->upload(&zero, 1);
  }
  TrainSettings ts;
  ts.batch = 64;
  ts.dequantize = true;
  trainer.step(state, ts);
  float low_max = 0, high_min = 1, low_min = 1, high_max = 0;
  for (float v : model.seen) {
    CHECK((v >= 0 && v <= 1.0f / 256) || (v >= 255.0f / 256 && v <= 1), "a pixel became " << v);
    if (v < 0.5f) low_min = std::min(low_min, v), low_max = std::max(low_max, v);
    else high_min = std::min(high_min, v), high_max = std::max(high_max, v);
  }
  // the noise spans its interval of width 1/256 on both kinds of pixel
  CHECK(low_max - low_min > 0.8f / 256 && high_max - high_min > 0.8f / 256, "the dequantisation noise is missing");
}
