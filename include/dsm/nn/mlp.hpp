// dsm/nn/mlp.hpp: the feed-forward block: fc2(activation(fc1(x))), with SwiGLU as the gated form
// used by LLaMA/DeepSeek FFNs (fc1 then produces the gate and the value, 2 x hidden wide).
//
//   dsm::nn::MLP<{.in_features = 256, .hidden = 512, .out_features = 256,
//                 .activation = dsm::nn::Activation::swiglu, .bias = false}> ffn;
#pragma once

#include "activation.hpp"
#include "linear.hpp"

namespace dsm::nn {

struct MLPConfig {
  std::int64_t in_features = 0;
  std::int64_t hidden = 0;
  std::int64_t out_features = 0;
  Activation activation = Activation::gelu;
  bool bias = true;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

namespace detail {
constexpr LinearConfig mlp_fc1(const MLPConfig& c) {
  LinearConfig l;
  l.dynamic_form = c.dynamic_form;
  l.in_features = c.in_features;
  l.out_features = c.activation == Activation::swiglu ? 2 * c.hidden : c.hidden;
  l.bias = c.bias;
  return l;
}
constexpr LinearConfig mlp_fc2(const MLPConfig& c) {
  LinearConfig l;
  l.dynamic_form = c.dynamic_form;
  l.in_features = c.hidden;
  l.out_features = c.out_features;
  l.bias = c.bias;
  return l;
}

template <MLPConfig C, class T, class B>
struct MlpLinears {  // the dynamic form maps to Linear<dynamic> through dynamic_form
  using Fc1 = Linear<mlp_fc1(C), T, B>;
  using Fc2 = Linear<mlp_fc2(C), T, B>;
};
}  // namespace detail

template <MLPConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class MLP : public Module, public ConfigHolder<MLPConfig, C> {
  using Holder = ConfigHolder<MLPConfig, C>;
  using Fc1 = typename detail::MlpLinears<C, T, B>::Fc1;
  using Fc2 = typename detail::MlpLinears<C, T, B>::Fc2;

 public:
  using Options = typename Fc1::Options;
  Fc1 fc1;
  Fc2 fc2;

  explicit MLP(Options o = {}) requires(!Holder::is_dynamic) : fc1(o), fc2(o) {
    static_assert(C.in_features > 0 && C.hidden > 0 && C.out_features > 0, "MLP: in_features, hidden and out_features must be positive");
  }
  explicit MLP(const MLPConfig& c, Options o = {}) requires(Holder::is_dynamic)
      : Holder(checked(c)), fc1(detail::mlp_fc1(c), o), fc2(detail::mlp_fc2(c), o) {}
  using Holder::config;

  Var<T, B> operator()(const Var<T, B>& x) const { return fc2(activate(config().activation, fc1(x))); }
  void visit(Members& m) override {
    m.module("fc1", fc1);
    m.module("fc2", fc2);
  }

 private:
  static const MLPConfig& checked(const MLPConfig& c) {
    if (c.in_features <= 0 || c.hidden <= 0 || c.out_features <= 0)
      fail<config_error>("MLP", "in_features, hidden and out_features must be positive, got ", c.in_features, ", ", c.hidden, ", ", c.out_features);
    return c;
  }
};

}  // namespace dsm::nn
