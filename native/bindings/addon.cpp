// node-addon-api bindings: the Model class (training and sampling as promise-returning workers
// with progress callbacks and cancellation), tensor access for checkpoints, and the Philox stream
// for the TypeScript side's own draws. Every argument is checked here; a C++ exception becomes a
// JavaScript Error and never leaves the addon.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <thread>

#include "../model/model.h"
#include "../cpu/cpu_ops.h"
#include "../cpu/peak.h"
#ifdef NCSN_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

namespace {

using ncsn::Model;

#ifndef NCSN_VERSION
#define NCSN_VERSION "0.0.0"
#endif

Napi::Error type_error(Napi::Env env, const std::string& what) { return Napi::TypeError::New(env, what); }

// Every value of a config or a call is required: the defaults live in the TypeScript layer's schema
// (src/config.ts), so that no second set here can disagree with it.
Napi::Value required(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) throw type_error(o.Env(), std::string("'") + key + "' is required");
  return v;
}

double get_number(const Napi::Object& o, const char* key) {
  Napi::Value v = required(o, key);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw type_error(o.Env(), std::string("'") + key + "' must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t get_int(const Napi::Object& o, const char* key, int64_t min) {
  const double d = get_number(o, key);
  if (d != std::floor(d) || d < static_cast<double>(min) || d > 9.0e15)
    throw Napi::RangeError::New(o.Env(), std::string("'") + key + "' must be an integer ≥ " + std::to_string(min));
  return static_cast<int64_t>(d);
}

bool get_bool(const Napi::Object& o, const char* key) {
  Napi::Value v = required(o, key);
  if (!v.IsBoolean()) throw type_error(o.Env(), std::string("'") + key + "' must be true or false");
  return v.As<Napi::Boolean>().Value();
}

std::string get_string(const Napi::Object& o, const char* key) {
  Napi::Value v = required(o, key);
  if (!v.IsString()) throw type_error(o.Env(), std::string("'") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<double> get_doubles(const Napi::Object& o, const char* key) {
  Napi::Value v = required(o, key);
  if (!v.IsArray()) throw type_error(o.Env(), std::string("'") + key + "' must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw type_error(o.Env(), std::string("'") + key + "' must be an array of numbers");
    out.push_back(e.As<Napi::Number>().DoubleValue());
  }
  return out;
}

// A Float32Array's values, or none when the key is absent.
std::vector<float> get_floats(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw type_error(o.Env(), std::string("'") + key + "' must be a Float32Array");
  Napi::Float32Array f = v.As<Napi::Float32Array>();
  return std::vector<float>(f.Data(), f.Data() + f.ElementLength());
}

uint64_t get_seed(const Napi::Object& o, const char* key) { return static_cast<uint64_t>(get_int(o, key, 0)); }

// What makes the network: its kind, sizes and noise levels (the rest of a config is training and
// backend settings). Each kind needs its own sizes and no others.
ncsn::ModelConfig network_config(const Napi::Object& o) {
  ncsn::ModelConfig c;
  c.kind = get_string(o, "kind");
  if (c.kind != "mlp" && c.kind != "unet" && c.kind != "exact:mixture")
    throw Napi::RangeError::New(o.Env(), "'kind' must be 'mlp', 'unet' or 'exact:mixture'");
  c.shape.data_dim = get_int(o, "dataDim", 1);
  if (c.kind == "mlp") {
    c.shape.width = get_int(o, "width", 1);
    c.shape.depth = get_int(o, "depth", 1);
    const std::string first_layer = get_string(o, "firstLayer");
    if (first_layer != "softplus" && first_layer != "sin")
      throw Napi::RangeError::New(o.Env(), "'firstLayer' must be 'softplus' or 'sin'");
    c.shape.first_layer = first_layer == "sin" ? ncsn::FirstLayer::sin : ncsn::FirstLayer::softplus;
  }
  if (c.kind == "unet") {
    c.unet.channels = get_int(o, "imageChannels", 1);
    c.unet.height = get_int(o, "imageHeight", 1);
    c.unet.width = get_int(o, "imageWidth", 1);
    c.unet.base = get_int(o, "channels", 1);
  }
  c.sigmas = get_doubles(o, "sigmas");
  return c;
}

Napi::Float32Array to_js(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

Napi::Object progress_to_js(Napi::Env env, const ncsn::TrainProgress& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", Napi::Number::New(env, static_cast<double>(p.step)));
  o.Set("loss", Napi::Number::New(env, p.loss));
  o.Set("stepsPerSecond", Napi::Number::New(env, p.steps_per_s));
  Napi::Array levels = Napi::Array::New(env, p.level_loss.size());
  Napi::Array counts = Napi::Array::New(env, p.level_count.size());
  for (size_t i = 0; i < p.level_loss.size(); ++i) {
    levels.Set(i, std::isnan(p.level_loss[i]) ? env.Null() : Napi::Number::New(env, p.level_loss[i]));
    counts.Set(i, Napi::Number::New(env, static_cast<double>(p.level_count[i])));
  }
  o.Set("levelLoss", levels);
  o.Set("levelCount", counts);
  return o;
}

class ModelWrap;

// Both workers hold a reference to their model for as long as they run, so the garbage collector
// cannot free it under them, and clear the model's busy flag when they end.
template <typename Progress>
class ModelWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  ModelWorker(Napi::Env env, ModelWrap* owner, Napi::Object self, Napi::Function on_progress);
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void OnError(const Napi::Error& e) override;
  void finish();
  void report(const Napi::Value& v) {
    if (!on_progress_.IsEmpty()) on_progress_.Call({v});
  }

  ModelWrap* owner_;
  Napi::ObjectReference self_;
  Napi::FunctionReference on_progress_;
  Napi::Promise::Deferred deferred_;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Model",
                       {InstanceMethod<&ModelWrap::SetData>("setData"), InstanceMethod<&ModelWrap::Train>("train"),
                        InstanceMethod<&ModelWrap::Sample>("sample"), InstanceMethod<&ModelWrap::Cancel>("cancel"),
                        InstanceMethod<&ModelWrap::Tensors>("tensors"),
                        InstanceMethod<&ModelWrap::Score>("score"),
                        InstanceMethod<&ModelWrap::LoadTensors>("loadTensors"),
                        InstanceMethod<&ModelWrap::Dispose>("dispose"),
                        InstanceAccessor<&ModelWrap::Disposed>("disposed"),
                        InstanceAccessor<&ModelWrap::Step>("step"),
                        InstanceAccessor<&ModelWrap::ParamCount>("paramCount"),
                        InstanceAccessor<&ModelWrap::ForwardFlops>("forwardFlops"),
                        InstanceAccessor<&ModelWrap::Backend>("backend"),
                        InstanceAccessor<&ModelWrap::Notice>("notice"),
                        InstanceAccessor<&ModelWrap::Threads>("threads"),
                        InstanceAccessor<&ModelWrap::GraphReplays>("graphReplays")});
  }

  ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw type_error(env, "Model(config): config must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    ncsn::ModelConfig c = network_config(o);
    c.seed = get_seed(o, "seed");
    c.adam.lr = get_number(o, "lr");
    c.adam.beta1 = get_number(o, "beta1");
    c.adam.beta2 = get_number(o, "beta2");
    c.adam.eps = get_number(o, "eps");
    c.ema_decay = get_number(o, "emaDecay");
    if (!(c.adam.lr > 0) || !(c.adam.beta1 >= 0 && c.adam.beta1 < 1) || !(c.adam.beta2 >= 0 && c.adam.beta2 < 1) ||
        !(c.adam.eps > 0) || !(c.ema_decay >= 0 && c.ema_decay < 1))
      throw Napi::RangeError::New(env, "Adam needs lr > 0, betas and the EMA decay in [0, 1), eps > 0");
    c.device = get_string(o, "device");
    c.threads = static_cast<int>(get_int(o, "threads", 0));
    const std::string precision = get_string(o, "precision");
    if (precision != "fp32" && precision != "tf32" && precision != "bf16")
      throw Napi::RangeError::New(env, "'precision' must be 'fp32', 'tf32' or 'bf16'");
    c.precision = precision == "tf32" ? ncsn::Precision::tf32 : precision == "bf16" ? ncsn::Precision::bf16 : ncsn::Precision::fp32;
    c.fused = get_bool(o, "fused");
    c.graphs = get_bool(o, "graphs");
    c.dequantize = get_bool(o, "dequantize");
    if (c.kind == "exact:mixture") {
      c.mixture_means = get_doubles(o, "mixtureMeans");
      c.mixture_weights = get_doubles(o, "mixtureWeights");
      c.mixture_var = get_number(o, "mixtureVariance");
    }
    try {
      model_ = std::make_unique<Model>(c);
    } catch (const std::bad_alloc&) {
      const std::string network =
          c.kind == "unet" ? "U-Net of base width " + std::to_string(c.unet.base) + " on " + std::to_string(c.unet.channels) +
                                 "×" + std::to_string(c.unet.height) + "×" + std::to_string(c.unet.width) + " images"
                           : "width " + std::to_string(c.shape.width) + ", depth " + std::to_string(c.shape.depth) +
                                 ", data dimension " + std::to_string(c.shape.data_dim);
      throw Napi::Error::New(env, "out of memory creating the model (" + network + ", " + std::to_string(c.sigmas.size()) +
                                      " noise levels)");
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Model& model() { return *model_; }
  std::atomic<bool>& cancel_flag() { return cancel_; }
  void set_busy(bool busy) {
    busy_ = busy;
    if (!busy && dispose_pending_) model_.reset();
  }

 private:
  // The model, unless dispose() has freed it (or will, when the running call ends).
  Model& live(Napi::Env env) {
    if (!model_ || dispose_pending_) throw Napi::Error::New(env, "the model has been disposed");
    return *model_;
  }
  void claim(Napi::Env env) {
    live(env);
    if (busy_) throw Napi::Error::New(env, "the model is busy: one training or sampling call runs at a time");
  }

  // Frees the weights, buffers and threads now; during a train or sample call, cancels it and
  // frees them when it ends. Calling it again does nothing.
  void Dispose(const Napi::CallbackInfo&) {
    if (!model_) return;
    if (busy_) {
      dispose_pending_ = true;
      cancel_ = true;
    } else {
      model_.reset();
    }
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !model_ || dispose_pending_);
  }

  void SetData(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw type_error(env, "setData(data, rows, cols): data must be a Float32Array");
    if (!info[1].IsNumber() || !info[2].IsNumber()) throw type_error(env, "setData: rows and cols must be numbers");
    Napi::Float32Array a = info[0].As<Napi::Float32Array>();
    const int64_t rows = info[1].As<Napi::Number>().Int64Value(), cols = info[2].As<Napi::Number>().Int64Value();
    if (rows < 1 || cols < 1 || static_cast<size_t>(rows * cols) != a.ElementLength())
      throw Napi::RangeError::New(env, "setData: data must hold rows × cols values");
    try {
      live(env).set_data(a.Data(), rows, cols);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value Train(const Napi::CallbackInfo& info);
  Napi::Value Sample(const Napi::CallbackInfo& info);

  void Cancel(const Napi::CallbackInfo&) { cancel_ = true; }

  // score(points, level, useEma): s(x, σ_level) at the points, synchronously (for small grids).
  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !info[1].IsNumber())
      throw type_error(env, "score(points, level, useEma?): points must be a Float32Array and level a number");
    Napi::Float32Array x = info[0].As<Napi::Float32Array>();
    const int64_t d = live(env).config().shape.data_dim;
    if (x.ElementLength() == 0 || x.ElementLength() % static_cast<size_t>(d) != 0)
      throw Napi::RangeError::New(env, "score: points must hold n × " + std::to_string(d) + " values");
    const bool ema = info.Length() < 3 || info[2].IsUndefined() ? true : info[2].ToBoolean().Value();
    try {
      return to_js(env, live(env).score(x.Data(), static_cast<int64_t>(x.ElementLength()) / d,
                                        info[1].As<Napi::Number>().Int32Value(), ema));
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, "out of memory scoring " + std::to_string(x.ElementLength() / d) + " points");
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env);
    const auto tensors = live(env).tensors();
    Napi::Array out = Napi::Array::New(env, tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("name", tensors[i].name);
      Napi::Array shape = Napi::Array::New(env, tensors[i].shape.size());
      for (size_t j = 0; j < tensors[i].shape.size(); ++j)
        shape.Set(j, Napi::Number::New(env, static_cast<double>(tensors[i].shape[j])));
      t.Set("shape", shape);
      t.Set("data", to_js(env, tensors[i].data));
      out.Set(i, t);
    }
    return out;
  }

  void LoadTensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env);
    if (!info[0].IsArray() || !info[1].IsNumber())
      throw type_error(env, "loadTensors(tensors, step): an array of {name, shape, data} and a step");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<ncsn::NamedTensor> tensors;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsObject()) throw type_error(env, "loadTensors: each tensor must be an object");
      Napi::Object t = a.Get(i).As<Napi::Object>();
      ncsn::NamedTensor nt;
      nt.name = get_string(t, "name");
      for (double d : get_doubles(t, "shape")) nt.shape.push_back(static_cast<int64_t>(d));
      Napi::Value data = t.Get("data");
      if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw type_error(env, "loadTensors: tensor '" + nt.name + "' data must be a Float32Array");
      Napi::Float32Array f = data.As<Napi::Float32Array>();
      nt.data.assign(f.Data(), f.Data() + f.ElementLength());
      int64_t expected = 1;
      for (int64_t d : nt.shape) expected *= d;
      if (expected != static_cast<int64_t>(nt.data.size()))
        throw Napi::RangeError::New(env, "loadTensors: tensor '" + nt.name + "' has data that does not fit its shape");
      tensors.push_back(std::move(nt));
    }
    const double step = info[1].As<Napi::Number>().DoubleValue();
    if (step < 0 || step != std::floor(step)) throw Napi::RangeError::New(env, "loadTensors: step must be an integer ≥ 0");
    try {
      live(env).load_tensors(tensors, static_cast<int64_t>(step));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).step()));
  }
  Napi::Value ParamCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).param_count()));
  }
  Napi::Value ForwardFlops(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), live(info.Env()).forward_flops());
  }
  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), live(info.Env()).backend_name()); }
  // Why `auto` chose the CPU, or null.
  Napi::Value Notice(const Napi::CallbackInfo& info) {
    const std::string& n = live(info.Env()).backend_notice();
    return n.empty() ? info.Env().Null() : Napi::String::New(info.Env(), n);
  }
  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env()).threads()); }
  Napi::Value GraphReplays(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).graph_replays()));
  }

  std::unique_ptr<Model> model_;
  std::atomic<bool> cancel_{false};
  bool busy_ = false;
  bool dispose_pending_ = false;
};

