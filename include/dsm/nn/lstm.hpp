// dsm/nn/lstm.hpp: LSTM layers (stacked, bidirectional, variable lengths) and the LSTM cell.
//
//   dsm::nn::LSTM<{.input_size = 100, .hidden_size = 128, .bidirectional = true}> lstm;
//   auto r = lstm(x, lengths);      // x [B, T, 100], lengths[b] <= T (empty: all full)
//   r.output                        // [B, T, 256]; zero at padded steps
//   r.h_n, r.c_n                    // [num_layers * 2, B, 128], states after each sequence's end
//
// Parameters and their names are torch.nn.LSTM's (weight_ih_l0, weight_hh_l0, bias_ih_l0,
// bias_hh_l0, then ..._reverse, then l1...), gate order i, f, g, o, so a PyTorch state dict loads
// as it is; initialized as PyTorch does, U(+-1/sqrt(hidden_size)). Each layer is one autograd
// node (functional/lstm.hpp); dropout, when set, applies to the outputs of every layer but the
// last, in train() only.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "functional/activation.hpp"
#include "functional/lstm.hpp"
#include "init.hpp"
#include "module.hpp"

namespace dsm::nn {

struct LSTMConfig {
  std::int64_t input_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 1;
  bool bidirectional = false;
  bool batch_first = true;  ///< [B, T, features] (else [T, B, features]), as the input and output
  bool bias = true;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

/// Example: LSTMOptions o; o.dropout = 0.3; o.dropout_seed = 7;
struct LSTMOptions {
  double dropout = 0.0;            ///< between layers (needs num_layers > 1 to have an effect)
  std::uint64_t dropout_seed = 0;  ///< seeds the dropout masks
  Generator* generator = nullptr;  ///< initialization; the default generator when null
};

/// Initial states for every layer and direction: h and c [num_layers * D, B, H].
template <class T = float, class B = cpu>
struct LSTMState {
  Var<T, B> h;
  Var<T, B> c;
};

template <class T = float, class B = cpu>
struct LSTMOutput {
  Var<T, B> output;  ///< [B, T, D*H] (or [T, B, D*H])
  Var<T, B> h_n;     ///< [num_layers * D, B, H]
  Var<T, B> c_n;
};

namespace detail {
inline const char* lstm_problem(const LSTMConfig& c) {
  if (c.input_size <= 0 || c.hidden_size <= 0) return "input_size and hidden_size must be positive";
  if (c.num_layers <= 0) return "num_layers must be positive";
  return nullptr;
}
}  // namespace detail

template <LSTMConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class LSTM : public Module, public ConfigHolder<LSTMConfig, C> {
  using Holder = ConfigHolder<LSTMConfig, C>;
  static_assert(Holder::is_dynamic || C.input_size > 0, "LSTM: input_size must be positive");
  static_assert(Holder::is_dynamic || C.hidden_size > 0, "LSTM: hidden_size must be positive");
  static_assert(Holder::is_dynamic || C.num_layers > 0, "LSTM: num_layers must be positive");

 public:
  using Options = LSTMOptions;
  using Direction = functional::LSTMDirection<T, B>;

  explicit LSTM(Options o = {}) requires(!Holder::is_dynamic) : dropout_(o.dropout_seed) { init(o); }
  explicit LSTM(const LSTMConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(c), dropout_(o.dropout_seed) { init(o); }
  using Holder::config;

  std::int64_t num_directions() const { return config().bidirectional ? 2 : 1; }
  /// The weights of layer l, direction d (1 = reverse).
  const Direction& weights(std::int64_t layer, std::int64_t direction) const {
    return directions_[static_cast<std::size_t>(layer * num_directions() + direction)];
  }

  /// The directions of layer l (forward, then reverse).
  std::span<const Direction> layer(std::int64_t l) const {
    return {directions_.data() + l * num_directions(), static_cast<std::size_t>(num_directions())};
  }

  /// x [B, T, input_size] (batch_first) or [T, B, input_size]; lengths per sequence (empty: all
  /// T); state: initial h and c, or zeros when undefined.
  LSTMOutput<T, B> operator()(const Var<T, B>& x, std::span<const std::int64_t> lengths = {}, const LSTMState<T, B>& state = {}) {
    const auto& c = config();
    if (x.rank() != 3 || x.size(2) != c.input_size)
      fail<shape_error>("LSTM", "input of shape ", x.shape(), " must be ", c.batch_first ? "[batch, time, " : "[time, batch, ", c.input_size, "]");
    return run_layers(c.batch_first ? x.size(0) : x.size(1), lengths, state, [&](const Var<T, B>& h0, const Var<T, B>& c0) {
      return functional::lstm_layer(x, layer(0), {.batch_first = c.batch_first}, lengths, h0, c0);
    });
  }

  /// Inference from token ids when layer 0's input projection of each token is known: table
  /// [V, D*4H] as an EmbeddingProjectionCache gives it, ids [B, T] (or [T, B]); see
  /// functional::lstm_layer_lookup. The other layers run as in operator(). Records no graph.
  LSTMOutput<T, B> from_projections(const Tensor<T, B>& table, const Tensor<std::int64_t, B>& ids, std::span<const std::int64_t> lengths = {},
                                    const LSTMState<T, B>& state = {}) {
    const auto& c = config();
    if (ids.rank() != 2) fail<shape_error>("LSTM", "ids of shape ", ids.shape(), " must be ", c.batch_first ? "[batch, time]" : "[time, batch]");
    no_grad guard;
    return run_layers(c.batch_first ? ids.size(0) : ids.size(1), lengths, state, [&](const Var<T, B>& h0, const Var<T, B>& c0) {
      auto value = [](const Var<T, B>& s) { return s.defined() ? s.value() : Tensor<T, B>(); };
      return functional::lstm_layer_lookup(table, ids, layer(0), {.batch_first = c.batch_first}, lengths, value(h0), value(c0));
    });
  }

  /// The dropout masks' generator (saved and restored to recompute a step identically).
  Generator& dropout_generator() { return dropout_; }

  void visit(Members& m) override {
    for (std::int64_t l = 0; l < config().num_layers; ++l)
      for (std::int64_t d = 0; d < num_directions(); ++d) {
        auto& w = directions_[static_cast<std::size_t>(l * num_directions() + d)];
        const std::string suffix = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
        m.parameter("weight_ih" + suffix, w.w_ih);
        m.parameter("weight_hh" + suffix, w.w_hh);
        m.parameter("bias_ih" + suffix, w.b_ih);
        m.parameter("bias_hh" + suffix, w.b_hh);
      }
  }

 private:
  void init(Options o) {
    const auto& c = config();
    if constexpr (Holder::is_dynamic)
      if (const char* p = detail::lstm_problem(c)) fail<config_error>("LSTM", p);
    if (!(o.dropout >= 0 && o.dropout < 1)) fail<config_error>("LSTM", "dropout must be in [0, 1), got ", o.dropout);
    options_ = o;
    Generator& gen = o.generator ? *o.generator : default_generator();
    const double bound = 1.0 / std::sqrt(static_cast<double>(c.hidden_size));
    auto make = [&](Shape s) {
      Var<T, B> v(Tensor<T, B>(s), true);
      init::uniform_(v.value(), -bound, bound, gen);
      return v;
    };
    const std::int64_t h4 = 4 * c.hidden_size;
    for (std::int64_t l = 0; l < c.num_layers; ++l)
      for (std::int64_t d = 0; d < num_directions(); ++d) {
        const std::int64_t in = l == 0 ? c.input_size : c.hidden_size * num_directions();
        Direction w{make({h4, in}), make({h4, c.hidden_size}), {}, {}};
        if (c.bias) {
          w.b_ih = make({h4});
          w.b_hh = make({h4});
        }
        directions_.push_back(std::move(w));
      }
  }

  // Layer 0 through first_layer(h0, c0), then the others over its output.
  template <class FirstLayer>
  LSTMOutput<T, B> run_layers(std::int64_t nb, std::span<const std::int64_t> lengths, const LSTMState<T, B>& state, FirstLayer&& first_layer) {
    const auto& c = config();
    const std::int64_t nd = num_directions();
    for (const auto* s : {&state.h, &state.c})
      if (s->defined() && s->shape() != Shape{c.num_layers * nd, nb, c.hidden_size})
        fail<shape_error>("LSTM", "initial state of shape ", s->shape(), " must be [", c.num_layers * nd, ", ", nb, ", ", c.hidden_size, "]");
    auto slice = [&](const Var<T, B>& s, std::int64_t l) { return s.defined() ? s.narrow(0, l * nd, nd) : Var<T, B>(); };
    functional::LSTMLayerResult<T, B> r = first_layer(slice(state.h, 0), slice(state.c, 0));
    std::vector<Var<T, B>> h_n{r.h_n}, c_n{r.c_n};
    for (std::int64_t l = 1; l < c.num_layers; ++l) {
      const Var<T, B> in = options_.dropout > 0 ? functional::dropout(r.output, options_.dropout, is_training(), dropout_) : r.output;
      r = functional::lstm_layer(in, layer(l), {.batch_first = c.batch_first}, lengths, slice(state.h, l), slice(state.c, l));
      h_n.push_back(r.h_n);
      c_n.push_back(r.c_n);
    }
    return {r.output, cat(h_n, 0), cat(c_n, 0)};
  }

  Options options_;
  Generator dropout_;
  std::vector<Direction> directions_;  // layer-major, forward before reverse
};

/// One LSTM step from explicit state, written with elementwise autograd ops (for custom loops
/// and decoding; the LSTM layer runs the fused kernel). Same parameters and names as
/// torch.nn.LSTMCell.
template <FloatingScalar T = float, class B = cpu>
class LSTMCell : public Module {
 public:
  Var<T, B> weight_ih;  // [4H, I]
  Var<T, B> weight_hh;  // [4H, H]
  Var<T, B> bias_ih;    // [4H]
  Var<T, B> bias_hh;    // [4H]

  LSTMCell(std::int64_t input_size, std::int64_t hidden_size, bool bias = true, Generator& gen = default_generator()) {
    if (input_size <= 0 || hidden_size <= 0)
      fail<config_error>("LSTMCell", "input_size and hidden_size must be positive, got ", input_size, " and ", hidden_size);
    const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
    auto make = [&](Shape s) {
      Var<T, B> v(Tensor<T, B>(s), true);
      init::uniform_(v.value(), -bound, bound, gen);
      return v;
    };
    weight_ih = make({4 * hidden_size, input_size});
    weight_hh = make({4 * hidden_size, hidden_size});
    if (bias) {
      bias_ih = make({4 * hidden_size});
      bias_hh = make({4 * hidden_size});
    }
  }
  std::int64_t hidden_size() const { return weight_hh.size(1); }

  /// x [B, I], state (h, c) [B, H] each -> the next (h, c).
  std::pair<Var<T, B>, Var<T, B>> operator()(const Var<T, B>& x, const Var<T, B>& h, const Var<T, B>& c) const {
    const std::int64_t hs = hidden_size();
    if (x.rank() != 2 || x.size(1) != weight_ih.size(1)) fail<shape_error>("LSTMCell", "input of shape ", x.shape(), " must be [batch, ", weight_ih.size(1), "]");
    if (h.shape() != Shape{x.size(0), hs} || c.shape() != Shape{x.size(0), hs})
      fail<shape_error>("LSTMCell", "state of shapes ", h.shape(), " and ", c.shape(), " must be [", x.size(0), ", ", hs, "]");
    const Var<T, B> gates = linear(x, weight_ih, bias_ih) + linear(h, weight_hh, bias_hh);  // [B, 4H]
    const auto g = chunk(gates, 4, 1);
    const Var<T, B> c_next = sigmoid(g[1]) * c + sigmoid(g[0]) * tanh(g[2]);
    const Var<T, B> h_next = sigmoid(g[3]) * tanh(c_next);
    return {h_next, c_next};
  }
  void visit(Members& m) override {
    m.parameter("weight_ih", weight_ih);
    m.parameter("weight_hh", weight_hh);
    m.parameter("bias_ih", bias_ih);
    m.parameter("bias_hh", bias_hh);
  }
};

}  // namespace dsm::nn
