// dsm/expr/operators.hpp: the functions and operators that build expression trees.
//
// Any mix of tensors, expressions and plain numbers (a number takes the element type of the
// expression it joins):
//
//   dsm::Tensor<float> y = relu(a * b + c);
//   out += 0.5f * tanh(x) - where(x > 0.f, x, 0.f);
//   auto h = dsm::cast<dsm::bf16>(y);               // rounded through bf16 on evaluation
//
// Elementwise min and max of two operands are `minimum` and `maximum` (as in PyTorch); `min` and
// `max` are the reductions of dsm/ops. Integer division truncates, as in C++.
#pragma once

#include <type_traits>
#include <utility>

#include "functors.hpp"
#include "node.hpp"

namespace dsm {

/// Numbers usable as scalar operands.
template <class S>
concept Number = std::is_arithmetic_v<std::remove_cvref_t<S>>;

namespace detail {
template <class E>
using value_of = typename std::remove_cvref_t<E>::value_type;

template <class F, class A, class B>
auto make_binary(F f, A&& a, B&& b) {
  if constexpr (Number<A>) {
    using S = ScalarNode<value_of<B>>;
    return BinaryNode<F, S, B>{f, S{static_cast<compute_t<value_of<B>>>(a)}, std::forward<B>(b)};
  } else if constexpr (Number<B>) {
    using S = ScalarNode<value_of<A>>;
    return BinaryNode<F, A, S>{f, std::forward<A>(a), S{static_cast<compute_t<value_of<A>>>(b)}};
  } else {
    return BinaryNode<F, A, B>{f, std::forward<A>(a), std::forward<B>(b)};
  }
}
template <class A, class B>
concept BinaryOperands = (Expression<A> && Expression<B>) || (Expression<A> && Number<B>) || (Number<A> && Expression<B>);
}  // namespace detail

#define DSM_BINARY_OPERATOR(OP, F)                                             \
  template <class A, class B>                                                  \
    requires detail::BinaryOperands<A, B>                                      \
  auto operator OP(A&& a, B&& b) {                                             \
    return detail::make_binary(F{}, std::forward<A>(a), std::forward<B>(b));   \
  }
DSM_BINARY_OPERATOR(+, fn::Add)
DSM_BINARY_OPERATOR(-, fn::Sub)
DSM_BINARY_OPERATOR(*, fn::Mul)
DSM_BINARY_OPERATOR(/, fn::Div)
DSM_BINARY_OPERATOR(==, fn::Eq)
DSM_BINARY_OPERATOR(!=, fn::Ne)
DSM_BINARY_OPERATOR(<, fn::Lt)
DSM_BINARY_OPERATOR(<=, fn::Le)
DSM_BINARY_OPERATOR(>, fn::Gt)
DSM_BINARY_OPERATOR(>=, fn::Ge)
DSM_BINARY_OPERATOR(&&, fn::LogicalAnd)
DSM_BINARY_OPERATOR(||, fn::LogicalOr)
#undef DSM_BINARY_OPERATOR

#define DSM_BINARY_FUNCTION(NAME, F)                                           \
  template <class A, class B>                                                  \
    requires detail::BinaryOperands<A, B>                                      \
  auto NAME(A&& a, B&& b) {                                                    \
    return detail::make_binary(F{}, std::forward<A>(a), std::forward<B>(b));   \
  }
DSM_BINARY_FUNCTION(pow, fn::Pow)
DSM_BINARY_FUNCTION(maximum, fn::Maximum)
DSM_BINARY_FUNCTION(minimum, fn::Minimum)
DSM_BINARY_FUNCTION(eq, fn::Eq)
DSM_BINARY_FUNCTION(ne, fn::Ne)
DSM_BINARY_FUNCTION(lt, fn::Lt)
DSM_BINARY_FUNCTION(le, fn::Le)
DSM_BINARY_FUNCTION(gt, fn::Gt)
DSM_BINARY_FUNCTION(ge, fn::Ge)
DSM_BINARY_FUNCTION(logical_and, fn::LogicalAnd)
DSM_BINARY_FUNCTION(logical_or, fn::LogicalOr)
#undef DSM_BINARY_FUNCTION

#define DSM_UNARY_FUNCTION(NAME, F)                                            \
  template <Expression A>                                                      \
  auto NAME(A&& a) {                                                           \
    return UnaryNode<F, A>{F{}, std::forward<A>(a)};                           \
  }
DSM_UNARY_FUNCTION(operator-, fn::Neg)
DSM_UNARY_FUNCTION(operator!, fn::LogicalNot)
DSM_UNARY_FUNCTION(logical_not, fn::LogicalNot)
DSM_UNARY_FUNCTION(exp, fn::Exp)
DSM_UNARY_FUNCTION(log, fn::Log)
DSM_UNARY_FUNCTION(log1p, fn::Log1p)
DSM_UNARY_FUNCTION(expm1, fn::Expm1)
DSM_UNARY_FUNCTION(sqrt, fn::Sqrt)
DSM_UNARY_FUNCTION(rsqrt, fn::Rsqrt)
DSM_UNARY_FUNCTION(abs, fn::Abs)
DSM_UNARY_FUNCTION(sign, fn::Sign)
DSM_UNARY_FUNCTION(square, fn::Square)
DSM_UNARY_FUNCTION(reciprocal, fn::Reciprocal)
DSM_UNARY_FUNCTION(tanh, fn::Tanh)
DSM_UNARY_FUNCTION(sigmoid, fn::Sigmoid)
DSM_UNARY_FUNCTION(relu, fn::Relu)
DSM_UNARY_FUNCTION(silu, fn::Silu)
DSM_UNARY_FUNCTION(gelu, fn::Gelu)
DSM_UNARY_FUNCTION(gelu_tanh, fn::GeluTanh)
#undef DSM_UNARY_FUNCTION

/// max(x, 0) + slope * min(x, 0).
template <Expression A>
auto leaky_relu(A&& a, double slope = 0.01) {
  return UnaryNode<fn::LeakyRelu, A>{fn::LeakyRelu{slope}, std::forward<A>(a)};
}
/// log(1 + exp(beta x)) / beta, and x itself where beta x > threshold.
template <Expression A>
auto softplus(A&& a, double beta = 1.0, double threshold = 20.0) {
  return UnaryNode<fn::Softplus, A>{fn::Softplus{beta, threshold}, std::forward<A>(a)};
}
/// Limits values to [lo, hi]. Requires lo <= hi.
template <Expression A>
auto clamp(A&& a, double lo, double hi) {
  if (lo > hi) fail<config_error>("clamp", "lower bound ", lo, " exceeds upper bound ", hi);
  return UnaryNode<fn::Clamp, A>{fn::Clamp{lo, hi}, std::forward<A>(a)};
}
/// Converts to element type U inside the tree.
template <Scalar U, Expression A>
auto cast(A&& a) {
  return UnaryNode<fn::Cast<U>, A>{fn::Cast<U>{}, std::forward<A>(a)};
}
/// cond ? a : b elementwise, with broadcasting; cond must be a bool expression, a and b
/// expressions or numbers (at least one an expression).
template <Expression C, class A, class B>
  requires(Expression<A> || Expression<B>) && (Expression<A> || Number<A>) && (Expression<B> || Number<B>)
auto where(C&& cond, A&& a, B&& b) {
  static_assert(std::is_same_v<detail::value_of<C>, bool>, "where: the condition must be a bool expression (e.g. x > 0.f)");
  if constexpr (Number<A>) {
    using S = ScalarNode<detail::value_of<B>>;
    return TernaryNode<fn::Where, C, S, B>{{}, std::forward<C>(cond), S{static_cast<compute_t<detail::value_of<B>>>(a)}, std::forward<B>(b)};
  } else if constexpr (Number<B>) {
    using S = ScalarNode<detail::value_of<A>>;
    return TernaryNode<fn::Where, C, A, S>{{}, std::forward<C>(cond), std::forward<A>(a), S{static_cast<compute_t<detail::value_of<A>>>(b)}};
  } else {
    static_assert(std::is_same_v<compute_t<detail::value_of<A>>, compute_t<detail::value_of<B>>>, "where: both branches must have the same element type");
    return TernaryNode<fn::Where, C, A, B>{{}, std::forward<C>(cond), std::forward<A>(a), std::forward<B>(b)};
  }
}

}  // namespace dsm
