// dsm/autograd/functions/reduce.hpp: reductions, softmax and log_softmax on Vars.
//
// Each gradient is one fused pass over the input's shape with the upstream gradient broadcast
// back over the reduced dimensions. max and min share the gradient equally among tied maxima
// (as torch.amax); var and std_dev follow the correction they were computed with.
#pragma once

#include "../../ops/reduce.hpp"
#include "../../ops/softmax.hpp"
#include "../fused.hpp"
#include "../function.hpp"

namespace dsm {

namespace autograd::detail {
/// The input's shape with the reduced dimensions set to 1 (the keepdim shape).
inline Shape kept_shape(const char* op, const Shape& in, const Shape& dims) {
  return dsm::detail::reduced_shape(in, dsm::detail::reduce_mask(op, dims, in.rank()), true);
}

/// Records a reduction whose gradient is `grad_fn(g_kept, x, y_kept, count)`: tensors in the
/// keepdim shape, evaluated into the input's shape.
template <class T, class B, class GradFn>
Var<T, B> reduction(const char* op, const Var<T, B>& x, Tensor<T, B> y, const Shape& dims, bool save_io, GradFn grad_fn) {
  const Shape kept = kept_shape(op, x.shape(), dims);
  const std::int64_t count = kept.numel() ? x.numel() / kept.numel() : 0;
  return make_result(op, y, {edge_of(x)},
                     [kept, count, grad_fn, xs = save_io ? x.value() : Tensor<T, B>(), ys = save_io ? y : Tensor<T, B>()](
                         const Tensor<T, B>& g, const std::vector<Edge>& in) {
                       const Tensor<T, B> gk = g.reshape(kept);
                       accumulate_input(in[0], grad_fn(gk, xs, ys.defined() ? ys.reshape(kept) : ys, count));
                     });
}
}  // namespace autograd::detail

/// Sum over `dims` (all when empty).
template <class T, class B>
Var<T, B> sum(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false) {
  return autograd::detail::reduction("sum", x, sum(x.value(), dims, keepdim), dims, false,
                                     [from = x.shape()](const Tensor<T, B>& gk, const Tensor<T, B>&, const Tensor<T, B>&, std::int64_t) {
                                       return gk.expand(from);  // a broadcast view; consumers read it in place
                                     });
}
/// Mean over `dims` (all when empty).
template <class T, class B>
Var<T, B> mean(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false) {
  return autograd::detail::reduction("mean", x, mean(x.value(), dims, keepdim), dims, false,
                                     [from = x.shape()](const Tensor<T, B>& gk, const Tensor<T, B>&, const Tensor<T, B>&, std::int64_t n) {
                                       Tensor<T, B> gx(from);
                                       gx = gk * (1.0 / static_cast<double>(n));
                                       return gx;
                                     });
}

namespace autograd::detail {
template <class T, class B>
Tensor<T, B> extremum_grad(const Tensor<T, B>& gk, const Tensor<T, B>& x, const Tensor<T, B>& yk, const Shape& dims) {
  const Tensor<T, B> ties = sum(cast<T>(x == yk), dims, true);  // how many elements share the extremum
  Tensor<T, B> gx(x.shape());
  gx = where(x == yk, gk / ties, 0.f);
  return gx;
}
}  // namespace autograd::detail

/// Maximum over `dims`; the gradient is shared equally among tied maxima.
template <class T, class B>
Var<T, B> max(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false) {
  return autograd::detail::reduction("max", x, max(x.value(), dims, keepdim), dims, true,
                                     [dims](const Tensor<T, B>& gk, const Tensor<T, B>& xs, const Tensor<T, B>& yk, std::int64_t) {
                                       return autograd::detail::extremum_grad(gk, xs, yk, dims);
                                     });
}
/// Minimum over `dims`; the gradient is shared equally among tied minima.
template <class T, class B>
Var<T, B> min(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false) {
  return autograd::detail::reduction("min", x, min(x.value(), dims, keepdim), dims, true,
                                     [dims](const Tensor<T, B>& gk, const Tensor<T, B>& xs, const Tensor<T, B>& yk, std::int64_t) {
                                       return autograd::detail::extremum_grad(gk, xs, yk, dims);
                                     });
}
/// log(sum(exp(x))) over `dims`.
template <class T, class B>
Var<T, B> logsumexp(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false) {
  return autograd::detail::reduction("logsumexp", x, logsumexp(x.value(), dims, keepdim), dims, true,
                                     [](const Tensor<T, B>& gk, const Tensor<T, B>& xs, const Tensor<T, B>& yk, std::int64_t) {
                                       return Tensor<T, B>(gk * exp(xs - yk));
                                     });
}

namespace autograd::detail {
template <class T, class B>
Var<T, B> variance(const char* op, const Var<T, B>& x, const Shape& dims, bool keepdim, double correction, bool take_sqrt) {
  Tensor<T, B> y = take_sqrt ? std_dev(x.value(), dims, keepdim, correction) : var(x.value(), dims, keepdim, correction);
  return reduction(op, x, std::move(y), dims, true,
                   [dims, correction, take_sqrt](const Tensor<T, B>& gk, const Tensor<T, B>& xs, const Tensor<T, B>& yk, std::int64_t n) {
                     const Tensor<T, B> mu = mean(xs, dims, true);
                     const double scale = 1.0 / (static_cast<double>(n) - correction);
                     Tensor<T, B> gx(xs.shape());
                     // d sqrt(v) = dv / (2 sqrt(v)); where all values are equal, 0 (as PyTorch) not 0 / 0
                     if (take_sqrt) gx = where(yk == T(0), T(0), gk * (xs - mu) * scale / yk);
                     else gx = gk * (xs - mu) * (2.0 * scale);
                     return gx;
                   });
}
}  // namespace autograd::detail

/// Variance over `dims` (Bessel's correction by default).
template <class T, class B>
Var<T, B> var(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false, double correction = 1) {
  return autograd::detail::variance("var", x, dims, keepdim, correction, false);
}
/// Standard deviation over `dims`.
template <class T, class B>
Var<T, B> std_dev(const Var<T, B>& x, const Shape& dims = {}, bool keepdim = false, double correction = 1) {
  return autograd::detail::variance("std_dev", x, dims, keepdim, correction, true);
}

/// softmax along `dim`; backward: y * (g - sum(g * y)).
template <class T, class B>
Var<T, B> softmax(const Var<T, B>& x, std::int64_t dim = -1) {
  Tensor<T, B> y = softmax(x.value(), dim);
  const int d = wrap_dim("softmax", dim, std::max(x.rank(), 1));
  return autograd::make_result("softmax", y, {autograd::edge_of(x)}, [y, d](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
    const Tensor<T, B> s = sum(g * y, Shape{d}, true);
    autograd::accumulate_input(in[0], Tensor<T, B>(y * (g - s)));
  });
}
/// log_softmax along `dim`; backward: g - exp(y) * sum(g).
template <class T, class B>
Var<T, B> log_softmax(const Var<T, B>& x, std::int64_t dim = -1) {
  Tensor<T, B> y = log_softmax(x.value(), dim);
  const int d = wrap_dim("log_softmax", dim, std::max(x.rank(), 1));
  return autograd::make_result("log_softmax", y, {autograd::edge_of(x)}, [y, d](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
    const Tensor<T, B> s = sum(g, Shape{d}, true);
    autograd::accumulate_input(in[0], Tensor<T, B>(g - exp(y) * s));
  });
}

// ---- the same functions on expressions over Vars: evaluated into a Var first -----------------------
#define DSM_VAR_EXPRESSION_OVERLOAD(NAME)                                                              \
  template <Expression E>                                                                            \
    requires(detail::has_variable<std::remove_cvref_t<E>>::value && !detail::is_var<std::remove_cvref_t<E>>::value) \
  auto NAME(const E& e, const Shape& dims = {}, bool keepdim = false) {                               \
    return NAME(Var(e), dims, keepdim);                                                              \
  }                                                                                                  \
  template <Expression E>                                                                            \
    requires detail::has_variable<std::remove_cvref_t<E>>::value                                       \
  auto NAME(const E& e, std::int64_t dim, bool keepdim = false) {                                    \
    return NAME(Var(e), Shape{dim}, keepdim);                                                        \
  }
DSM_VAR_EXPRESSION_OVERLOAD(sum)
DSM_VAR_EXPRESSION_OVERLOAD(mean)
DSM_VAR_EXPRESSION_OVERLOAD(max)
DSM_VAR_EXPRESSION_OVERLOAD(min)
DSM_VAR_EXPRESSION_OVERLOAD(logsumexp)
#undef DSM_VAR_EXPRESSION_OVERLOAD

template <Expression E>
  requires(detail::has_variable<std::remove_cvref_t<E>>::value && !detail::is_var<std::remove_cvref_t<E>>::value)
auto softmax(const E& e, std::int64_t dim = -1) {
  return softmax(Var(e), dim);
}
template <Expression E>
  requires(detail::has_variable<std::remove_cvref_t<E>>::value && !detail::is_var<std::remove_cvref_t<E>>::value)
auto log_softmax(const E& e, std::int64_t dim = -1) {
  return log_softmax(Var(e), dim);
}

}  // namespace dsm
