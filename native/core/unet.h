// The conditional U-Net of docs/workloads.md W2, over the image ops:
//   normact(h) = ELU(CondInstanceNorm++(h, i))
//   res_c(h)   = h + conv3x3(normact(conv3x3(normact(h))))
//   a = res_C(conv3x3(x, c_in → C))                                  H × W
//   b = res_2C(conv3x3_stride2(normact(a), C → 2C))                  H/2
//   c = res_2C(res_2C(conv3x3_stride2(normact(b), 2C → 2C)))         H/4
//   u = res_2C(conv3x3(normact(concat(up2(c), b)), 4C → 2C))         H/2
//   u = res_C(conv3x3(normact(concat(up2(u), a)), 3C → C))           H
//   s = conv3x3(normact(u), C → c_in)
// Its output is the score itself: the network is conditioned on the level through the norms.
//
// The network is recorded once as a tape of nodes over numbered buffers; forward runs the tape, and
// backward runs it in reverse. A concatenation costs nothing: `b` and `a` are written by their
// blocks straight into channel slices of the tensors that concatenate them, beside up2's output.
// normact is one op (ELU fused into the norm), and a residual block's add is taken by its second
// convolution's epilogue: neither writes a tensor that the next op reads back only to change it.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "score_model.h"

namespace ncsn {

struct UNetShape {
  int64_t channels = 1;  // of the images, c_in
  int64_t height = 28, width = 28;
  int64_t base = 32;  // C
  int64_t levels = 10;
};

template <typename T>
class UNet final : public ScoreModel<T> {
 public:
  explicit UNet(const UNetShape& shape) : shape_(shape) {
    const UNetShape& s = shape_;
    if (s.channels < 1 || s.base < 1 || s.levels < 1 || s.height < 4 || s.width < 4)
      throw std::invalid_argument("unet: channels, base width and levels must be positive, images at least 4×4");
    if (s.height % 4 || s.width % 4) throw std::invalid_argument("unet: the image height and width must be divisible by 4");
    build();
  }

  int64_t data_dim() const override { return shape_.channels * shape_.height * shape_.width; }
  const std::vector<ParamTensor>& layout() const override { return layout_; }
  // W2 counts its convolutions: 214 MFLOP per 28×28 image at C = 32.
  double forward_flops() const override {
    double flops = 0;
    for (const Node& node : tape_)
      if (node.op == Op::conv) {
        const Buffer &in = buffers_[node.in], &out = buffers_[node.out];
        flops += 2.0 * static_cast<double>(out.c * in.c * 9 * out.h * out.w);
      }
    return flops;
  }

  // A 28×28 image at C = 32 takes 5.4 MB of scratch (its activations, their gradients and the
  // norms' statistics), 10.7 MB at C = 64: the backend sizes chunks of such rows.
  int64_t max_chunk_rows(const Device& dev) const override {
    return dev.chunk_rows_for(sizeof(T) * scratch_values_per_row());
  }
  double scratch_values_per_row() const override {
    double values = 0;
    for (const Buffer& b : buffers_)
      if (b.parent < 0 && b.role == Role::inner) values += 2.0 * static_cast<double>(b.c * b.h * b.w);
    for (int64_t c : stats_channels_) values += static_cast<double>(2 * c + 2);
    return values + static_cast<double>(largest_buffer_);
  }

  void reserve(Ops<T>& ops, int64_t rows) override {  // the sizes of scratch_values_per_row()
    if (!ops.image_ops()) throw std::invalid_argument("the unet has no kernels on " + ops.name());
    if (static_cast<int>(acts_.size()) == ops.workers() && !acts_.empty() && acts_[0].rows >= rows) return;
    acts_.clear();
    acts_.resize(ops.workers());
    for (Activations& a : acts_) {
      a.rows = rows;
      for (const Buffer& b : buffers_) {
        const bool owned = b.parent < 0 && b.role == Role::inner;
        a.value.emplace_back(owned ? Array<T>(ops, rows * b.c * b.h * b.w) : Array<T>());
        a.grad.emplace_back(owned ? Array<T>(ops, rows * b.c * b.h * b.w) : Array<T>());
      }
      for (int64_t c : stats_channels_) a.stats.emplace_back(ops, rows * (2 * c + 2));
      a.temp = Array<T>(ops, rows * largest_buffer_);
      a.touched.assign(buffers_.size(), false);
    }
  }

  void score(Ops<T>& ops, int worker, Mat<T> s, Mat<T> x, const int32_t* level, const T* params) override {
    Activations& a = acts_[worker];
    ImageOps<T>& im = *ops.image_ops();
    const int64_t n = x.rows;
    for (const Node& node : tape_) {
      const Tensor4<T> in = value(a, node.in, n, x.data, s.data), out = value(a, node.out, n, x.data, s.data);
      switch (node.op) {
        case Op::conv:
          im.conv3x3_forward(out, in, params + layout_[node.param].offset, params + layout_[node.param + 1].offset,
                             node.stride, node.add >= 0 ? value(a, node.add, n, x.data, s.data) : Tensor4<T>{});
          break;
        case Op::norm_act:
          im.cond_instance_norm_forward(out, in, params + layout_[node.param].offset, level, a.stats[node.stats].data(),
                                        true);
          break;
        case Op::upsample: im.upsample2_forward(out, in); break;
      }
    }
  }