template <typename Progress>
ModelWorker<Progress>::ModelWorker(Napi::Env env, ModelWrap* owner, Napi::Object self, Napi::Function on_progress)
    : Napi::AsyncProgressQueueWorker<Progress>(env), owner_(owner), deferred_(Napi::Promise::Deferred::New(env)) {
  self_ = Napi::Persistent(self);
  if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
  owner_->set_busy(true);
  owner_->cancel_flag() = false;
}

template <typename Progress>
void ModelWorker<Progress>::finish() {
  owner_->set_busy(false);
}

template <typename Progress>
void ModelWorker<Progress>::OnError(const Napi::Error& e) {
  finish();
  deferred_.Reject(e.Value());
}

class TrainWorker : public ModelWorker<ncsn::TrainProgress> {
 public:
  TrainWorker(Napi::Env env, ModelWrap* owner, Napi::Object self, Napi::Function cb, int64_t steps, int64_t batch,
              int64_t every)
      : ModelWorker(env, owner, self, cb), steps_(steps), batch_(batch), every_(every) {}

  void Execute(const ExecutionProgress& progress) override {
    try {
      done_ = owner_->model().train(steps_, batch_, every_, [&](const ncsn::TrainProgress& p) {
        progress.Send(&p, 1);
        return !owner_->cancel_flag().load();
      }, &owner_->cancel_flag());
    } catch (const std::bad_alloc&) {
      SetError("out of memory training with a batch of " + std::to_string(batch_) + " points of dimension " +
               std::to_string(owner_->model().config().shape.data_dim));
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnProgress(const ncsn::TrainProgress* p, size_t n) override {
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < n; ++i) report(progress_to_js(Env(), p[i]));
  }
  void OnOK() override {
    Napi::Object r = Napi::Object::New(Env());
    r.Set("steps", Napi::Number::New(Env(), static_cast<double>(done_)));
    r.Set("step", Napi::Number::New(Env(), static_cast<double>(owner_->model().step())));
    r.Set("cancelled", Napi::Boolean::New(Env(), done_ < steps_));
    finish();
    deferred_.Resolve(r);
  }

 private:
  int64_t steps_, batch_, every_, done_ = 0;
};

class SampleWorker : public ModelWorker<ncsn::SampleProgress> {
 public:
  // init: starting points; known and mask: an inpainting's image and mask (each empty when unused)
  SampleWorker(Napi::Env env, ModelWrap* owner, Napi::Object self, Napi::Function cb, ncsn::SampleRequest req,
               std::vector<float> init, std::vector<float> known, std::vector<float> mask)
      : ModelWorker(env, owner, self, cb),
        req_(std::move(req)),
        init_(std::move(init)),
        known_(std::move(known)),
        mask_(std::move(mask)) {
    if (!init_.empty()) req_.init = &init_;
    if (!known_.empty()) req_.known = &known_;
    if (!mask_.empty()) req_.mask = &mask_;
    req_.cancel = &owner_->cancel_flag();
  }

