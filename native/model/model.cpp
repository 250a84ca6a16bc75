#include "model.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "../cpu/cpu_ops.h"
#include "../core/limits.h"
#ifdef NCSN_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

namespace ncsn {

#ifdef NCSN_WITH_CUDA
namespace {
// The backend on GPU g, saying in `notice` when it has no tensor cores for the precision asked.
std::unique_ptr<Ops<float>> gpu_backend(const GpuInfo& g, Precision precision, std::string& notice) {
  std::unique_ptr<Ops<float>> ops = make_cuda_ops(g.index, precision);
  if (precision != Precision::fp32 && g.cc_major < 8)
    notice = "--precision " + std::string(precision == Precision::tf32 ? "tf32" : "bf16") + " needs compute capability 8.0 (" +
             g.name + " has " + std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor) + "); using fp32";
  return ops;
}
}  // namespace
#endif

std::unique_ptr<Ops<float>> make_backend(const std::string& device, int threads, Precision precision, std::string& notice) {
  if (device == "cpu") return std::make_unique<CpuOps<float>>(threads);
  const bool gpu = device == "cuda" || device.rfind("cuda:", 0) == 0;
  if (device != "auto" && !gpu) throw std::invalid_argument("unknown device '" + device + "' (auto, cpu, cuda, cuda:N)");
  int index = 0;
  if (device.size() > 5) {
    const std::string n = device.substr(5);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 4)
      throw std::invalid_argument("unknown device '" + device + "' (auto, cpu, cuda, cuda:N)");
    index = std::stoi(n);
  }
#ifdef NCSN_WITH_CUDA
  const GpuProbe& p = probe_gpus();
  if (gpu && p.devices.empty()) throw std::invalid_argument("--device " + device + ": " + p.problem);
  if (gpu) {
    if (index >= static_cast<int>(p.devices.size())) return make_cuda_ops(index, precision);  // which names the GPUs there are
    return gpu_backend(p.devices[index], precision, notice);
  }
  std::string why = p.problem;
  for (const GpuInfo& g : p.devices) {
    if (!g.usable) continue;
    try {
      return gpu_backend(g, precision, notice);
    } catch (const std::runtime_error& e) {  // its test launch failed, or it is taken: try the next
      why = e.what();
    }
  }
  notice = "no usable GPU (" + why + "); using the CPU";
#else
  if (gpu) throw std::invalid_argument("--device " + device + ": this build has no CUDA backend (" NCSN_NO_CUDA_REASON ")");
  notice = "this build has no CUDA backend; using the CPU";
#endif
  (void)index;
  (void)precision;
  return std::make_unique<CpuOps<float>>(threads);
}

namespace {
void check_sigmas(const std::vector<double>& sigmas, bool allow_zero) {
  if (sigmas.empty()) throw std::invalid_argument("at least one noise level is needed");
  for (size_t i = 0; i < sigmas.size(); ++i) {
    if (!std::isfinite(sigmas[i]) || sigmas[i] < 0 || (!allow_zero && sigmas[i] == 0))
      throw std::invalid_argument("noise levels must be positive and finite");
    if (i > 0 && !(sigmas[i] < sigmas[i - 1]))
      throw std::invalid_argument("noise levels must be strictly decreasing");
  }
}

// Element e of a Philox stream, the same numbers random_normal draws on every backend.
std::vector<float> host_normals(const RngStream& s, int64_t n) {
  std::vector<float> z(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; e += 4) {
    float w[4];
    normals_from_block(philox_block(s, static_cast<uint32_t>(e / 4)), w);
    for (int64_t q = 0; q < 4 && e + q < n; ++q) z[e + q] = w[q];
  }
  return z;
}

// The config with its levels and, for the U-Net, its data dimension filled in, after every size is
// checked against the limits; also gives the parameter count.
ModelConfig checked_config(const ModelConfig& config, int64_t& params) {
  ModelConfig c = config;
  const bool exact = c.kind == "exact:mixture", unet = c.kind == "unet";
  if (!exact && !unet && c.kind != "mlp")
    throw std::invalid_argument("unknown model kind '" + c.kind + "' (mlp, unet, exact:mixture)");
  check_sigmas(c.sigmas, exact);
  check_bound(static_cast<int64_t>(c.sigmas.size()), Limits::levels, "the number of noise levels");
  c.shape.levels = c.unet.levels = static_cast<int64_t>(c.sigmas.size());
  params = 0;
  if (exact) {
    check_bound(c.shape.data_dim, Limits::data_dim, "the data dimension");
  } else if (unet) {
    params = checked_unet_param_count(c.unet);
    c.shape.data_dim = c.unet.channels * c.unet.height * c.unet.width;
  } else {
    params = checked_mlp_param_count(c.shape);
  }
  return c;
}
}  // namespace

