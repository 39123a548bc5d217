// dsm/core/concepts.hpp: the concepts that guard the public API.
//
// They appear in `requires` clauses so that a misuse is reported at the caller's line:
//   template <dsm::Scalar T> void f(dsm::Tensor<T>);
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "dtype.hpp"

namespace dsm {

/// An element type a tensor can hold (float, double, bf16, f16, int8, uint8, int32, int64, bool).
template <class T>
concept Scalar = requires { dtype_traits<std::remove_cv_t<T>>::id; };

/// A floating-point element type.
template <class T>
concept FloatingScalar = Scalar<T> && dtype_traits<T>::is_floating;

namespace detail {
/// A loop body used only to probe the Backend concept (a lambda here trips nvcc's front end).
struct RangeProbe {
  void operator()(std::int64_t, std::int64_t) const {}
};
}  // namespace detail

/// A backend policy: memory, host copies, and a parallel loop over an index range.
/// `parallel_for(n, grain, f)` calls f(begin, end) on disjoint chunks covering [0, n).
template <class B>
concept Backend = requires(std::size_t bytes, void* p, const void* cp, std::int64_t n) {
  { B::name } -> std::convertible_to<const char*>;
  { B::allocate(bytes) } -> std::same_as<void*>;
  { B::deallocate(p, bytes) };
  { B::copy_bytes(p, cp, bytes) };
  { B::parallel_for(n, n, detail::RangeProbe{}) };
};

/// A lazy elementwise expression (see dsm/expr): it has a value type, a shape and an evaluator.
template <class E>
concept Expression = requires(const std::remove_cvref_t<E>& e) {
  typename std::remove_cvref_t<E>::value_type;
  requires std::remove_cvref_t<E>::is_expression;
  e.shape();
};

namespace detail {
/// True for expressions with an autograd variable among their leaves (specialized by the expr
/// and autograd layers); such expressions record a graph node when evaluated into a Var.
template <class E>
struct has_variable : std::false_type {};
}  // namespace detail

/// An expression over plain tensors only: tensor functions take these, and their autograd
/// overloads (dsm/autograd) take the expressions that contain a Var.
template <class E>
concept TensorExpression = Expression<E> && !detail::has_variable<std::remove_cvref_t<E>>::value;

}  // namespace dsm
