// dsm/ops/reduce.hpp: reductions over any set of dimensions.
//
//   auto total = dsm::sum(x);                    // all dimensions -> rank-0 tensor
//   auto rows  = dsm::mean(x, {1}, true);        // keepdim
//   auto idx   = dsm::argmax(logits, -1);        // int64 indices, first maximum on ties
//   auto lse   = dsm::logsumexp(x, {-1});
//   auto v     = dsm::var(x, {0});               // unbiased (correction = 1) as torch.var
//
// Floating sums accumulate in double, integer sums in int64. max/min propagate NaN, argmax and
// argmin treat NaN as the extreme value (as PyTorch). Results do not depend on the thread count.
// Inputs may be expressions; they are evaluated first.
#pragma once

#include <cmath>
#include <limits>

#include "../expr/assign.hpp"
#include "detail/reduce_kernel.hpp"

namespace dsm {
namespace detail {

template <class T>
struct SumReducer {
  using A = accumulate_t<T>;
  using State = A;
  static constexpr bool allows_empty = true;
  bool mean = false;
  State init() const { return A(0); }
  void add(State& s, compute_t<T> v, std::int64_t) const { s += static_cast<A>(v); }
  State merge(State a, State b) const { return a + b; }
  T finish(State s, std::int64_t n) const {
    if (mean) return convert<T>(n ? s / static_cast<A>(n) : std::numeric_limits<A>::quiet_NaN());
    return convert<T>(s);
  }
};

template <class T, bool Max>
struct ExtremumReducer {
  using C = compute_t<T>;
  struct State {
    C v;
    bool nan, any;
  };
  static constexpr bool allows_empty = false;
  State init() const { return {C(0), false, false}; }
  void add(State& s, C v, std::int64_t) const {
    if (v != v) s.nan = true;
    else if (!s.any || (Max ? v > s.v : v < s.v)) s.v = v, s.any = true;
  }
  State merge(State a, State b) const {
    if (b.nan) a.nan = true;
    if (b.any) add(a, b.v, 0);
    return a;
  }
  T finish(State s, std::int64_t) const { return s.nan ? convert<T>(std::numeric_limits<double>::quiet_NaN()) : convert<T>(s.v); }
};

template <class T, bool Max>
struct ArgExtremumReducer {
  using C = compute_t<T>;
  struct State {
    C v;
    std::int64_t i;
    bool nan;
  };
  static constexpr bool allows_empty = false;
  State init() const { return {C(0), -1, false}; }
  // The first NaN wins; otherwise the first strict extremum (ties keep the lower index).
  void add(State& s, C v, std::int64_t i) const {
    if (s.nan) return;
    if (v != v) s = {v, i, true};
    else if (s.i < 0 || (Max ? v > s.v : v < s.v)) s = {v, i, false};
  }
  State merge(State a, State b) const {
    if (a.nan || b.i < 0) return a;
    if (b.nan || a.i < 0 || (Max ? b.v > a.v : b.v < a.v)) return b;
    return a;
  }
  std::int64_t finish(State s, std::int64_t) const { return s.i; }
};

/// log(sum(exp(x))) in one pass with a running maximum.
template <class T>
struct LogSumExpReducer {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  struct State {
    A m, s;
  };
  static constexpr bool allows_empty = true;
  State init() const { return {-std::numeric_limits<A>::infinity(), A(0)}; }
  void add(State& st, A v, std::int64_t) const { st = merge(st, State{v, A(1)}); }
  State merge(State a, State b) const {
    if (b.m == -std::numeric_limits<A>::infinity()) return a;
    if (a.m == -std::numeric_limits<A>::infinity()) return b;
    if (std::isinf(a.m) || std::isinf(b.m) || a.m != a.m || b.m != b.m)  // +inf or NaN dominate
      return {a.m != a.m || b.m != b.m ? std::numeric_limits<A>::quiet_NaN() : std::numeric_limits<A>::infinity(), A(1)};
    if (b.m > a.m) return {b.m, b.s + a.s * std::exp(a.m - b.m)};
    return {a.m, a.s + b.s * std::exp(b.m - a.m)};
  }
  T finish(State st, std::int64_t) const { return convert<T>(std::isinf(st.m) || st.m != st.m ? st.m : st.m + std::log(st.s)); }
};

/// Welford's running mean and squared deviations, merged with Chan's formula.
template <class T>
struct VarianceReducer {
  struct State {
    double n, mean, m2;
  };
  static constexpr bool allows_empty = true;
  double correction = 1;
  bool take_sqrt = false;
  State init() const { return {0, 0, 0}; }
  void add(State& s, compute_t<T> v, std::int64_t) const {
    s.n += 1;
    const double d = static_cast<double>(v) - s.mean;
    s.mean += d / s.n;
    s.m2 += d * (static_cast<double>(v) - s.mean);
  }
  State merge(State a, State b) const {
    if (b.n == 0) return a;
    if (a.n == 0) return b;
    const double n = a.n + b.n, d = b.mean - a.mean;
    return {n, a.mean + d * b.n / n, a.m2 + b.m2 + d * d * a.n * b.n / n};
  }
  T finish(State s, std::int64_t) const {
    const double denom = s.n - correction;
    const double v = denom > 0 ? s.m2 / denom : std::numeric_limits<double>::quiet_NaN();
    return convert<T>(take_sqrt ? std::sqrt(v) : v);
  }
};

/// The tensor behind an operand: a tensor itself, or an expression evaluated once.
template <class E>
decltype(auto) materialize(const E& e) {
  if constexpr (is_tensor<E>::value) return (e);
  else return eval(e);
}
}  // namespace detail

#define DSM_REDUCTION(NAME, OUT, MAKE_REDUCER, REQUIRES)                                                  \
  template <TensorExpression E>                                                                                 \
    requires REQUIRES                                                                                     \
  auto NAME(const E& e, const Shape& dims = {}, bool keepdim = false) {                                    \
    const auto& x = detail::materialize(e);                                                               \
    using T = typename std::remove_cvref_t<decltype(x)>::value_type;                                      \
    return detail::reduce<decltype(MAKE_REDUCER), OUT>(#NAME, MAKE_REDUCER, x, dims, keepdim);            \
  }                                                                                                       \
  template <TensorExpression E>                                                                                 \
    requires REQUIRES                                                                                     \
  auto NAME(const E& e, std::int64_t dim, bool keepdim = false) { return NAME(e, Shape{dim}, keepdim); }

/// Sum over `dims` (all when empty).
DSM_REDUCTION(sum, T, detail::SumReducer<T>{}, (!std::is_same_v<typename E::value_type, bool>))
/// Arithmetic mean over `dims`.
DSM_REDUCTION(mean, T, detail::SumReducer<T>{true}, FloatingScalar<typename E::value_type>)
/// Maximum over `dims`; NaN if any element is NaN.
DSM_REDUCTION(max, T, (detail::ExtremumReducer<T, true>{}), true)
/// Minimum over `dims`; NaN if any element is NaN.
DSM_REDUCTION(min, T, (detail::ExtremumReducer<T, false>{}), true)
/// Index of the maximum (flattened over `dims`), first one on ties.
DSM_REDUCTION(argmax, std::int64_t, (detail::ArgExtremumReducer<T, true>{}), true)
/// Index of the minimum (flattened over `dims`), first one on ties.
DSM_REDUCTION(argmin, std::int64_t, (detail::ArgExtremumReducer<T, false>{}), true)
/// log(sum(exp(x))) over `dims`, computed stably.
DSM_REDUCTION(logsumexp, T, detail::LogSumExpReducer<T>{}, FloatingScalar<typename E::value_type>)
#undef DSM_REDUCTION

namespace detail {
template <class E>
auto variance(const char* op, const E& e, const Shape& dims, bool keepdim, double correction, bool take_sqrt) {
  const auto& x = materialize(e);
  using T = typename E::value_type;
  return reduce<VarianceReducer<T>, T>(op, VarianceReducer<T>{correction, take_sqrt}, x, dims, keepdim);
}
}  // namespace detail

/// Variance over `dims` with Bessel's correction by default (correction = 1), as torch.var.
template <TensorExpression E>
  requires FloatingScalar<typename E::value_type>
auto var(const E& e, const Shape& dims = {}, bool keepdim = false, double correction = 1) {
  return detail::variance("var", e, dims, keepdim, correction, false);
}
template <TensorExpression E>
  requires FloatingScalar<typename E::value_type>
auto var(const E& e, std::int64_t dim, bool keepdim = false, double correction = 1) {
  return detail::variance("var", e, Shape{dim}, keepdim, correction, false);
}
/// Standard deviation: sqrt(var(...)).
template <TensorExpression E>
  requires FloatingScalar<typename E::value_type>
auto std_dev(const E& e, const Shape& dims = {}, bool keepdim = false, double correction = 1) {
  return detail::variance("std_dev", e, dims, keepdim, correction, true);
}
template <TensorExpression E>
  requires FloatingScalar<typename E::value_type>
auto std_dev(const E& e, std::int64_t dim, bool keepdim = false, double correction = 1) {
  return detail::variance("std_dev", e, Shape{dim}, keepdim, correction, true);
}

}  // namespace dsm
