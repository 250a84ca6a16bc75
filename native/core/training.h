// Denoising score matching (Vincent 2011; NCSN eq. 5 with λ(σ) = σ²), one Adam step at a time:
// draw a batch and a level per sample, perturb, forward, loss, backward, Adam, EMA.
// Each step's randomness is keyed by (seed, purpose, step), so a resumed run continues exactly.
// A step reads nothing back to the host: its losses and its check for divergence stay in the
// device's memory until the caller asks for a report, so a GPU runs the steps back to back.
#pragma once
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "score_model.h"

namespace ncsn {

// A diverging run, stopped before its step changes the weights: a non-finite loss (with the step
// and the noise level of the sample) or a non-finite gradient.
struct DivergenceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Everything a checkpoint holds besides the config.
template <typename T>
struct TrainState {
  TrainState(Ops<T>& ops, int64_t n) : params(ops, n), adam_m(ops, n), adam_v(ops, n), ema(ops, n) {}
  Array<T> params, adam_m, adam_v, ema;
  int64_t step = 0;  // Adam steps taken; also the counter of every training random stream
};

struct TrainSettings {
  int64_t batch = 128;
  AdamSettings adam;
  double ema_decay = 0.999;
  uint64_t seed = 0;
  bool fused = true;  // use the backend's fused forward/backward where it has one
  // Record a step's draws, forward and backward once and replay them (a CUDA graph) where the
  // backend can (Device::record_step).
  bool graphs = true;
  // 8-bit data scaled to [0, 1]: each batch is dequantised as NCSN does, x·255/256 + U(0, 1)/256.
  bool dequantize = false;
};

template <typename T>
class DsmTrainer {
 public:
  // sigma: the device table of σ_i (descending), `levels` entries; sigma_host the same on the host.
  DsmTrainer(Ops<T>& ops, ScoreModel<T>& model, const T* sigma, std::vector<double> sigma_host)
      : ops_(ops), model_(model), sigma_(sigma), sigma_host_(std::move(sigma_host)),
        divergence_(ops, 1), level_sums_(ops, 2 * static_cast<int64_t>(sigma_host_.size())) {
    if (!model.trainable()) throw std::invalid_argument("this score model has nothing to train");
    clear_report();
  }

  void set_data(const T* host, int64_t rows, int64_t cols) {
    if (cols != model_.data_dim()) throw std::invalid_argument("training data has the wrong dimension");
    if (rows < 1) throw std::invalid_argument("training data is empty");
    if (rows > INT32_MAX) throw std::invalid_argument("training data has more than 2^31 rows");
    data_ = Array<T>(ops_, rows * cols);
    data_.upload(host, rows * cols);
    data_rows_ = rows;
  }
  int64_t data_rows() const { return data_rows_; }

  // Drops the recorded step (see step()), and with it the scratch it holds: the next step records
  // afresh. Whoever may move the buffers a recording holds calls it first (a sampling run reserves
  // the network's scratch anew).
  void forget_recording() {
    recorded_.reset();
    recorded_key_ = RecordingKey{};
  }

  // Queues one step. With ts.graphs, the draws, the forward and the backward are recorded at the
  // first step and replayed at the next ones (only the step of the random streams changes), until
  // the batch, the settings or the parameters' buffer change, or forget_recording(). A step whose
  // losses or gradient are not finite is noted, and from it on Adam and the EMA change nothing.
  void step(TrainState<T>& st, const TrainSettings& ts) {
    if (data_rows_ == 0) throw std::logic_error("no training data");
    const int64_t b = ts.batch, p = model_.param_count();
    reserve(b);
    const uint64_t t = static_cast<uint64_t>(st.step);
    const auto gradients = [&](uint64_t k) { loss_and_gradients(st.params.data(), ts, k); };
    const RecordingKey key{b, data_rows_, st.params.data(), data_.data(), ts.seed, ts.fused, ts.dequantize, true};
    if (ts.graphs && !(key == recorded_key_)) {  // record once per key; where that fails, launch op by op
      recorded_ = ops_.record_step(t, gradients);
      recorded_key_ = key;
    }
    if (ts.graphs && recorded_) recorded_->run(t);
    else gradients(t);

    const T* grad = chunk_grad_[0].data();
    ops_.note_divergence(divergence_.data(), loss_.data(), level_.data(), b, grad, p, t + 1);
    ops_.add_level_losses(level_sums_.data(), loss_.data(), level_.data(), b, levels());
    ops_.adam_update(st.params.data(), grad, st.adam_m.data(), st.adam_v.data(), p, ts.adam, st.step + 1,
                     divergence_.data());
    ops_.ema_update(st.ema.data(), st.params.data(), p, ts.ema_decay, divergence_.data());
    st.step += 1;
  }

