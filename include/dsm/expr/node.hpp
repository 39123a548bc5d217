// dsm/expr/node.hpp: expression nodes (what to compute) and their evaluators (how, per element).
//
// A node holds its functor and operands: named operands (lvalues) by const reference, temporaries
// by value, so a tree built in one statement never dangles. A node does no work. Evaluation
// turns the tree into an evaluator: a trivially copyable mirror of the tree whose leaves hold a
// data pointer and one stride, which a CPU loop or a CUDA kernel calls per element.
//
//   auto e = relu(a * b + c);            // BinaryNode / UnaryNode tree, nothing computed
//   dsm::Tensor<float> y = e;            // one pass over memory (dsm/expr/assign.hpp)
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "../core/concepts.hpp"
#include "../core/dtype.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"
#include "functors.hpp"

namespace dsm {

namespace detail {
/// Named operands are stored by reference, temporaries by value.
template <class E>
using closure_t = std::conditional_t<std::is_lvalue_reference_v<E>, const std::remove_reference_t<E>&, std::remove_cvref_t<E>>;

template <class E>
struct is_tensor : std::false_type {};
template <class T, class B>
struct is_tensor<Tensor<T, B>> : std::true_type {};
}  // namespace detail

// ---- evaluators --------------------------------------------------------------------------------

/// Reads one tensor: `row` points at the current row, `stride` steps along it.
template <class T>
struct LeafEval {
  const T* base;
  const T* row;
  std::int64_t stride;
  int index;  // position of this leaf among the tree's leaves (offset slot)

  DSM_HOST_DEVICE void seek(const std::int64_t* off, const std::int64_t* st) {
    row = base + off[index];
    stride = st[index];
  }
  DSM_HOST_DEVICE compute_t<T> load(std::int64_t j) const { return static_cast<compute_t<T>>(row[j * stride]); }
  DSM_HOST_DEVICE compute_t<T> load_unit(std::int64_t j) const { return static_cast<compute_t<T>>(row[j]); }
};

template <class C>
struct ScalarEval {
  C value;
  DSM_HOST_DEVICE void seek(const std::int64_t*, const std::int64_t*) {}
  DSM_HOST_DEVICE C load(std::int64_t) const { return value; }
  DSM_HOST_DEVICE C load_unit(std::int64_t) const { return value; }
};

template <class F, class A>
struct UnaryEval {
  F f;
  A a;
  DSM_HOST_DEVICE void seek(const std::int64_t* off, const std::int64_t* st) { a.seek(off, st); }
  DSM_HOST_DEVICE auto load(std::int64_t j) const { return f(a.load(j)); }
  DSM_HOST_DEVICE auto load_unit(std::int64_t j) const { return f(a.load_unit(j)); }
};

template <class F, class A, class B>
struct BinaryEval {
  F f;
  A a;
  B b;
  DSM_HOST_DEVICE void seek(const std::int64_t* off, const std::int64_t* st) {
    a.seek(off, st);
    b.seek(off, st);
  }
  DSM_HOST_DEVICE auto load(std::int64_t j) const { return f(a.load(j), b.load(j)); }
  DSM_HOST_DEVICE auto load_unit(std::int64_t j) const { return f(a.load_unit(j), b.load_unit(j)); }
};

template <class F, class A, class B, class C>
struct TernaryEval {
  F f;
  A a;
  B b;
  C c;
  DSM_HOST_DEVICE void seek(const std::int64_t* off, const std::int64_t* st) {
    a.seek(off, st);
    b.seek(off, st);
    c.seek(off, st);
  }
  DSM_HOST_DEVICE auto load(std::int64_t j) const { return f(a.load(j), b.load(j), c.load(j)); }
  DSM_HOST_DEVICE auto load_unit(std::int64_t j) const { return f(a.load_unit(j), b.load_unit(j), c.load_unit(j)); }
};

// ---- uniform access to leaves and nodes --------------------------------------------------------

/// How evaluation sees an operand: tensors are leaves, nodes recurse into their operands.
template <class E>
struct expr_access {
  static constexpr int leaves = E::leaf_count;
  static auto evaluator(const E& e, int& next) { return e.evaluator(next); }
  template <class Visit>
  static void for_each_leaf(const E& e, Visit&& v) { e.for_each_leaf(v); }
};
template <class T, class B>
struct expr_access<Tensor<T, B>> {
  static constexpr int leaves = 1;
  static LeafEval<T> evaluator(const Tensor<T, B>& t, int& next) { return {t.data(), t.data(), 0, next++}; }
  template <class Visit>
  static void for_each_leaf(const Tensor<T, B>& t, Visit&& v) { v(t); }
};

template <class E>
inline constexpr int leaf_count_v = expr_access<std::remove_cvref_t<E>>::leaves;

/// The backend of an expression: that of its tensor leaves (cpu when it has none).
template <class E, class = void>
struct expr_backend {
  using type = cpu;
  static constexpr bool known = false;
};
template <class E>
struct expr_backend<E, std::void_t<typename E::backend_type>> {
  using type = typename E::backend_type;
  static constexpr bool known = true;
};

// ---- nodes -------------------------------------------------------------------------------------

namespace detail {
template <class...>
inline constexpr bool dependent_false = false;
}  // namespace detail

/// Members a Var or a Tensor has and a lazy tree does not (backward, item, value, grad). After
/// `auto loss = a + b;` the name holds the unevaluated tree, and `loss.backward()` then says so
/// instead of "has no member named 'backward'".
#define DSM_LAZY_EXPRESSION_HAS_NO(member)                                                                                       \
  template <class... Args>                                                                                                        \
  void member(Args&&...) const {                                                                                                  \
    static_assert(detail::dependent_false<Args...>, "this is an unevaluated expression, not a Var or a Tensor (auto keeps the " \
                                                    "lazy tree): store it first, as in dsm::Var<float> loss = a + b;");          \
  }

/// A constant broadcast to any shape; it takes the element type of the expression it joins.
template <class T>
struct [[nodiscard]] ScalarNode {
  using value_type = T;
  static constexpr bool is_expression = true;
  static constexpr int leaf_count = 0;
  compute_t<T> value;

