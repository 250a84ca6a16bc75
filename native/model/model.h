// A model as the bindings see it, assembled here from a backend (cpu/, cuda/) and a network of the
// core: the score model, its training state and the data it trains on. Everything here is float32; the double instantiations are for the tests.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/exact_mixture.h"
#include "../core/mlp.h"
#include "../core/sampler.h"
#include "../core/training.h"
#include "../core/unet.h"

namespace ncsn {

struct ModelConfig {
  std::string kind = "mlp";  // "mlp", "unet" or "exact:mixture"
  MlpShape shape;            // shape.levels is sigmas.size(); shape.data_dim is every kind's data dimension
  UNetShape unet;            // unet only: the image and the base width C
  std::vector<double> sigmas;
  uint64_t seed = 0;
  AdamSettings adam;
  double ema_decay = 0.999;
  std::string device = "cpu";
  int threads = 0;
  // CUDA: the op-by-op matrix products (tf32) and the convolutions (tf32, bf16) on the tensor cores
  Precision precision = Precision::fp32;
  bool fused = true;   // CUDA: the fused training kernel where the shape allows
  // CUDA: a training step's forward and backward, and a Langevin step (ald's, and pc's corrector
  // step), recorded once as a graph and replayed (Device::record_step); the results are the same
  // bit for bit either way. The bindings take it from the `graphs` backend option.
  bool graphs = true;
  bool dequantize = false;  // the data are 8-bit pixels in [0, 1]: dequantise every batch (NCSN)
  // exact:mixture only
  std::vector<double> mixture_means, mixture_weights;
  double mixture_var = 1.0;
};

// Statistics of the steps since the last report.
struct TrainProgress {
  int64_t step = 0;
  double loss = 0;
  std::vector<double> level_loss;  // mean loss per level (NaN where no sample drew that level)
  std::vector<int64_t> level_count;
  double steps_per_s = 0;
};

struct SampleRequest {
  int64_t n = 1000;
  SamplerSettings sampler;  // sigmas are the model's own
  // ald starts uniform in [init_low, init_high]^D; pc from its prior N(0, σ_1² I).
  double init_low = -8, init_high = 8;
  bool use_ema = true;
  const std::vector<float>* init = nullptr;  // n×D starting points instead of those
  bool frames = false;  // copy the particles out at the start and at every report
  // Inpainting: the known image (D values) and where it is known (D values, 1 or 0); both or neither.
  const std::vector<float>* known = nullptr;
  const std::vector<float>* mask = nullptr;
  // Set from another thread to stop after the current Langevin step; sample() then returns false.
  const std::atomic<bool>* cancel = nullptr;
};

struct SampleProgress {
  SamplerPosition position;
  std::vector<float> frame;  // n×D, when frames were asked for
};

// One named tensor copied to or from the host.
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// The parameter tensors a config makes (levels from its sigmas), after its kind and sizes are checked
// against the limits. Nothing large is allocated, so a checkpoint's config can be compared with the
// tensors in the file before a model is made from it.
std::vector<ParamTensor> layout_of(const ModelConfig& config);

// "cpu", "cuda", "cuda:N" or "auto" (the first usable GPU, else the CPU). `notice` says why auto
// fell back to the CPU.
std::unique_ptr<Ops<float>> make_backend(const std::string& device, int threads, Precision precision, std::string& notice);

class Model {
 public:
  explicit Model(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  std::string backend_name() const { return ops_->name(); }
  const std::string& backend_notice() const { return notice_; }
  int threads() const { return ops_->workers(); }
  bool trainable() const { return trainer_ != nullptr; }
  int64_t step() const { return state_->step; }
  int64_t param_count() const { return model_->param_count(); }
  double forward_flops() const { return model_->forward_flops(); }
  // The steps the backend has run from recorded graphs (tests ask which path ran).
  int64_t graph_replays() const { return ops_->graph_replays(); }
  // The backend's fused MLP kernels, or null: which path training and sampling take, and why.
  const MlpFastPaths<float>* fast_paths() const { return ops_->mlp_fast_paths(); }

  void set_data(const float* data, int64_t rows, int64_t cols);
  // Runs `steps` steps of `batch`, calling report() every `report_every` steps and after the last;
  // report returns false to stop early. `cancel`, set from another thread, stops after the current
  // step, with a report of the steps since the last one. Returns the steps done.
  int64_t train(int64_t steps, int64_t batch, int64_t report_every,
                const std::function<bool(const TrainProgress&)>& report, const std::atomic<bool>* cancel = nullptr);
  // Returns false when progress() asked to stop.
  bool sample(const SampleRequest& req, std::vector<float>& out,
              const std::function<bool(const SampleProgress&)>& progress);

  // s(x, σ_level) at n points (EMA weights by default), for pictures of the learned score field.
  std::vector<float> score(const float* x, int64_t n, int32_t level, bool use_ema);

  // Parameters under their names, Adam moments under "optimizer.exp_avg." and
  // "optimizer.exp_avg_sq.", the EMA under "ema.".
  std::vector<NamedTensor> tensors() const;
  void load_tensors(const std::vector<NamedTensor>& tensors, int64_t step);

 private:
  void check_scratch_memory(int64_t rows, const char* what) const;

  ModelConfig config_;
  std::string notice_;
  std::unique_ptr<Ops<float>> ops_;
  Array<float> sigma_, inv_sigma_;
  std::unique_ptr<ScoreModel<float>> model_;
  std::unique_ptr<TrainState<float>> state_;
  std::unique_ptr<DsmTrainer<float>> trainer_;
};

}  // namespace ncsn