  void Execute(const ExecutionProgress& progress) override {
    try {
      finished_ = owner_->model().sample(req_, out_, [&](const ncsn::SampleProgress& p) {
        progress.Send(&p, 1);
        return !owner_->cancel_flag().load();
      });
    } catch (const std::bad_alloc&) {
      SetError("out of memory sampling " + std::to_string(req_.n) + " points of dimension " +
               std::to_string(owner_->model().config().shape.data_dim));
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnProgress(const ncsn::SampleProgress* p, size_t n) override {
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < n; ++i) {
      Napi::Object o = Napi::Object::New(Env());
      o.Set("level", Napi::Number::New(Env(), static_cast<double>(p[i].position.level)));
      o.Set("step", Napi::Number::New(Env(), static_cast<double>(p[i].position.step)));
      if (!p[i].frame.empty()) o.Set("frame", to_js(Env(), p[i].frame));
      report(o);
    }
  }
  void OnOK() override {
    finish();
    Napi::Object r = Napi::Object::New(Env());
    r.Set("samples", to_js(Env(), out_));
    r.Set("cancelled", Napi::Boolean::New(Env(), !finished_));
    deferred_.Resolve(r);
  }

 private:
  ncsn::SampleRequest req_;
  std::vector<float> init_, known_, mask_, out_;
  bool finished_ = false;
};

Napi::Function optional_callback(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && info[i].IsFunction()) return info[i].As<Napi::Function>();
  if (info.Length() > i && !info[i].IsUndefined() && !info[i].IsNull())
    throw type_error(info.Env(), "the progress callback must be a function");
  return Napi::Function();
}

Napi::Value ModelWrap::Train(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  claim(env);
  if (!info[0].IsObject()) throw type_error(env, "train(options, onProgress?): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  const int64_t steps = get_int(o, "steps", 0);
  const int64_t batch = get_int(o, "batchSize", 1);
  const int64_t every = get_int(o, "reportEvery", 1);
  auto* w = new TrainWorker(env, this, info.This().As<Napi::Object>(), optional_callback(info, 1), steps, batch, every);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value ModelWrap::Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  claim(env);
  if (!info[0].IsObject()) throw type_error(env, "sample(options, onProgress?): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  ncsn::SampleRequest req;
  req.n = get_int(o, "n", 1);
  ncsn::SamplerSettings& sampler = req.sampler;
  const std::string kind = get_string(o, "sampler");
  if (kind != "ald" && kind != "pc") throw Napi::RangeError::New(env, "'sampler' must be 'ald' or 'pc'");
  sampler.kind = kind == "pc" ? ncsn::SamplerKind::pc : ncsn::SamplerKind::ald;
  sampler.steps_per_level = get_int(o, "stepsPerLevel", 1);
  sampler.step_lr = get_number(o, "stepLr");
  if (!(sampler.step_lr > 0)) throw Napi::RangeError::New(env, "'stepLr' must be positive");
  sampler.snr = get_number(o, "snr");
  if (!(sampler.snr > 0)) throw Napi::RangeError::New(env, "'snr' must be positive");
  sampler.denoise = get_bool(o, "denoise");
  sampler.seed = get_seed(o, "seed");
  sampler.report_every = get_int(o, "frameEvery", 0);
  req.frames = sampler.report_every > 0;
  req.init_low = get_number(o, "initLow");
  req.init_high = get_number(o, "initHigh");
  if (!(req.init_low < req.init_high)) throw Napi::RangeError::New(env, "'initLow' must be below 'initHigh'");
  sampler.fused = get_bool(o, "fused");
  req.use_ema = get_bool(o, "useEma");
  auto* w = new SampleWorker(env, this, info.This().As<Napi::Object>(), optional_callback(info, 1), req,
                             get_floats(o, "init"), get_floats(o, "inpaintImage"), get_floats(o, "inpaintMask"));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Element offset .. offset+n of a Philox stream (normals, or uniforms in (0, 1)).
Napi::Value RandomDraw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw type_error(env, "random({kind, seed, n, stream, offset})");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string kind = get_string(o, "kind");
  const uint64_t seed = get_seed(o, "seed");
  const int64_t n = get_int(o, "n", 0);
  const uint64_t stream = static_cast<uint64_t>(get_int(o, "stream", 0));
  const uint64_t offset = static_cast<uint64_t>(get_int(o, "offset", 0));
  if (n > (int64_t(1) << 31)) throw Napi::RangeError::New(env, "random: n is too large");
  ncsn::CpuOps<float> ops(1);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(n));
  const ncsn::RngStream s{seed, ncsn::RngPurpose::user, stream};
  ncsn::Mat<float> m{out.Data(), 1, n};
  if (kind == "normal") ops.random_normal(m, s, offset);
  else if (kind == "uniform") ops.random_uniform(m, 0.0f, 1.0f, s, offset);
  else throw Napi::RangeError::New(env, "random: kind must be 'normal' or 'uniform'");
  return out;
}

// The parameter tensors a config makes, [{name, shape}], with its sizes checked, without making it.
Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw type_error(env, "layout(config): config must be an object");
  std::vector<ncsn::ParamTensor> layout;
  try {
    layout = ncsn::layout_of(network_config(info[0].As<Napi::Object>()));
  } catch (const std::invalid_argument& e) {
    throw Napi::RangeError::New(env, e.what());
  }
  Napi::Array out = Napi::Array::New(env, layout.size());
  for (size_t t = 0; t < layout.size(); ++t) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", layout[t].name);
    Napi::Array shape = Napi::Array::New(env, layout[t].shape.size());
    for (size_t d = 0; d < layout[t].shape.size(); ++d)
      shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(layout[t].shape[d])));
    entry.Set("shape", shape);
    out.Set(static_cast<uint32_t>(t), entry);
  }
  return out;
}

