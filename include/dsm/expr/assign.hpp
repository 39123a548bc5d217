// dsm/expr/assign.hpp: evaluating an expression tree in one pass over memory.
//
// `Tensor<float> y = expr;` allocates and evaluates; `out = expr`, `out += expr` (and -=, *=, /=)
// write into out's existing elements, broadcasting the expression to out's shape. Inputs may be
// strided or broadcast views. When an input overlaps `out` in a way an elementwise pass cannot
// tolerate (e.g. `x = x.transpose(0, 1) + 1`), the expression is first evaluated into a temporary.
#pragma once

#include <array>

#include "../core/tensor.hpp"
#include "node.hpp"

#if defined(_OPENMP)
#define DSM_SIMD _Pragma("omp simd")
#define DSM_PRAGMA(text) _Pragma(#text)
// A vector reduction (op: +, max...): without the clause compilers keep float reductions scalar,
// since vector lanes sum in another order.
#define DSM_SIMD_REDUCE(op, var) DSM_PRAGMA(omp simd reduction(op : var))
#else
#define DSM_SIMD
#define DSM_SIMD_REDUCE(op, var)
#endif

namespace dsm {
namespace detail {

enum class AssignOp { set, add, sub, mul, div };

template <AssignOp Op, class T, class V>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE void apply_assign(T& o, V v) {
  if constexpr (Op == AssignOp::set) o = convert<T>(v);
  else if constexpr (Op == AssignOp::add) o = convert<T>(static_cast<compute_t<T>>(o) + v);
  else if constexpr (Op == AssignOp::sub) o = convert<T>(static_cast<compute_t<T>>(o) - v);
  else if constexpr (Op == AssignOp::mul) o = convert<T>(static_cast<compute_t<T>>(o) * v);
  else o = convert<T>(static_cast<compute_t<T>>(o) / v);
}

/// Where an elementwise pass finds one input: the planning below needs no more of it, so it is
/// compiled per operand count, not per expression.
struct LeafLayout {
  const void* storage;
  std::int64_t offset;
  const Shape* shape;
  const Strides* strides;
};

/// The layouts of e's tensor leaves, in evaluator order.
template <class E>
std::array<LeafLayout, leaf_count_v<E>> leaf_layouts(const E& e) {
  std::array<LeafLayout, leaf_count_v<E>> leaves{};
  std::size_t k = 0;
  expr_access<E>::for_each_leaf(e, [&](const auto& leaf) {
    leaves[k++] = {static_cast<const void*>(leaf.storage().get()), leaf.offset(), &leaf.shape(), &leaf.strides()};
  });
  return leaves;
}

/// Strides for a pass over `shape` with K outputs (slots 0..K-1, left for the caller) and the L
/// leaves after them, broadcast to `shape`.
template <int K, int L>
std::array<Strides, K + L> leaf_strides(const Shape& shape, const std::array<LeafLayout, L>& leaves) {
  std::array<Strides, K + L> strides;
  for (std::size_t l = 0; l < static_cast<std::size_t>(L); ++l) strides[K + l] = broadcast_strides(*leaves[l].shape, *leaves[l].strides, shape);
  return strides;
}

/// The plan of a pass writing K fresh contiguous outputs of `shape` from L leaves.
template <int K, int L>
LoopPlan<K + L> plan_together(const Shape& shape, const std::array<LeafLayout, L>& leaves) {
  auto strides = leaf_strides<K, L>(shape, leaves);
  const Strides dense = contiguous_strides(shape);
  for (std::size_t k = 0; k < static_cast<std::size_t>(K); ++k) strides[k] = dense;
  return make_loop_plan<K + L>(shape, strides);
}

enum class AssignPlan { run, empty, overlap };

/// Checks that an expression of shape `es` may be written to out (its shape, strides, storage and
/// offset) and plans the pass. `overlap`: an input shares out's storage without reading exactly the
/// element being written, so the expression must go through a temporary.
template <int N>
AssignPlan plan_assignment(const Shape& es, const Shape& out_shape, const Strides& out_strides, const void* out_storage, std::int64_t out_offset,
                           const std::array<LeafLayout, N>& leaves, LoopPlan<N + 1>& plan) {
  if (!broadcasts_to(es, out_shape))
    fail<shape_error>("assign", "expression of shape ", es, " cannot be written to a tensor of shape ", out_shape);
  for (int d = 0; d < out_shape.rank(); ++d)
    if (out_strides[d] == 0 && out_shape[d] > 1)
      fail<shape_error>("assign", "cannot write into an expanded view (dimension ", d, " has stride 0)");
  if (out_shape.numel() == 0) return AssignPlan::empty;
  auto strides = leaf_strides<1, N>(out_shape, leaves);
  strides[0] = out_strides;
  for (std::size_t k = 0; k < static_cast<std::size_t>(N); ++k)
    if (leaves[k].storage == out_storage && (leaves[k].offset != out_offset || !(strides[k + 1] == out_strides))) return AssignPlan::overlap;
  plan = make_loop_plan<N + 1>(out_shape, strides);
  return AssignPlan::run;
}

/// One row of an assignment, o[j] (op)= the expression at j; unit-stride rows are vectorized. A
/// named type rather than a lambda so that both evaluation paths below share its compiled code.
template <AssignOp Op, class T, class Ev, int N>
struct AssignRow {
  Ev ev;
  T* dst;

