// dsm/nn/functional/norm.hpp: layer_norm and rms_norm over the last dimension, each one graph
// node with a hand-derived backward (a few fused passes instead of a chain of small nodes).
//
// layer_norm: y = (x - mean) * rstd * w + b,       rstd = 1 / sqrt(var + eps) (biased var)
// rms_norm:   y = x * rrms * w,                     rrms = 1 / sqrt(mean(x^2) + eps)
// With xhat the normalized input and gh = g * w, the input gradient is
//   layer_norm: rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
//   rms_norm:   rrms * (gh - xhat * mean(gh * xhat))
#pragma once

#include "../../autograd/function.hpp"
#include "../../autograd/functions/reduce.hpp"

namespace dsm::nn::functional {

namespace detail {
/// The leading dimensions of x (everything but the normalized last one).
inline Shape rows_dims(int rank) {
  Shape dims;
  for (int d = 0; d + 1 < rank; ++d) dims.push_back(d);
  return dims;
}
/// Sums an expression over the leading dimensions (none for a 1-D input).
template <class T, class B, class E>
Tensor<T, B> sum_rows(const E& e, int rank) {
  if (rank == 1) return Tensor<T, B>(e);
  return sum(e, rows_dims(rank));
}
template <class T, class B>
void check_norm_args(const char* op, const Var<T, B>& x, const Var<T, B>& w, const Var<T, B>& b) {
  if (x.rank() == 0) fail<shape_error>(op, "input must have at least one dimension");
  const Shape expect{x.size(-1)};
  if (w.defined() && !(w.shape() == expect)) fail<shape_error>(op, "weight of shape ", w.shape(), " for normalized size ", x.size(-1));
  if (b.defined() && !(b.shape() == expect)) fail<shape_error>(op, "bias of shape ", b.shape(), " for normalized size ", x.size(-1));
}
}  // namespace detail

/// Layer normalization over the last dimension; weight and bias are optional (undefined Vars).
template <class T, class B>
Var<T, B> layer_norm(const Var<T, B>& x, const Var<T, B>& weight, const Var<T, B>& bias, double eps = 1e-5) {
  detail::check_norm_args("layer_norm", x, weight, bias);
  const Tensor<T, B>& xv = x.value();
  const Tensor<T, B> mu = mean(xv, -1, true);                                            // [..., 1]
  const Tensor<T, B> rstd = rsqrt(mean(square(xv - mu), -1, true) + eps);  // [..., 1]
  Tensor<T, B> y(xv.shape());
  if (weight.defined() && bias.defined()) y = (xv - mu) * rstd * weight.value() + bias.value();
  else if (weight.defined()) y = (xv - mu) * rstd * weight.value();
  else y = (xv - mu) * rstd;
  const Tensor<T, B> w = weight.defined() ? weight.value() : Tensor<T, B>::ones({x.size(-1)});
  return autograd::make_result(
      "layer_norm", std::move(y), {autograd::edge_of(x), autograd::edge_of(weight), autograd::edge_of(bias)},
      [xv, mu, rstd, w](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
        if (in[0]) {
          const Tensor<T, B> m1 = mean(g * w, -1, true);
          const Tensor<T, B> m2 = mean(g * w * (xv - mu) * rstd, -1, true);
          autograd::accumulate_input(in[0], Tensor<T, B>(rstd * (g * w - m1 - (xv - mu) * rstd * m2)));
        }
        if (in[1]) autograd::accumulate_input(in[1], detail::sum_rows<T, B>(g * (xv - mu) * rstd, xv.rank()));
        if (in[2]) autograd::accumulate_input(in[2], detail::sum_rows<T, B>(g, xv.rank()));
      });
}

/// Root-mean-square normalization over the last dimension (weight optional).
template <class T, class B>
Var<T, B> rms_norm(const Var<T, B>& x, const Var<T, B>& weight, double eps = 1e-6) {
  detail::check_norm_args("rms_norm", x, weight, Var<T, B>());
  const Tensor<T, B>& xv = x.value();
  const Tensor<T, B> rrms = rsqrt(mean(square(xv), -1, true) + eps);  // [..., 1]
  Tensor<T, B> y(xv.shape());
  if (weight.defined()) y = xv * rrms * weight.value();
  else y = xv * rrms;
  const Tensor<T, B> w = weight.defined() ? weight.value() : Tensor<T, B>::ones({x.size(-1)});
  return autograd::make_result("rms_norm", std::move(y), {autograd::edge_of(x), autograd::edge_of(weight)},
                               [xv, rrms, w](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 if (in[0]) {
                                   const Tensor<T, B> m = mean(g * w * xv * rrms, -1, true);
                                   autograd::accumulate_input(in[0], Tensor<T, B>(rrms * (g * w - xv * rrms * m)));
                                 }
                                 if (in[1]) autograd::accumulate_input(in[1], detail::sum_rows<T, B>(g * xv * rrms, xv.rank()));
                               });
}

}  // namespace dsm::nn::functional
