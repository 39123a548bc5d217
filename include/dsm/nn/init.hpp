// dsm/nn/init.hpp: parameter initialization schemes (in place, from a seeded generator).
//
//   dsm::Generator gen(0);
//   dsm::nn::init::kaiming_uniform_(w, gen);            // He et al., fan_in, gain sqrt(2)
//   dsm::nn::init::xavier_normal_(w, gen);              // Glorot and Bengio
//   dsm::nn::init::linear_default_(w, b, gen);          // torch.nn.Linear's reset_parameters
//
// Fans follow PyTorch: for a weight [out, in, k...], fan_in = in * prod(k), fan_out = out * prod(k).
#pragma once

#include <cmath>
#include <string_view>

#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../expr/assign.hpp"
#include "../expr/operators.hpp"

namespace dsm::nn::init {

struct Fans {
  std::int64_t in, out;
};
template <class T, class B>
Fans fans(const Tensor<T, B>& w) {
  if (w.rank() < 2) fail<shape_error>("init", "fan in and fan out need at least 2 dimensions, got ", w.shape());
  const std::int64_t receptive = w.numel() / (w.size(0) * w.size(1));
  return {w.size(1) * receptive, w.size(0) * receptive};
}

/// Fills with U(lo, hi).
template <class T, class B>
void uniform_(const Tensor<T, B>& t, double lo, double hi, Generator& gen = default_generator()) {
  Tensor<T, B> dst = t;
  const Tensor<float, B> u = Tensor<float, B>::rand(t.shape(), gen);
  dst = cast<T>(u * static_cast<float>(hi - lo) + static_cast<float>(lo));
}
/// Fills with N(mean, std^2).
template <class T, class B>
void normal_(const Tensor<T, B>& t, double mean, double std, Generator& gen = default_generator()) {
  Tensor<T, B> dst = t;
  const Tensor<float, B> n = Tensor<float, B>::randn(t.shape(), gen);
  dst = cast<T>(n * static_cast<float>(std) + static_cast<float>(mean));
}

/// The recommended gain of a nonlinearity ("linear", "relu", "leaky_relu" with `a`, "tanh", "sigmoid").
inline double gain(std::string_view nonlinearity, double a = 0.01) {
  if (nonlinearity == "linear" || nonlinearity == "sigmoid") return 1.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + a * a));
  if (nonlinearity == "tanh") return 5.0 / 3;
  fail<config_error>("init::gain", "unknown nonlinearity '", nonlinearity, "'");
}

/// U(-b, b) with b = gain * sqrt(3 / fan_in) (fan_out with use_fan_out).
template <class T, class B>
void kaiming_uniform_(const Tensor<T, B>& w, Generator& gen = default_generator(), double a = 0, std::string_view nonlinearity = "leaky_relu",
                      bool use_fan_out = false) {
  const Fans f = fans(w);
  const double bound = gain(nonlinearity, a) * std::sqrt(3.0 / static_cast<double>(use_fan_out ? f.out : f.in));
  uniform_(w, -bound, bound, gen);
}
/// N(0, std^2) with std = gain / sqrt(fan_in).
template <class T, class B>
void kaiming_normal_(const Tensor<T, B>& w, Generator& gen = default_generator(), double a = 0, std::string_view nonlinearity = "leaky_relu",
                     bool use_fan_out = false) {
  const Fans f = fans(w);
  normal_(w, 0.0, gain(nonlinearity, a) / std::sqrt(static_cast<double>(use_fan_out ? f.out : f.in)), gen);
}
/// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
template <class T, class B>
void xavier_uniform_(const Tensor<T, B>& w, Generator& gen = default_generator(), double gain = 1.0) {
  const Fans f = fans(w);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(f.in + f.out));
  uniform_(w, -bound, bound, gen);
}
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
template <class T, class B>
void xavier_normal_(const Tensor<T, B>& w, Generator& gen = default_generator(), double gain = 1.0) {
  const Fans f = fans(w);
  normal_(w, 0.0, gain * std::sqrt(2.0 / static_cast<double>(f.in + f.out)), gen);
}
/// torch.nn.Linear's default: weight kaiming_uniform(a = sqrt(5)), i.e. U(+-1/sqrt(fan_in)), and
/// bias U(+-1/sqrt(fan_in)).
template <class T, class B>
void linear_default_(const Tensor<T, B>& w, const Tensor<T, B>& bias, Generator& gen = default_generator()) {
  kaiming_uniform_(w, gen, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fans(w).in));
    uniform_(bias, -bound, bound, gen);
  }
}

}  // namespace dsm::nn::init