std::vector<ParamTensor> layout_of(const ModelConfig& config) {
  int64_t params = 0;
  const ModelConfig c = checked_config(config, params);
  if (c.kind == "unet") return UNet<float>(c.unet).layout();
  if (c.kind == "mlp") return mlp_layout(c.shape);
  return {};
}

Model::Model(const ModelConfig& config) {
  int64_t params = 0;
  config_ = checked_config(config, params);
  const bool exact = config_.kind == "exact:mixture", unet = config_.kind == "unet";
  if (config.precision == Precision::bf16 && !unet)
    throw std::invalid_argument("--precision bf16 is for the U-Net's convolutions; the " + config_.kind +
                                " takes fp32 or tf32");
  ops_ = make_backend(config.device, config.threads, config.precision, notice_);
  // the weights, their EMA, Adam's two moments, and the zeros that start three of them
  if (ops_->name() == "cpu") check_host_memory(5.0 * sizeof(float) * static_cast<double>(params), "a model of " + std::to_string(params) + " parameters");

  const int64_t levels = config_.shape.levels;
  std::vector<float> sigma(levels), inv(levels);
  for (int64_t i = 0; i < levels; ++i) {
    sigma[i] = static_cast<float>(config.sigmas[i]);
    inv[i] = config.sigmas[i] > 0 ? static_cast<float>(1.0 / config.sigmas[i]) : 0.0f;
  }
  sigma_ = Array<float>(*ops_, levels);
  sigma_.upload(sigma.data(), levels);
  inv_sigma_ = Array<float>(*ops_, levels);
  inv_sigma_.upload(inv.data(), levels);

  if (exact) {
    std::vector<float> means(config.mixture_means.begin(), config.mixture_means.end());
    std::vector<float> weights(config.mixture_weights.begin(), config.mixture_weights.end());
    model_ = std::make_unique<ExactMixture<float>>(*ops_, means, weights, config.shape.data_dim,
                                                   static_cast<float>(config.mixture_var), sigma_.data());
  } else if (unet) {
    model_ = std::make_unique<UNet<float>>(config_.unet);
  } else {
    model_ = std::make_unique<Mlp<float>>(config_.shape, inv_sigma_.data());
  }
  if (model_->trainable()) trainer_ = std::make_unique<DsmTrainer<float>>(*ops_, *model_, sigma_.data(), config.sigmas);

  // Tensor t draws from stream (seed, init_weights, t), so its values do not depend on the others.
  const int64_t p = model_->param_count();
  state_ = std::make_unique<TrainState<float>>(*ops_, p);
  std::vector<float> zeros(static_cast<size_t>(p), 0.0f);
  for (auto* a : {&state_->params, &state_->adam_m, &state_->adam_v}) a->upload(zeros.data(), p);
  const auto& layout = model_->layout();
  for (size_t t = 0; t < layout.size(); ++t) {
    const ParamTensor& pt = layout[t];
    const RngStream stream{config.seed, RngPurpose::init_weights, t};
    switch (pt.init) {
      case ParamInit::zero: break;
      case ParamInit::fan_in_uniform: {
        const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(pt.fan_in)));
        ops_->random_uniform(Mat<float>{state_->params.data() + pt.offset, 1, pt.size}, -bound, bound, stream, 0);
        break;
      }
      case ParamInit::uniform: {
        const float bound = static_cast<float>(pt.bound);
        ops_->random_uniform(Mat<float>{state_->params.data() + pt.offset, 1, pt.size}, -bound, bound, stream, 0);
        break;
      }
      case ParamInit::norm_embed: {  // rows of [γ | β | α]: γ, α ~ N(1, 0.02²), β = 0
        std::vector<float> v = host_normals(stream, pt.size);
        const int64_t c = pt.shape[1] / 3;
        for (int64_t i = 0; i < pt.size; ++i) v[i] = (i % (3 * c)) / c == 1 ? 0.0f : 1.0f + 0.02f * v[i];
        state_->params.upload(v.data(), pt.size, pt.offset);
        break;
      }
    }
  }
  ops_->copy(state_->ema.data(), state_->params.data(), sizeof(float) * static_cast<size_t>(p));
}