  // Waits for the steps queued since the last report and returns what they measured: each level's
  // summed loss in [0, L) and its number of samples in [L, 2L). Where one of them diverged, the
  // state is as the step before it left it, st.step goes back to that step, and DivergenceError
  // says where.
  std::vector<double> report(TrainState<T>& st) {
    Divergence d;
    divergence_.download(&d, 1);
    std::vector<double> sums(static_cast<size_t>(2 * levels()));
    level_sums_.download(sums.data(), 2 * levels());
    clear_report();
    if (d.step == 0) return sums;
    st.step = static_cast<int64_t>(d.step) - 1;
    std::ostringstream os;
    if (d.in_loss())
      os << "training diverged: non-finite loss at step " << d.step << ", noise level " << d.level() + 1 << " (sigma "
         << sigma_host_[d.level()] << ")";
    else  // finite losses can still give an overflowing gradient
      os << "training diverged: non-finite gradient at step " << d.step << " (every loss in the batch was finite)";
    throw DivergenceError(os.str());
  }

 private:
  // The draws of step t, the forward and the backward: per-sample losses in loss_, the batch's
  // gradient in chunk_grad_[0].
  void loss_and_gradients(const T* params, const TrainSettings& ts, uint64_t t) {
    const int64_t b = ts.batch, d = model_.data_dim(), p = model_.param_count();
    ops_.random_below(index_.data(), b, static_cast<uint32_t>(data_rows_), {ts.seed, RngPurpose::batch_index, t}, 0);
    ops_.random_below(level_.data(), b, static_cast<uint32_t>(sigma_host_.size()),
                      {ts.seed, RngPurpose::batch_level, t}, 0);
    Mat<T> noise = noise_.mat(b, d), x = x_.mat(b, d), xt = xt_.mat(b, d);
    ops_.random_normal(noise, {ts.seed, RngPurpose::train_noise, t}, 0);
    ops_.gather_rows(x, data_.mat(data_rows_, d), index_.data());
    if (ts.dequantize) {
      Mat<T> u = xt;  // free until the perturbation below
      ops_.random_uniform(u, T(0), T(1), {ts.seed, RngPurpose::dequantize, t}, 0);
      ops_.langevin_step(x, x, u, T(-1) / 256, T(1) / 256);  // x += −x/256 + u/256
    }
    ops_.perturb(xt, x, noise, sigma_, level_.data());

    const int64_t chunk = chunk_rows(), n_chunks = (b + chunk - 1) / chunk;
    const T grad_scale = T(1) / static_cast<T>(b);
    if (ts.fused && model_.fused_dsm_gradients(ops_, params, sigma_, xt, noise, level_.data(), grad_scale, loss_.data(),
                                               chunk_grad_[0].data()))
      return;
    // The chunks' gradients are summed into chunk_grad_[0] from left to right, each as soon as it
    // and every chunk before it are done, by a thread that has finished a chunk: the same sum as one
    // pass after them all, but most of it while other chunks still run (after them all, it was 7 %
    // of a W1 step on two cores).
    std::mutex fold_mu;
    std::vector<char> done(static_cast<size_t>(n_chunks), 0);
    int64_t summed = -1;  // chunks 0…summed are in chunk_grad_[0]
    bool summing = false;
    const auto chunk_done = [&](int64_t c) {
      std::unique_lock<std::mutex> lock(fold_mu);
      done[c] = 1;
      if (summing) return;  // the thread summing now takes this chunk when its turn comes
      summing = true;
      while (summed + 1 < n_chunks && done[summed + 1]) {
        const int64_t next = ++summed;
        lock.unlock();
        if (next > 0) ops_.accumulate(chunk_grad_[0].data(), chunk_grad_[next].data(), p);
        lock.lock();
      }
      summing = false;
    };
    ops_.run_chunks(n_chunks, [&](int64_t c, int worker) {
      const int64_t r0 = c * chunk, r1 = std::min(b, r0 + chunk);
      const int32_t* lv = level_.data() + r0;
      const Mat<T> s = score_.mat(b, d).row_range(r0, r1), ds = dscore_.mat(b, d).row_range(r0, r1);
      model_.score(ops_, worker, s, xt.row_range(r0, r1), lv, params);
      ops_.dsm_loss(loss_.data() + r0, ds, s, noise.row_range(r0, r1), sigma_, lv, grad_scale);
      model_.backward(ops_, worker, ds, xt.row_range(r0, r1), lv, params, chunk_grad_[c].data());
      chunk_done(c);
    });
  }

