// dsm/nn/linear.hpp: y = x W^T + b.
//
//   dsm::nn::Linear<{.in_features = 512, .out_features = 1024}> proj;       // compile time
//   dsm::nn::Linear<dsm::dynamic> head({.in_features = d, .out_features = v, .bias = false});
//   dsm::Var<float> y = proj(x);                                              // x [..., 512]
//
// Parameters: weight [out_features, in_features], bias [out_features]; initialized as
// torch.nn.Linear (U(+-1/sqrt(in_features)) for both) from Options::generator.
#pragma once

#include "../autograd/functions/linalg.hpp"
#include "init.hpp"
#include "module.hpp"

namespace dsm::nn {

struct LinearConfig {
  std::int64_t in_features = 0;
  std::int64_t out_features = 0;
  bool bias = true;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

struct LinearOptions {
  Generator* generator = nullptr;  // the default generator when null
};

template <LinearConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class Linear : public Module, public ConfigHolder<LinearConfig, C> {
  using Holder = ConfigHolder<LinearConfig, C>;

 public:
  using Options = LinearOptions;

  Var<T, B> weight;  // [out_features, in_features]
  Var<T, B> bias;    // [out_features], undefined without bias

  explicit Linear(Options o = {}) requires(!Holder::is_dynamic) { init(o); }
  explicit Linear(const LinearConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(c) { init(o); }

  using Holder::config;

  Var<T, B> operator()(const Var<T, B>& x) const {
    if (x.rank() == 0 || x.size(-1) != config().in_features)
      fail<shape_error>("Linear", "input of shape ", x.shape(), " for in_features ", config().in_features);
    return linear(x, weight, bias);
  }
  void visit(Members& m) override {
    m.parameter("weight", weight);
    m.parameter("bias", bias);
  }

 private:
  void init(Options o) {
    if constexpr (!Holder::is_dynamic) {
      static_assert(C.in_features > 0, "Linear: in_features must be positive");
      static_assert(C.out_features > 0, "Linear: out_features must be positive");
    } else {
      if (config().in_features <= 0 || config().out_features <= 0)
        fail<config_error>("Linear", "in_features and out_features must be positive, got ", config().in_features, " and ", config().out_features);
    }
    Generator& gen = o.generator ? *o.generator : default_generator();
    weight = Var<T, B>(Tensor<T, B>({config().out_features, config().in_features}), true);
    if (config().bias) bias = Var<T, B>(Tensor<T, B>({config().out_features}), true);
    init::linear_default_(weight.value(), bias.defined() ? bias.value() : Tensor<T, B>(), gen);
  }
};

}  // namespace dsm::nn