// The network's scratch for a chunk of `rows` on every worker, against the host's memory.
void Model::check_scratch_memory(int64_t rows, const char* what) const {
  const double bytes = sizeof(float) * model_->scratch_values_per_row() * static_cast<double>(rows) * ops_->workers();
  check_host_memory(bytes, std::string(what) + " the " + config_.kind + ": its activations for " + std::to_string(rows) +
                               (rows == 1 ? " row" : " rows") + " on each of " + std::to_string(ops_->workers()) +
                               " threads");
}

void Model::set_data(const float* data, int64_t rows, int64_t cols) {
  ops_->bind_to_calling_thread();
  if (!trainer_) throw std::invalid_argument("model '" + config_.kind + "' has nothing to train");
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(data[i]))
      throw std::invalid_argument("training data has a non-finite value at row " + std::to_string(i / cols));
  trainer_->set_data(data, rows, cols);
}

int64_t Model::train(int64_t steps, int64_t batch, int64_t report_every,
                     const std::function<bool(const TrainProgress&)>& report, const std::atomic<bool>* cancel) {
  ops_->bind_to_calling_thread();
  if (!trainer_) throw std::invalid_argument("model '" + config_.kind + "' has nothing to train");
  if (trainer_->data_rows() == 0) throw std::invalid_argument("no training data was given");
  if (steps < 0 || batch < 1 || report_every < 1) throw std::invalid_argument("steps, batch and report interval must be positive");
  const std::string batch_text = "a batch of " + std::to_string(batch) + " points of dimension " + std::to_string(config_.shape.data_dim);
  const int64_t batch_values = checked_product(batch, config_.shape.data_dim, Limits::elements, batch_text);
  // the batch, its noise, its perturbed copy, the score and its gradient
  if (ops_->name() == "cpu") {
    check_host_memory(5.0 * sizeof(float) * static_cast<double>(batch_values), batch_text);
    check_scratch_memory(std::min(batch, std::min(ops_->chunk_rows(), model_->max_chunk_rows(*ops_))), "training");
  }
  TrainSettings ts;
  ts.batch = batch;
  ts.adam = config_.adam;
  ts.ema_decay = config_.ema_decay;
  ts.seed = config_.seed;
  ts.fused = config_.fused;
  ts.graphs = config_.graphs;
  ts.dequantize = config_.dequantize;
  // A recorded step lives for one call: a sampling run after it reserves the network's scratch
  // anew, and the scratch the recording holds goes back to the cache for it.
  struct ForgetAtEnd {
    DsmTrainer<float>& trainer;
    ~ForgetAtEnd() { trainer.forget_recording(); }
  } forget_at_end{*trainer_};
  trainer_->report(*state_);  // what an earlier call queued and did not report (it threw): dropped, or its divergence
  const size_t levels = config_.sigmas.size();
  using clock = std::chrono::steady_clock;
  auto since = clock::now();
  int64_t done = 0, window = 0;
  while (done < steps) {
    trainer_->step(*state_, ts);
    ++done;
    ++window;
    const bool stop = cancel && cancel->load(std::memory_order_relaxed);
    if (done % report_every == 0 || done == steps || stop) {
      const std::vector<double> sums = trainer_->report(*state_);
      TrainProgress p;
      p.step = state_->step;
      double total = 0, n = 0;
      p.level_loss.resize(levels);
      p.level_count.resize(levels);
      for (size_t l = 0; l < levels; ++l) {
        const double count = sums[levels + l];
        total += sums[l];
        n += count;
        p.level_loss[l] = count > 0 ? sums[l] / count : std::numeric_limits<double>::quiet_NaN();
        p.level_count[l] = static_cast<int64_t>(count);
      }
      p.loss = total / n;
      const auto now = clock::now();
      p.steps_per_s = window / std::chrono::duration<double>(now - since).count();
      since = now;
      window = 0;
      if (!report(p) || stop) break;
    }
  }
  return done;
}