  void operator()(const std::array<std::int64_t, N + 1>& off, std::int64_t n, const std::array<std::int64_t, N + 1>& st) const {
    auto local = ev;
    local.seek(off.data() + 1, st.data() + 1);
    T* DSM_RESTRICT o = dst + off[0];
    bool unit = st[0] == 1;
    for (int i = 1; i <= N; ++i) unit = unit && st[static_cast<std::size_t>(i)] == 1;
    if (unit) {
      DSM_SIMD for (std::int64_t j = 0; j < n; ++j) apply_assign<Op>(o[j], local.load_unit(j));
    } else {
      for (std::int64_t j = 0; j < n; ++j) apply_assign<Op>(o[j * st[0]], local.load(j));
    }
  }
};

/// Evaluates `e` into `out` (combining with Op). The heart of the expression layer.
template <AssignOp Op, class T, class B, class E>
void assign_expression(const Tensor<T, B>& out, const E& e) {
  using Ex = std::remove_cvref_t<E>;
  constexpr int N = leaf_count_v<Ex>;
  LoopPlan<N + 1> plan;
  const AssignPlan how = plan_assignment<N>(e.shape(), out.shape(), out.strides(), static_cast<const void*>(out.storage().get()), out.offset(),
                                            leaf_layouts(e), plan);
  if (how == AssignPlan::empty) return;
  if (how == AssignPlan::overlap) {
    const Tensor<typename Ex::value_type, B> tmp(e);
    assign_expression<Op>(out, tmp);
    return;
  }

  int next = 0;
  const auto ev = expr_access<Ex>::evaluator(e, next);
  run_loop_plan<B>(plan, AssignRow<Op, T, decltype(ev), N>{ev, out.data()});
}

/// Evaluates `e` into `out`, a fresh contiguous tensor of e's shape (Tensor(const E&)): no
/// broadcasting, no expanded view and no input can share its storage, so none of
/// assign_expression's checks or its overlap path are compiled for it.
template <class T, class B, class E>
void evaluate_fresh(const Tensor<T, B>& out, const E& e) {
  using Ex = std::remove_cvref_t<E>;
  constexpr int N = leaf_count_v<Ex>;
  if (out.numel() == 0) return;
  const auto plan = plan_together<1, N>(out.shape(), leaf_layouts(e));
  int next = 0;
  const auto ev = expr_access<Ex>::evaluator(e, next);
  run_loop_plan<B>(plan, AssignRow<AssignOp::set, T, decltype(ev), N>{ev, out.data()});
}

template <class T, class E>
constexpr void check_assignable() {
  static_assert(std::is_same_v<T, typename std::remove_cvref_t<E>::value_type>,
                "the expression's element type differs from the tensor's: convert it with dsm::cast<T>(expr)");
}

/// Lifts an arithmetic scalar to a ScalarNode of type T; passes expressions through.
template <class T, class X>
decltype(auto) as_operand(const X& x) {
  if constexpr (std::is_arithmetic_v<X>) return ScalarNode<T>{static_cast<compute_t<T>>(x)};
  else return (x);
}

}  // namespace detail

template <Scalar T, class B>
template <Expression E>
Tensor<T, B>::Tensor(const E& expr) : Tensor(expr.shape()) {
  detail::check_assignable<T, E>();
  detail::evaluate_fresh(*this, expr);
}

template <Scalar T, class B>
template <Expression E>
Tensor<T, B>& Tensor<T, B>::operator=(const E& expr) {
  detail::check_assignable<T, E>();
  if (!defined()) return *this = Tensor(expr);  // assigning to an undefined tensor allocates
  detail::assign_expression<detail::AssignOp::set>(*this, expr);
  return *this;
}

#define DSM_COMPOUND_ASSIGN(OP, TAG)                                                  \
  template <Scalar T, class B>                                                        \
  template <class E>                                                                  \
  Tensor<T, B>& Tensor<T, B>::operator OP(const E& rhs) {                             \
    static_assert(Expression<E> || std::is_arithmetic_v<E>, "compound assignment takes an expression or a number"); \
    const auto& operand = detail::as_operand<T>(rhs);                                 \
    detail::check_assignable<T, decltype(operand)>();                                 \
    detail::assign_expression<detail::AssignOp::TAG>(*this, operand);                 \
    return *this;                                                                     \
  }
DSM_COMPOUND_ASSIGN(+=, add)
DSM_COMPOUND_ASSIGN(-=, sub)
DSM_COMPOUND_ASSIGN(*=, mul)
DSM_COMPOUND_ASSIGN(/=, div)
#undef DSM_COMPOUND_ASSIGN

/// Evaluates an expression into a new tensor of its element type and backend.
template <Expression E>
auto eval(const E& e) {
  using Ex = std::remove_cvref_t<E>;
  return Tensor<typename Ex::value_type, typename expr_backend<Ex>::type>(e);
}

}  // namespace dsm
