// dsm/nn/norm.hpp: LayerNorm and RMSNorm over the last dimension.
//
//   dsm::nn::RMSNorm<{.dim = 256}> norm;                 // weight = 1, eps 1e-6
//   dsm::nn::LayerNorm<{.dim = 256}> ln({.eps = 1e-5});  // weight = 1, bias = 0
#pragma once

#include "functional/norm.hpp"
#include "module.hpp"

namespace dsm::nn {

struct NormConfig {
  std::int64_t dim = 0;
  bool affine = true;  // learnable weight (and, for LayerNorm, bias)
  bool dynamic_form = false;  // set by dsm::dynamic only
};

namespace detail {
template <NormConfig C>
constexpr void check_norm_config() {
  if constexpr (!C.dynamic_form) static_assert(C.dim > 0, "a norm layer's dim must be positive");
}
inline void check_norm_config(const char* op, const NormConfig& c) {
  if (c.dim <= 0) fail<config_error>(op, "dim must be positive, got ", c.dim);
}
}  // namespace detail

struct LayerNormOptions {
  double eps = 1e-5;
};
struct RMSNormOptions {
  double eps = 1e-6;
};

template <NormConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class LayerNorm : public Module, public ConfigHolder<NormConfig, C> {
  using Holder = ConfigHolder<NormConfig, C>;

 public:
  using Options = LayerNormOptions;
  Var<T, B> weight, bias;  // [dim] each, when affine
  Options options;

  explicit LayerNorm(Options o = {}) requires(!Holder::is_dynamic) : options(o) { init(); }
  explicit LayerNorm(const NormConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(c), options(o) { init(); }
  using Holder::config;

  Var<T, B> operator()(const Var<T, B>& x) const { return functional::layer_norm(x, weight, bias, options.eps); }
  void visit(Members& m) override {
    m.parameter("weight", weight);
    m.parameter("bias", bias);
  }

 private:
  void init() {
    detail::check_norm_config<C>();
    if constexpr (Holder::is_dynamic) detail::check_norm_config("LayerNorm", config());
    if (config().affine) {
      weight = Var<T, B>(Tensor<T, B>::ones({config().dim}), true);
      bias = Var<T, B>(Tensor<T, B>::zeros({config().dim}), true);
    }
  }
};

template <NormConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class RMSNorm : public Module, public ConfigHolder<NormConfig, C> {
  using Holder = ConfigHolder<NormConfig, C>;

 public:
  using Options = RMSNormOptions;
  Var<T, B> weight;  // [dim], when affine
  Options options;

  explicit RMSNorm(Options o = {}) requires(!Holder::is_dynamic) : options(o) { init(); }
  explicit RMSNorm(const NormConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(c), options(o) { init(); }
  using Holder::config;

  Var<T, B> operator()(const Var<T, B>& x) const { return functional::rms_norm(x, weight, options.eps); }
  void visit(Members& m) override { m.parameter("weight", weight); }

 private:
  void init() {
    detail::check_norm_config<C>();
    if constexpr (Holder::is_dynamic) detail::check_norm_config("RMSNorm", config());
    if (config().affine) weight = Var<T, B>(Tensor<T, B>::ones({config().dim}), true);
  }
};

}  // namespace dsm::nn