bool Model::sample(const SampleRequest& req, std::vector<float>& out,
                   const std::function<bool(const SampleProgress&)>& progress) {
  ops_->bind_to_calling_thread();
  const int64_t d = model_->data_dim();
  const SamplerSettings& rs = req.sampler;
  if (req.n < 1) throw std::invalid_argument("the number of samples must be positive");
  check_bound(rs.steps_per_level, Limits::steps_per_level, "the steps per level");
  const std::string samples_text = std::to_string(req.n) + " samples of dimension " + std::to_string(d);
  const int64_t values = checked_product(req.n, d, Limits::elements, samples_text);
  // the particles, their copy for the caller, and the caller's own
  check_host_memory((ops_->name() == "cpu" ? 3.0 : 2.0) * sizeof(float) * static_cast<double>(values), samples_text);
  if (ops_->name() == "cpu") check_scratch_memory(independent_chunk_rows(*ops_, *model_, req.n), "sampling");
  if (!(rs.step_lr > 0) || !std::isfinite(rs.step_lr)) throw std::invalid_argument("the step size must be positive");
  if (!(rs.snr > 0) || !std::isfinite(rs.snr)) throw std::invalid_argument("the signal-to-noise ratio must be positive");
  if (rs.report_every < 0) throw std::invalid_argument("the report interval must not be negative");
  if (rs.kind == SamplerKind::pc && config_.sigmas.back() == 0)
    throw std::invalid_argument("the pc sampler needs positive noise levels");
  SamplerSettings settings = rs;
  settings.sigmas = config_.sigmas;
  settings.cancel = req.cancel;
  settings.graphs = rs.graphs && config_.graphs;
  Array<float> x(*ops_, req.n * d);
  Mat<float> xm = x.mat(req.n, d);
  if (req.init) {
    if (static_cast<int64_t>(req.init->size()) != req.n * d)
      throw std::invalid_argument("initial points must be n×" + std::to_string(d));
    x.upload(req.init->data(), req.n * d);
  } else if (settings.kind == SamplerKind::pc) {
    ops_->random_normal(xm, {settings.seed, RngPurpose::sample_init, 0}, 0);
    // x ← σ_1 x, as a step whose drift is x itself.
    ops_->langevin_step(xm, xm, Mat<float>{}, static_cast<float>(settings.sigmas[0] - 1), 0.0f);
  } else {
    ops_->random_uniform(xm, static_cast<float>(req.init_low), static_cast<float>(req.init_high),
                         {settings.seed, RngPurpose::sample_init, 0}, 0);
  }
  auto report = [&](const SamplerPosition& at) {
    SampleProgress p{at, {}};
    if (req.frames) {
      p.frame.resize(static_cast<size_t>(req.n * d));
      x.download(p.frame.data(), req.n * d);
    }
    return progress(p);
  };
  Array<float> known, mask;
  Inpainting<float> inpaint{};
  if (req.known || req.mask) {
    if (!req.known || !req.mask || static_cast<int64_t>(req.known->size()) != d ||
        static_cast<int64_t>(req.mask->size()) != d)
      throw std::invalid_argument("inpainting needs the known image and its mask, " + std::to_string(d) + " values each");
    for (float m : *req.mask)
      if (m != 0.0f && m != 1.0f) throw std::invalid_argument("an inpainting mask holds 1 (known) and 0 (to fill) only");
    for (float v : *req.known)
      if (!std::isfinite(v)) throw std::invalid_argument("the known image has a non-finite value");
    std::vector<float> rows(static_cast<size_t>(req.n * d));
    for (int64_t r = 0; r < req.n; ++r) std::copy(req.known->begin(), req.known->end(), rows.begin() + r * d);
    known = Array<float>(*ops_, req.n * d);
    known.upload(rows.data(), req.n * d);
    mask = Array<float>(*ops_, d);
    mask.upload(req.mask->data(), d);
    inpaint = {known.mat(req.n, d), mask.data()};
  }
  if (req.frames && !report({0, 0})) return false;
  const float* params = req.use_ema ? state_->ema.data() : state_->params.data();
  const bool finished = run_sampler<float>(*ops_, *model_, params, xm, settings, report, req.known ? &inpaint : nullptr);
  out.resize(static_cast<size_t>(req.n * d));
  x.download(out.data(), req.n * d);
  return finished;
}