  bool trainable() const override { return true; }
  // ds is left as it is.
  void backward(Ops<T>& ops, int worker, Mat<T> ds, Mat<T> x, const int32_t* level, const T* params,
                T* grads) override {
    Activations& a = acts_[worker];
    ImageOps<T>& im = *ops.image_ops();
    const int64_t n = x.rows;
    std::fill(a.touched.begin(), a.touched.end(), false);
    a.touched[output_] = true;
    auto val = [&](int id) { return value(a, id, n, x.data, nullptr); };
    for (auto it = tape_.rbegin(); it != tape_.rend(); ++it) {
      const Node& node = *it;
      const Tensor4<T> g = gradient(a, node.out, n, ds.data);
      switch (node.op) {
        case Op::conv: {
          if (node.add >= 0) give_copy(ops, a, node.add, n, g);  // the residual branch: first, as it was added last
          const T* w = params + layout_[node.param].offset;
          T *dw = grads + layout_[node.param].offset, *db = grads + layout_[node.param + 1].offset;
          if (node.in == input_) {
            im.conv3x3_backward(Tensor4<T>{}, dw, db, g, val(node.in), w, node.stride);
          } else {
            give(ops, a, node.in, n, [&](Tensor4<T> dx) { im.conv3x3_backward(dx, dw, db, g, val(node.in), w, node.stride); });
          }
          break;
        }
        case Op::norm_act: {
          const ParamTensor& e = layout_[node.param];
          give(ops, a, node.in, n, [&](Tensor4<T> dx) {
            im.cond_instance_norm_backward(dx, grads + e.offset, shape_.levels, g, val(node.in), params + e.offset, level,
                                           a.stats[node.stats].data(), val(node.out));
          });
          break;
        }
        case Op::upsample: give(ops, a, node.in, n, [&](Tensor4<T> dx) { im.upsample2_backward(dx, g); }); break;
      }
    }
  }

 private:
  enum class Op { conv, norm_act, upsample };
  enum class Role { inner, input, output };
  // A buffer of c × h × w per image; a view of channels [first, first + c) of `parent` when parent ≥ 0.
  struct Buffer {
    int64_t c, h, w;
    int parent = -1;
    int64_t first = 0;
    Role role = Role::inner;
  };
  struct Node {
    Op op;
    int in, out;
    size_t param = 0;  // conv: weight (bias follows); norm_act: embed
    int stride = 1;
    int stats = -1;
    int add = -1;  // conv: the residual branch added to its output, or −1
  };
  struct Activations {
    int64_t rows = 0;
    std::vector<Array<T>> value, grad;  // per buffer; empty for views, the input and the output
    std::vector<Array<T>> stats;        // per norm
    Array<T> temp;                      // a gradient on its way into one that already has a share
    std::vector<bool> touched;          // whether a buffer's gradient holds anything yet
  };

  Tensor4<T> view(const std::vector<Array<T>>& arrays, int id, int64_t n, T* input, T* output) const {
    const Buffer& b = buffers_[id];
    if (b.role == Role::input) return nchw(input, n, b.c, b.h, b.w);
    if (b.role == Role::output) return nchw(output, n, b.c, b.h, b.w);
    if (b.parent >= 0) return view(arrays, b.parent, n, input, output).channels(b.first, b.first + b.c);
    return nchw(arrays[id].data(), n, b.c, b.h, b.w);
  }
  Tensor4<T> value(Activations& a, int id, int64_t n, const T* x, T* s) const {
    return view(a.value, id, n, const_cast<T*>(x), s);
  }
  Tensor4<T> gradient(Activations& a, int id, int64_t n, const T* ds) const {
    return view(a.grad, id, n, nullptr, const_cast<T*>(ds));
  }

  // Hands buffer `id` its share of the gradient: write(dx) writes it, straight into the buffer's
  // gradient when nothing is there yet, else into a temporary that is then added.
  template <typename Write>
  void give(Ops<T>& ops, Activations& a, int id, int64_t n, Write write) const {
    const Tensor4<T> target = gradient(a, id, n, nullptr);
    if (!a.touched[id]) {
      write(target);
      for (size_t k = 0; k < buffers_.size(); ++k)
        if (static_cast<int>(k) == id || buffers_[k].parent == id) a.touched[k] = true;
      return;
    }
    const Buffer& b = buffers_[id];
    const Tensor4<T> temp = nchw(a.temp.data(), n, b.c, b.h, b.w);
    write(temp);
    ops.image_ops()->add_into(target, temp);
  }
  // Hands buffer `id` the gradient g unchanged (a residual connection's branch).
  void give_copy(Ops<T>& ops, Activations& a, int id, int64_t n, const Tensor4<T>& g) const {
    give(ops, a, id, n, [&](Tensor4<T> dx) {
      const int64_t image = g.c * g.plane();
      if (dx.batch_stride == image && g.batch_stride == image) {  // neither a slice: one copy (one launch on a GPU)
        ops.copy(dx.data, g.data, sizeof(T) * image * n);
        return;
      }
      for (int64_t b = 0; b < n; ++b) ops.copy(dx.channel(b, 0), g.channel(b, 0), sizeof(T) * image);
    });
  }

