// dsm/autograd/gradcheck.hpp: checks a backward pass against central finite differences.
//
// For f mapping double-precision Vars to a Var y, gradcheck draws a fixed random cotangent r of
// y's shape and compares, for every element of every input that requires a gradient,
//   analytic:  d sum(y * r) / d x_i        (one backward pass)
//   numeric:   (L(x_i + eps) - L(x_i - eps)) / (2 eps)   with L = sum(y * r)
// A random r checks the whole vector-Jacobian product, not one output at a time.
//
//   auto r = dsm::gradcheck([](const auto& in) { return dsm::softmax(in[0], 1); }, {x});
//   CHECK_MESSAGE(r.ok, r.message);
#pragma once

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "var.hpp"

namespace dsm {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // largest |analytic - numeric| over all checked elements
  std::string message;       // the first failing element, or "" when ok
  explicit operator bool() const { return ok; }
};

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  std::uint64_t seed = 1234;
};

/// Requires: f is deterministic; inputs are defined leaves (those with requires_grad are checked).
/// Ensures: result.ok iff every analytic gradient element is within atol + rtol * |numeric|.
template <class F>
GradcheckResult gradcheck(F&& f, const std::vector<Var<double>>& inputs, GradcheckOptions opt = {}) {
  GradcheckResult result;
  Var<double> y0 = f(inputs);
  Generator gen(opt.seed);
  const Tensor<double> r = Tensor<double>::randn(y0.shape(), gen);
  auto loss = [&](const Var<double>& y) {
    double s = 0;
    const Tensor<double> v = y.value().contiguous();
    for (std::int64_t i = 0; i < v.numel(); ++i) s += v.data()[i] * r.data()[i];
    return s;
  };
  for (const auto& x : inputs) x.zero_grad();
  if (y0.requires_grad()) y0.backward(r);

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Var<double>& x = inputs[k];
    if (!x.requires_grad()) continue;
    if (!x.value().is_contiguous()) fail<error>("gradcheck", "input ", k, " must be contiguous");
    double* p = x.value().data();
    const Tensor<double> analytic = x.grad().defined() ? x.grad().contiguous() : Tensor<double>::zeros(x.shape());
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double saved = p[i];
      double plus, minus;
      {
        no_grad guard;
        p[i] = saved + opt.eps;
        plus = loss(f(inputs));
        p[i] = saved - opt.eps;
        minus = loss(f(inputs));
      }
      p[i] = saved;
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double err = std::abs(analytic.data()[i] - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && !(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        std::ostringstream os;
        os << "gradcheck: input " << k << " element " << i << ": analytic " << analytic.data()[i] << " vs numeric " << numeric;
        result.ok = false;
        result.message = os.str();
      }
    }
  }
  return result;
}

}  // namespace dsm
