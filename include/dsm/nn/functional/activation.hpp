// dsm/nn/functional/activation.hpp: dropout and SwiGLU on Vars (the pointwise activations relu,
// gelu, silu... are the expression functions of dsm/expr and fuse with their neighbours).
#pragma once

#include "../../autograd/functions/views.hpp"
#include "../../core/random.hpp"

namespace dsm::nn::functional {

/// Inverted dropout: each element is zeroed with probability p and the rest scaled by 1/(1-p),
/// with a mask drawn from `gen` (so a seeded generator reproduces it). Identity when !training.
template <class T, class B>
Var<T, B> dropout(const Var<T, B>& x, double p, bool training, Generator& gen = default_generator()) {
  if (!(p >= 0 && p < 1)) fail<config_error>("dropout", "probability must be in [0, 1), got ", p);
  if (!training || p == 0) return x;
  const Tensor<float, B> u = Tensor<float, B>::rand(x.shape(), gen);
  const Tensor<T, B> mask = cast<T>(cast<float>(u >= static_cast<float>(p)) * static_cast<float>(1.0 / (1.0 - p)));
  return Var<T, B>(x * mask);
}

/// SwiGLU: the last dimension splits into halves (a, b); returns silu(a) * b.
template <class T, class B>
Var<T, B> swiglu(const Var<T, B>& x) {
  if (x.rank() == 0 || x.size(-1) % 2 != 0) fail<shape_error>("swiglu", "the last dimension must be even, got shape ", x.shape());
  const std::int64_t h = x.size(-1) / 2;
  const Var<T, B> a = x.narrow(-1, 0, h), b = x.narrow(-1, h, h);
  return Var<T, B>(silu(a) * b);
}

}  // namespace dsm::nn::functional