  int buffer(int64_t c, int64_t h, int64_t w) {
    buffers_.push_back({c, h, w});
    largest_buffer_ = std::max(largest_buffer_, c * h * w);
    return static_cast<int>(buffers_.size()) - 1;
  }
  int slice(int parent, int64_t first, int64_t c) {
    const Buffer& p = buffers_[parent];
    buffers_.push_back({c, p.h, p.w, parent, first});
    return static_cast<int>(buffers_.size()) - 1;
  }
  size_t add_param(const std::string& name, std::vector<int64_t> shape, ParamInit init, int64_t fan_in) {
    int64_t size = 1;
    for (int64_t d : shape) size *= d;
    const int64_t offset = layout_.empty() ? 0 : layout_.back().offset + layout_.back().size;
    layout_.push_back({name, std::move(shape), offset, size, init, fan_in});
    return layout_.size() - 1;
  }

  // conv3x3 from buffer `in` into `out` (a new buffer when out < 0), plus buffer `add` when add ≥ 0.
  int conv(const std::string& name, int in, int64_t co, int stride, int out = -1, int add = -1) {
    const Buffer b = buffers_[in];
    if (out < 0) out = buffer(co, (b.h - 1) / stride + 1, (b.w - 1) / stride + 1);
    const size_t w = add_param(name + ".weight", {co, b.c, 3, 3}, ParamInit::fan_in_uniform, b.c * 9);
    add_param(name + ".bias", {co}, ParamInit::fan_in_uniform, b.c * 9);
    tape_.push_back({Op::conv, in, out, w, stride, -1, add});
    return out;
  }
  int norm_act(const std::string& name, int in) {
    const Buffer b = buffers_[in];
    const int out = buffer(b.c, b.h, b.w);
    const size_t e = add_param(name + ".embed.weight", {shape_.levels, 3 * b.c}, ParamInit::norm_embed, 0);
    stats_channels_.push_back(b.c);
    tape_.push_back({Op::norm_act, in, out, e, 1, static_cast<int>(stats_channels_.size()) - 1});
    return out;
  }
  // res_c(h), its output written into `out` (a new buffer when out < 0).
  int residual(const std::string& name, int h, int out = -1) {
    const int64_t c = buffers_[h].c;
    const int t = conv(name + ".conv1", norm_act(name + ".norm1", h), c, 1);
    return conv(name + ".conv2", norm_act(name + ".norm2", t), c, 1, out, h);
  }

  // One statement per step, so that the parameters are laid out in this order whatever order a
  // compiler evaluates arguments in.
  void build() {
    const int64_t C = shape_.base, H = shape_.height, W = shape_.width, cin = shape_.channels;
    input_ = buffer(cin, H, W);
    buffers_[input_].role = Role::input;
    output_ = buffer(cin, H, W);
    buffers_[output_].role = Role::output;
    const int cat_full = buffer(3 * C, H, W), cat_half = buffer(4 * C, H / 2, W / 2);
    const int a_in = conv("conv_in", input_, C, 1);
    const int a = residual("res1", a_in, slice(cat_full, 2 * C, C));
    const int b_in = conv("down1.conv", norm_act("down1.norm", a), 2 * C, 2);
    const int b = residual("res2", b_in, slice(cat_half, 2 * C, 2 * C));
    const int c_in = conv("down2.conv", norm_act("down2.norm", b), 2 * C, 2);
    const int c = residual("res4", residual("res3", c_in));
    tape_.push_back({Op::upsample, c, slice(cat_half, 0, 2 * C)});
    const int u_in = conv("up1.conv", norm_act("up1.norm", cat_half), 2 * C, 1);
    const int u = residual("res5", u_in);
    tape_.push_back({Op::upsample, u, slice(cat_full, 0, 2 * C)});
    const int v_in = conv("up2.conv", norm_act("up2.norm", cat_full), C, 1);
    const int v = residual("res6", v_in);
    conv("conv_out", norm_act("out.norm", v), cin, 1, output_);
  }

  UNetShape shape_;
  std::vector<ParamTensor> layout_;
  std::vector<Buffer> buffers_;
  std::vector<Node> tape_;
  std::vector<int64_t> stats_channels_;
  int64_t largest_buffer_ = 0;
  int input_ = -1, output_ = -1;
  std::vector<Activations> acts_;
};

}  // namespace ncsn