std::vector<float> Model::score(const float* x, int64_t n, int32_t level, bool use_ema) {
  ops_->bind_to_calling_thread();
  const int64_t d = model_->data_dim();
  if (n < 1) throw std::invalid_argument("score: no points");
  checked_product(n, d, Limits::elements, "score: " + std::to_string(n) + " points of dimension " + std::to_string(d));
  if (level < 0 || level >= static_cast<int32_t>(config_.sigmas.size()))
    throw std::invalid_argument("score: the level must be in [0, " + std::to_string(config_.sigmas.size()) + ")");
  const int64_t chunk = independent_chunk_rows(*ops_, *model_, n), n_chunks = (n + chunk - 1) / chunk, rows = std::min(n, chunk);
  Array<float> xs(*ops_, n * d), out(*ops_, n * d);
  xs.upload(x, n * d);
  std::vector<Array<int32_t>> levels;
  for (int w = 0; w < ops_->workers(); ++w) levels.emplace_back(*ops_, rows);
  model_->reserve(*ops_, rows);
  const float* params = use_ema ? state_->ema.data() : state_->params.data();
  ops_->run_chunks(n_chunks, [&](int64_t c, int w) {
    const int64_t r0 = c * chunk, r1 = std::min(n, r0 + chunk);
    ops_->fill_int(levels[w].data(), r1 - r0, level);
    model_->score(*ops_, w, out.mat(n, d).row_range(r0, r1), xs.mat(n, d).row_range(r0, r1), levels[w].data(), params);
  });
  std::vector<float> host(static_cast<size_t>(n * d));
  out.download(host.data(), n * d);
  return host;
}

std::vector<NamedTensor> Model::tensors() const {
  ops_->bind_to_calling_thread();
  std::vector<NamedTensor> out;
  const std::pair<const char*, const Array<float>*> groups[] = {
      {"", &state_->params}, {"ema.", &state_->ema}, {"optimizer.exp_avg.", &state_->adam_m},
      {"optimizer.exp_avg_sq.", &state_->adam_v}};
  for (const auto& [prefix, arr] : groups)
    for (const ParamTensor& p : model_->layout()) {
      NamedTensor t{prefix + p.name, p.shape, std::vector<float>(static_cast<size_t>(p.size))};
      arr->download(t.data.data(), p.size, p.offset);
      out.push_back(std::move(t));
    }
  return out;
}

void Model::load_tensors(const std::vector<NamedTensor>& tensors, int64_t step) {
  ops_->bind_to_calling_thread();
  if (step < 0) throw std::invalid_argument("the step count must not be negative");
  const std::pair<const char*, Array<float>*> groups[] = {
      {"", &state_->params}, {"ema.", &state_->ema}, {"optimizer.exp_avg.", &state_->adam_m},
      {"optimizer.exp_avg_sq.", &state_->adam_v}};
  for (const auto& [prefix, arr] : groups)
    for (const ParamTensor& p : model_->layout()) {
      const std::string name = prefix + p.name;
      auto it = std::find_if(tensors.begin(), tensors.end(), [&](const NamedTensor& t) { return t.name == name; });
      if (it == tensors.end()) throw std::invalid_argument("checkpoint has no tensor '" + name + "'");
      if (it->shape != p.shape) throw std::invalid_argument("tensor '" + name + "' has the wrong shape");
      for (float v : it->data)
        if (!std::isfinite(v)) throw std::invalid_argument("tensor '" + name + "' has a non-finite value");
    }
  for (const auto& [prefix, arr] : groups)
    for (const ParamTensor& p : model_->layout()) {
      const std::string name = prefix + p.name;
      auto it = std::find_if(tensors.begin(), tensors.end(), [&](const NamedTensor& t) { return t.name == name; });
      arr->upload(it->data.data(), p.size, p.offset);
    }
  state_->step = step;
}

}  // namespace ncsn