  Shape shape() const { return {}; }
  ScalarEval<compute_t<T>> evaluator(int&) const { return {value}; }
  template <class Visit>
  void for_each_leaf(Visit&&) const {}
};

namespace detail {
template <class F, class C>
using unary_result_t = std::remove_cvref_t<decltype(std::declval<F>()(std::declval<C>()))>;
/// Storage type produced by a functor: bool for predicates, U for Cast<U>, else the operand type.
template <class F, class T>
struct node_value { using type = T; };
template <class F, class T>
  requires requires { F::predicate; }
struct node_value<F, T> { using type = bool; };
template <class U, class T>
struct node_value<fn::Cast<U>, T> { using type = U; };
}  // namespace detail

template <class F, class A>
struct [[nodiscard]] UnaryNode {
  using arg_type = std::remove_cvref_t<A>;
  using value_type = typename detail::node_value<F, typename arg_type::value_type>::type;
  using backend_type = typename expr_backend<arg_type>::type;
  static constexpr bool is_expression = true;
  static constexpr int leaf_count = leaf_count_v<A>;

  F f;
  detail::closure_t<A> a;

  Shape shape() const { return a.shape(); }
  auto evaluator(int& next) const {
    auto ea = expr_access<arg_type>::evaluator(a, next);
    return UnaryEval<F, decltype(ea)>{f, ea};
  }
  template <class Visit>
  void for_each_leaf(Visit&& v) const { expr_access<arg_type>::for_each_leaf(a, v); }
  DSM_LAZY_EXPRESSION_HAS_NO(backward)
  DSM_LAZY_EXPRESSION_HAS_NO(item)
  DSM_LAZY_EXPRESSION_HAS_NO(value)
  DSM_LAZY_EXPRESSION_HAS_NO(grad)
};

template <class F, class A, class B>
struct [[nodiscard]] BinaryNode {
  using left_type = std::remove_cvref_t<A>;
  using right_type = std::remove_cvref_t<B>;
  static_assert(std::is_same_v<compute_t<typename left_type::value_type>, compute_t<typename right_type::value_type>>,
                "operands of an elementwise operation must have the same element type: convert one with dsm::cast<T>(x)");
  using value_type = typename detail::node_value<F, typename left_type::value_type>::type;
  // The left operand's backend, unless it is a scalar (which has none).
  using backend_type = typename expr_backend<std::conditional_t<expr_backend<left_type>::known, left_type, right_type>>::type;
  static constexpr bool is_expression = true;
  static constexpr int leaf_count = leaf_count_v<A> + leaf_count_v<B>;