// The CPU's measured FP32 FMA rate in GFLOP/s on `threads` threads (about 0.2 s).
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw type_error(env, "fmaPeak(threads)");
  const int threads = info[0].As<Napi::Number>().Int32Value();
  if (threads < 1 || threads > 4096) throw Napi::RangeError::New(env, "fmaPeak: threads must be 1 to 4096");
  return Napi::Number::New(env, ncsn::fma_peak_gflops(threads));
}

// Raw Philox4x32-10 words, for the known-answer tests.
Napi::Value Philox(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) throw type_error(env, "philox(counter[4], key[2])");
  auto words = [&](Napi::Array a, uint32_t n) {
    if (a.Length() != n) throw type_error(env, "philox(counter[4], key[2])");
    std::vector<uint32_t> w;
    for (uint32_t i = 0; i < n; ++i) w.push_back(a.Get(i).As<Napi::Number>().Uint32Value());
    return w;
  };
  const auto c = words(info[0].As<Napi::Array>(), 4), k = words(info[1].As<Napi::Array>(), 2);
  const ncsn::Philox4 r = ncsn::philox4x32_10(ncsn::Philox4{{c[0], c[1], c[2], c[3]}}, k[0], k[1]);
  Napi::Array out = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) out.Set(i, Napi::Number::New(env, r.v[i]));
  return out;
}