  // What a recorded step was recorded with: a step of other settings or buffers records afresh.
  struct RecordingKey {
    int64_t batch = 0, data_rows = 0;
    const T* params = nullptr;
    const T* data = nullptr;
    uint64_t seed = 0;
    bool fused = false, dequantize = false;
    bool tried = false;  // false: nothing was recorded, or it was forgotten
    bool operator==(const RecordingKey& o) const {
      return batch == o.batch && data_rows == o.data_rows && params == o.params && data == o.data && seed == o.seed &&
             fused == o.fused && dequantize == o.dequantize && tried == o.tried;
    }
  };

  int64_t levels() const { return static_cast<int64_t>(sigma_host_.size()); }

  void clear_report() {
    const Divergence none;
    divergence_.upload(&none, 1);
    const std::vector<double> zeros(static_cast<size_t>(2 * levels()), 0.0);
    level_sums_.upload(zeros.data(), 2 * levels());
  }

  int64_t chunk_rows() const { return std::min(ops_.chunk_rows(), model_.max_chunk_rows(ops_)); }

  void reserve(int64_t b) {
    if (b == batch_) return;
    const int64_t d = model_.data_dim(), chunk = chunk_rows(), n_chunks = (b + chunk - 1) / chunk;
    index_ = Array<int32_t>(ops_, b);
    level_ = Array<int32_t>(ops_, b);
    noise_ = Array<T>(ops_, b * d);
    x_ = Array<T>(ops_, b * d);
    xt_ = Array<T>(ops_, b * d);
    score_ = Array<T>(ops_, b * d);
    dscore_ = Array<T>(ops_, b * d);
    loss_ = Array<T>(ops_, b);
    chunk_grad_.clear();
    for (int64_t c = 0; c < n_chunks; ++c) chunk_grad_.emplace_back(ops_, model_.param_count());
    model_.reserve(ops_, std::min(b, chunk));
    batch_ = b;
  }

  Ops<T>& ops_;
  ScoreModel<T>& model_;
  const T* sigma_;
  std::vector<double> sigma_host_;
  Array<Divergence> divergence_;  // the first diverging step since the last report
  Array<double> level_sums_;      // each level's summed loss, then its count, since the last report
  Array<T> data_;
  int64_t data_rows_ = 0;
  int64_t batch_ = 0;
  Array<int32_t> index_, level_;
  Array<T> noise_, x_, xt_, score_, dscore_, loss_;
  std::vector<Array<T>> chunk_grad_;
  std::unique_ptr<RecordedStep> recorded_;
  RecordingKey recorded_key_;
};

}  // namespace ncsn
