// dsm/ops/softmax.hpp: softmax and log_softmax along one dimension, numerically stable.
//
//   auto p  = dsm::softmax(logits, -1);
//   auto lp = dsm::log_softmax(logits, -1);
//
// Each row is shifted by its maximum before exponentiation, so large logits do not overflow; a row
// of -inf gives NaN as in PyTorch. bf16/f16 inputs are computed in float.
#pragma once

#include <cmath>
#include <limits>

#include "../expr/assign.hpp"
#include "../expr/math.hpp"
#include "reduce.hpp"

namespace dsm {
namespace detail {

template <bool Log, class T, class B>
Tensor<T, B> softmax_impl(const char* op, const Tensor<T, B>& x, std::int64_t dim) {
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  if (x.rank() == 0) return softmax_impl<Log>(op, x.reshape({1}), 0).reshape({});
  const int d = wrap_dim(op, dim, x.rank());
  // Work on rows: the softmax dimension last and contiguous (a copy only when it is not).
  const Tensor<T, B> rows = x.transpose(d, -1).contiguous();
  const std::int64_t n = rows.size(-1), outer = n ? rows.numel() / n : 0;
  Tensor<T, B> out(rows.shape());
  const T* in = rows.data();
  T* o = out.data();
  B::parallel_for(outer, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(n, 1)), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      const T* p = in + r * n;
      T* q = o + r * n;
      C m = -std::numeric_limits<C>::infinity();
      for (std::int64_t j = 0; j < n; ++j) m = std::max(m, static_cast<C>(p[j]));
      double s = 0;  // summed in double: a long row of float terms loses digits otherwise
      for (std::int64_t j = 0; j < n; ++j) s += math::exp_nonpositive(static_cast<C>(p[j]) - m);
      if constexpr (Log) {
        const C lse = m + static_cast<C>(std::log(s));
        for (std::int64_t j = 0; j < n; ++j) q[j] = convert<T>(static_cast<C>(p[j]) - lse);
      } else {
        const C inv = static_cast<C>(1.0 / s);
        for (std::int64_t j = 0; j < n; ++j) q[j] = convert<T>(math::exp_nonpositive(static_cast<C>(p[j]) - m) * inv);
      }
    }
  });
  return d == x.rank() - 1 ? out : out.transpose(d, -1).contiguous();
}
}  // namespace detail

/// exp(x) / sum(exp(x)) along `dim`.
template <TensorExpression E>
  requires FloatingScalar<typename E::value_type>
auto softmax(const E& e, std::int64_t dim = -1) {
  return detail::softmax_impl<false>("softmax", detail::materialize(e), dim);
}
/// x - logsumexp(x) along `dim`.
template <TensorExpression E>
  requires FloatingScalar<typename E::value_type>
auto log_softmax(const E& e, std::int64_t dim = -1) {
  return detail::softmax_impl<true>("log_softmax", detail::materialize(e), dim);
}

}  // namespace dsm