// The first call probes the GPUs (loading the addon does not touch CUDA).
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", NCSN_VERSION);
  Napi::Array backends = Napi::Array::New(env);
  backends.Set(0u, "cpu");
  o.Set("threads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
  Napi::Array devices = Napi::Array::New(env);
  Napi::Object cuda = Napi::Object::New(env);
#ifdef NCSN_WITH_CUDA
  backends.Set(1u, "cuda");
  const ncsn::GpuProbe& p = ncsn::probe_gpus();
  cuda.Set("driverVersion", Napi::Number::New(env, p.driver_version));
  cuda.Set("runtimeVersion", Napi::Number::New(env, p.runtime_version));
  cuda.Set("architectures", p.compiled_archs);
  cuda.Set("problem", p.problem.empty() ? env.Null() : Napi::String::New(env, p.problem));
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const ncsn::GpuInfo& g = p.devices[i];
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", Napi::Number::New(env, g.index));
    d.Set("name", g.name);
    d.Set("computeCapability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor));
    d.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(g.memory_bytes)));
    d.Set("multiprocessors", Napi::Number::New(env, g.multiprocessors));
    d.Set("usable", Napi::Boolean::New(env, g.usable));
    d.Set("problem", g.problem.empty() ? env.Null() : Napi::String::New(env, g.problem));
    devices.Set(static_cast<uint32_t>(i), d);
  }
#else
  cuda.Set("problem", "this build has no CUDA backend (" NCSN_NO_CUDA_REASON ")");
#endif
  o.Set("backends", backends);
  o.Set("cuda", cuda);
  o.Set("devices", devices);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Model", ModelWrap::Init(env));
  exports.Set("random", Napi::Function::New(env, RandomDraw));
  exports.Set("philox", Napi::Function::New(env, Philox));
  exports.Set("layout", Napi::Function::New(env, Layout));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak));
  exports.Set("info", Napi::Function::New(env, Info));
  return exports;
}

}  // namespace

NODE_API_MODULE(ncsn, Init)