  F f;
  detail::closure_t<A> a;
  detail::closure_t<B> b;

  Shape shape() const { return broadcast_shapes(F::name, a.shape(), b.shape()); }
  auto evaluator(int& next) const {
    auto ea = expr_access<left_type>::evaluator(a, next);
    auto eb = expr_access<right_type>::evaluator(b, next);
    return BinaryEval<F, decltype(ea), decltype(eb)>{f, ea, eb};
  }
  template <class Visit>
  void for_each_leaf(Visit&& v) const {
    expr_access<left_type>::for_each_leaf(a, v);
    expr_access<right_type>::for_each_leaf(b, v);
  }
  DSM_LAZY_EXPRESSION_HAS_NO(backward)
  DSM_LAZY_EXPRESSION_HAS_NO(item)
  DSM_LAZY_EXPRESSION_HAS_NO(value)
  DSM_LAZY_EXPRESSION_HAS_NO(grad)
};

template <class F, class A, class B, class C>
struct [[nodiscard]] TernaryNode {
  using a_type = std::remove_cvref_t<A>;
  using b_type = std::remove_cvref_t<B>;
  using c_type = std::remove_cvref_t<C>;
  using value_type = typename b_type::value_type;
  using backend_type = typename expr_backend<
      std::conditional_t<expr_backend<b_type>::known, b_type, std::conditional_t<expr_backend<c_type>::known, c_type, a_type>>>::type;
  static constexpr bool is_expression = true;
  static constexpr int leaf_count = leaf_count_v<A> + leaf_count_v<B> + leaf_count_v<C>;

  F f;
  detail::closure_t<A> a;
  detail::closure_t<B> b;
  detail::closure_t<C> c;

  Shape shape() const { return broadcast_shapes(F::name, broadcast_shapes(F::name, a.shape(), b.shape()), c.shape()); }
  auto evaluator(int& next) const {
    auto ea = expr_access<a_type>::evaluator(a, next);
    auto eb = expr_access<b_type>::evaluator(b, next);
    auto ec = expr_access<c_type>::evaluator(c, next);
    return TernaryEval<F, decltype(ea), decltype(eb), decltype(ec)>{f, ea, eb, ec};
  }
  template <class Visit>
  void for_each_leaf(Visit&& v) const {
    expr_access<a_type>::for_each_leaf(a, v);
    expr_access<b_type>::for_each_leaf(b, v);
    expr_access<c_type>::for_each_leaf(c, v);
  }
  DSM_LAZY_EXPRESSION_HAS_NO(backward)
  DSM_LAZY_EXPRESSION_HAS_NO(item)
  DSM_LAZY_EXPRESSION_HAS_NO(value)
  DSM_LAZY_EXPRESSION_HAS_NO(grad)
};

namespace detail {
template <class F, class A>
struct has_variable<UnaryNode<F, A>> : has_variable<std::remove_cvref_t<A>> {};
template <class F, class A, class B>
struct has_variable<BinaryNode<F, A, B>>
    : std::bool_constant<has_variable<std::remove_cvref_t<A>>::value || has_variable<std::remove_cvref_t<B>>::value> {};
template <class F, class A, class B, class C>
struct has_variable<TernaryNode<F, A, B, C>>
    : std::bool_constant<has_variable<std::remove_cvref_t<A>>::value || has_variable<std::remove_cvref_t<B>>::value ||
                         has_variable<std::remove_cvref_t<C>>::value> {};
}  // namespace detail

}  // namespace dsm

#undef DSM_LAZY_EXPRESSION_HAS_NO
