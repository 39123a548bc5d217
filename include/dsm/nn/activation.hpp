// dsm/nn/activation.hpp: activation modules, for use in Sequential (functions are the same maths:
// dsm::relu(x), dsm::gelu(x), dsm::silu(x), nn::functional::swiglu(x)).
#pragma once

#include "functional/activation.hpp"
#include "module.hpp"

namespace dsm::nn {

enum class Activation { relu, gelu, gelu_tanh, silu, swiglu };

/// Applies activation `a` (swiglu halves the last dimension).
template <class T, class B>
Var<T, B> activate(Activation a, const Var<T, B>& x) {
  switch (a) {
    case Activation::relu: return Var<T, B>(relu(x));
    case Activation::gelu: return Var<T, B>(gelu(x));
    case Activation::gelu_tanh: return Var<T, B>(gelu_tanh(x));
    case Activation::silu: return Var<T, B>(silu(x));
    case Activation::swiglu: return functional::swiglu(x);
  }
  fail<config_error>("activate", "unknown activation");
}

template <Activation A>
class ActivationModule : public Module {
 public:
  template <class T, class B>
  Var<T, B> operator()(const Var<T, B>& x) const {
    return activate(A, x);
  }
  void visit(Members&) override {}
};
using ReLU = ActivationModule<Activation::relu>;
using GELU = ActivationModule<Activation::gelu>;
using GELUTanh = ActivationModule<Activation::gelu_tanh>;
using SiLU = ActivationModule<Activation::silu>;
using SwiGLU = ActivationModule<Activation::swiglu>;

}  // namespace dsm::nn
