// dsm/autograd/fused.hpp: an elementwise expression over Vars becomes ONE graph node.
//
// Recording copies the tree with every leaf replaced by its value tensor (a handle, no data
// copy), so that the node owns what it needs. The backward of leaf i is derived at compile time
// by the chain rule along the path from the root to that leaf: the upstream gradient times each
// functor's local partial (fn::Derivative / DerivativeLeft / DerivativeRight below), where every
// partial re-evaluates its operands from the saved leaves instead of storing intermediates. All
// leaves' gradients are written in a single pass when they have the output's shape; a leaf that
// was broadcast gets its gradient summed over the broadcast dimensions.
//
//   Var y = relu(a * b + c);   // one node "relu(mul(...))"; backward reads g, a, b, c once and
//                              // writes da, db, dc in the same loop
#pragma once

#include <array>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../core/detail/strided_loop.hpp"
#include "../ops/reduce.hpp"
#include "graph.hpp"
#include "var.hpp"

namespace dsm {
namespace fn {
/// f'(x) of a unary functor, as a functor of x.
template <class F>
struct Derivative {
  static constexpr const char* name = "derivative";
  F f;
  template <class T>
  DSM_HOST_DEVICE T operator()(T x) const { return f.d(x, f(x)); }
};
/// df/da of a binary functor, as a functor of (a, b).
template <class F>
struct DerivativeLeft {
  static constexpr const char* name = "derivative_left";
  F f;
  template <class T>
  DSM_HOST_DEVICE T operator()(T a, T b) const { return f.dl(a, b); }
};
/// df/db of a binary functor.
template <class F>
struct DerivativeRight {
  static constexpr const char* name = "derivative_right";
  F f;
  template <class T>
  DSM_HOST_DEVICE T operator()(T a, T b) const { return f.dr(a, b); }
};
}  // namespace fn

namespace autograd::detail {

template <class F>
constexpr bool is_differentiable() {
  if constexpr (requires { F::differentiable; }) return F::differentiable;
  else return true;
}
template <class F>
inline constexpr bool differentiable_v = is_differentiable<F>();

// ---- the stored tree: Vars replaced by their value tensors -------------------------------------

template <class E>
struct stored;
template <class T, class B>
struct stored<Tensor<T, B>> { using type = Tensor<T, B>; };
template <class T, class B>
struct stored<Var<T, B>> { using type = Tensor<T, B>; };
template <class T>
struct stored<ScalarNode<T>> { using type = ScalarNode<T>; };
template <class F, class A>
struct stored<UnaryNode<F, A>> { using type = UnaryNode<F, typename stored<std::remove_cvref_t<A>>::type>; };
template <class F, class A, class B>
struct stored<BinaryNode<F, A, B>> {
  using type = BinaryNode<F, typename stored<std::remove_cvref_t<A>>::type, typename stored<std::remove_cvref_t<B>>::type>;
};
template <class F, class A, class B, class C>
struct stored<TernaryNode<F, A, B, C>> {
  using type = TernaryNode<F, typename stored<std::remove_cvref_t<A>>::type, typename stored<std::remove_cvref_t<B>>::type,
                           typename stored<std::remove_cvref_t<C>>::type>;
};
template <class E>
using stored_t = typename stored<std::remove_cvref_t<E>>::type;

/// Builds the stored copy of `e`, writing each leaf's edge (null for tensors and for Vars that
/// need no gradient) into `edges` in leaf order, the order evaluators number leaves in.
template <class E, std::size_t N>
stored_t<E> store(const E& e, std::array<Edge, N>& edges, int& next) {
  using X = std::remove_cvref_t<E>;
  if constexpr (dsm::detail::is_tensor<X>::value) {
    ++next;
    return e;
  } else if constexpr (dsm::detail::is_var<X>::value) {
    if (e.requires_grad()) edges[static_cast<std::size_t>(next)] = e.impl();
    ++next;
    return e.value();
  } else if constexpr (X::leaf_count == 0) {
    return e;
  } else if constexpr (requires { e.c; }) {
    auto a = store(e.a, edges, next);
    auto b = store(e.b, edges, next);
    auto c = store(e.c, edges, next);
    return stored_t<E>{e.f, std::move(a), std::move(b), std::move(c)};
  } else if constexpr (requires { e.b; }) {
    auto a = store(e.a, edges, next);
    auto b = store(e.b, edges, next);
    return stored_t<E>{e.f, std::move(a), std::move(b)};
  } else {
    return stored_t<E>{e.f, store(e.a, edges, next)};
  }
}

// ---- leaf types ---------------------------------------------------------------------------------

/// The tensor type of leaf I of a stored tree.
template <class E, int I>
struct leaf_type;
template <class T, class B, int I>
struct leaf_type<Tensor<T, B>, I> { using type = Tensor<T, B>; };
template <class F, class A, int I>
struct leaf_type<UnaryNode<F, A>, I> : leaf_type<std::remove_cvref_t<A>, I> {};
template <class F, class A, class Bn, int I>
struct leaf_type<BinaryNode<F, A, Bn>, I>
    : std::conditional_t<(I < leaf_count_v<A>), leaf_type<std::remove_cvref_t<A>, I>, leaf_type<std::remove_cvref_t<Bn>, I - leaf_count_v<A>>> {};
template <class F, class A, class Bn, class C, int I>
struct leaf_type<TernaryNode<F, A, Bn, C>, I>
    : std::conditional_t<(I < leaf_count_v<A>), leaf_type<std::remove_cvref_t<A>, I>,
                         std::conditional_t<(I < leaf_count_v<A> + leaf_count_v<Bn>), leaf_type<std::remove_cvref_t<Bn>, I - leaf_count_v<A>>,
                                            leaf_type<std::remove_cvref_t<C>, I - leaf_count_v<A> - leaf_count_v<Bn>>>> {};
// (std::conditional_t names both branches but instantiates only the chosen one.)

// ---- the chain rule, at compile time -------------------------------------------------------------

/// Marks a leaf that no gradient reaches (it only feeds a comparison or a where condition).
struct NoGradient {};

// Declared up front: each overload recurses into the others.
template <int I, class T, class B, class Up>
Up gradient_of(const Tensor<T, B>&, Up up);
template <int I, class F, class A, class Up>
auto gradient_of(const UnaryNode<F, A>& n, Up up);
template <int I, class F, class A, class Bn, class Up>
auto gradient_of(const BinaryNode<F, A, Bn>& n, Up up);
template <int I, class C, class A, class Bn, class Up>
auto gradient_of(const TernaryNode<fn::Where, C, A, Bn>& n, Up up);

/// The gradient of leaf I of `node` given the upstream expression `up` (same shape as the node's
/// value). Intermediate nodes are referenced, so `node` must outlive the result.
template <int I, class T, class B, class Up>
Up gradient_of(const Tensor<T, B>&, Up up) {
  static_assert(I == 0, "leaf index out of range");
  return up;
}

template <int I, class F, class A, class Up>
auto gradient_of(const UnaryNode<F, A>& n, Up up) {
  using Arg = std::remove_cvref_t<A>;
  if constexpr (!differentiable_v<F>) {
    return NoGradient{};
  } else if constexpr (requires { typename F::to; }) {  // cast: the gradient converts back
    using Back = UnaryNode<fn::Cast<typename Arg::value_type>, Up>;
    return gradient_of<I>(n.a, Back{{}, std::move(up)});
  } else {
    using Local = UnaryNode<fn::Derivative<F>, const Arg&>;
    using Chain = BinaryNode<fn::Mul, Up, Local>;
    return gradient_of<I>(n.a, Chain{{}, std::move(up), Local{{n.f}, n.a}});
  }
}

template <int I, class F, class A, class Bn, class Up>
auto gradient_of(const BinaryNode<F, A, Bn>& n, Up up) {
  using L = std::remove_cvref_t<A>;
  using R = std::remove_cvref_t<Bn>;
  constexpr int NA = leaf_count_v<L>;
  if constexpr (!differentiable_v<F>) {
    return NoGradient{};
  } else if constexpr (I < NA) {
    using Local = BinaryNode<fn::DerivativeLeft<F>, const L&, const R&>;
    using Chain = BinaryNode<fn::Mul, Up, Local>;
    return gradient_of<I>(n.a, Chain{{}, std::move(up), Local{{n.f}, n.a, n.b}});
  } else {
    using Local = BinaryNode<fn::DerivativeRight<F>, const L&, const R&>;
    using Chain = BinaryNode<fn::Mul, Up, Local>;
    return gradient_of<I - NA>(n.b, Chain{{}, std::move(up), Local{{n.f}, n.a, n.b}});
  }
}

template <int I, class C, class A, class Bn, class Up>
auto gradient_of(const TernaryNode<fn::Where, C, A, Bn>& n, Up up) {
  using Cond = std::remove_cvref_t<C>;
  constexpr int NC = leaf_count_v<Cond>, NA = leaf_count_v<A>;
  using V = typename std::remove_cvref_t<Up>::value_type;
  using Zero = ScalarNode<V>;
  if constexpr (I < NC) {
    return NoGradient{};
  } else if constexpr (I < NC + NA) {  // the true branch: where(cond, up, 0)
    return gradient_of<I - NC>(n.b, TernaryNode<fn::Where, const Cond&, Up, Zero>{{}, n.a, std::move(up), Zero{0}});
  } else {
    return gradient_of<I - NC - NA>(n.c, TernaryNode<fn::Where, const Cond&, Zero, Up>{{}, n.a, Zero{0}, std::move(up)});
  }
}

template <class S, int I, class Up>
using gradient_t = decltype(gradient_of<I>(std::declval<const S&>(), std::declval<Up>()));

template <class S, int I, class Up>
inline constexpr bool reaches_v = !std::is_same_v<gradient_t<S, I, Up>, NoGradient>;

/// The leaves of S that the gradient reaches, as an integer_sequence.
template <class... Seqs>
struct concat_seq;
template <>
struct concat_seq<> {
  using type = std::integer_sequence<int>;
};
template <int... a>
struct concat_seq<std::integer_sequence<int, a...>> {
  using type = std::integer_sequence<int, a...>;
};
template <int... a, int... b, class... Rest>
struct concat_seq<std::integer_sequence<int, a...>, std::integer_sequence<int, b...>, Rest...>
    : concat_seq<std::integer_sequence<int, a..., b...>, Rest...> {};

template <class S, class Up, class Seq>
struct reaching;
template <class S, class Up, int... i>
struct reaching<S, Up, std::integer_sequence<int, i...>>
    : concat_seq<std::conditional_t<reaches_v<S, i, Up>, std::integer_sequence<int, i>, std::integer_sequence<int>>...> {};
template <class S, class Up>
using reaching_t = typename reaching<S, Up, std::make_integer_sequence<int, leaf_count_v<S>>>::type;

/// Evaluates several same-shape expressions into fresh contiguous tensors in one pass.
template <class B, class... Outs, class... Es>
void evaluate_together(const Shape& shape, std::tuple<Outs*...> outs, const std::tuple<Es...>& exprs) {
  constexpr int K = sizeof...(Outs);
  constexpr int L = (leaf_count_v<Es> + ... + 0);
  std::array<dsm::detail::LeafLayout, L> leaves{};
  std::size_t slot = 0;
  std::apply([&](const auto&... e) {
    ([&] {
       for (const auto& leaf : dsm::detail::leaf_layouts(e)) leaves[slot++] = leaf;
     }(), ...);
  }, exprs);
  const auto plan = dsm::detail::plan_together<K, L>(shape, leaves);
  int next = 0;
  // Braced initialization evaluates left to right, so leaf slots are numbered in order.
  const auto evs = std::apply([&](const auto&... e) { return std::tuple{expr_access<std::remove_cvref_t<decltype(e)>>::evaluator(e, next)...}; }, exprs);
  const auto dst = std::apply([](auto*... t) { return std::make_tuple(t->data()...); }, outs);
  dsm::detail::run_loop_plan<B>(plan, [=](const std::array<std::int64_t, K + L>& off, std::int64_t n, const std::array<std::int64_t, K + L>& st) {
    auto local = evs;
    std::apply([&](auto&... ev) { (ev.seek(off.data() + K, st.data() + K), ...); }, local);
    bool unit = true;
    for (int i = K; i < K + L; ++i) unit = unit && st[static_cast<std::size_t>(i)] == 1;
    [&]<std::size_t... k>(std::index_sequence<k...>) {
      auto o = std::make_tuple((std::get<k>(dst) + off[k])...);
      if (unit) {
        DSM_SIMD for (std::int64_t j = 0; j < n; ++j) {
          ((std::get<k>(o)[j] = convert<std::remove_pointer_t<std::tuple_element_t<k, decltype(dst)>>>(std::get<k>(local).load_unit(j))), ...);
        }
      } else {
        for (std::int64_t j = 0; j < n; ++j) {
          ((std::get<k>(o)[j] = convert<std::remove_pointer_t<std::tuple_element_t<k, decltype(dst)>>>(std::get<k>(local).load(j))), ...);
        }
      }
    }(std::index_sequence_for<Outs...>{});
  });
}

/// Sums a gradient computed at the output's shape down to the shape of a broadcast input; a
/// gradient already of that shape is returned as it is, so a caller that hands over its only
/// handle (std::move) lets the input's accumulate() keep it without a copy.
template <class T, class B>
Tensor<T, B> sum_to(Tensor<T, B> g, const Shape& to) {
  if (g.shape() == to) return g;
  const int lead = g.rank() - to.rank();
  Shape dims;
  for (int d = 0; d < g.rank(); ++d)
    if (d < lead || (to[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  return sum(g, dims, true).reshape(to);
}

/// The node of a fused expression whose stored tree has type S.
template <class S, class Out>
class FusedNode final : public Node {
 public:
  static constexpr int N = leaf_count_v<S>;
  using OutT = typename Out::value_type;
  using OutB = typename Out::backend_type;

  FusedNode(S tree, const std::array<Edge, static_cast<std::size_t>(N)>& edges) : Node("fused elementwise"), tree_(std::move(tree)) {
    inputs.assign(edges.begin(), edges.end());
  }

  void apply(VarImplBase& output) override { run(impl_cast<OutT, OutB>(output).grad, reaching_t<S, Up>{}); }

 protected:
  void release_saved() override { tree_ = S{}; }

 private:
  using Up = const Tensor<OutT, OutB>&;

  /// Every leaf the gradient reaches is written in ONE pass at the output's shape (the leaves'
  /// shared intermediates are recomputed, not stored); broadcast leaves are then summed down.
  /// One evaluation path per expression keeps the instantiations, and compile time, in check.
  template <int... i>
  void run(const Tensor<OutT, OutB>& g, std::integer_sequence<int, i...>) {
    if constexpr (sizeof...(i) > 0) {
      if (!(static_cast<bool>(inputs[static_cast<std::size_t>(i)]) || ...)) return;
      const Shape& shape = g.shape();
      std::tuple<typename leaf_type<S, i>::type...> grads{typename leaf_type<S, i>::type(shape)...};
      [&]<std::size_t... pos>(std::index_sequence<pos...>) {  // pos: place in grads of leaf i
        evaluate_together<OutB>(shape, std::make_tuple(&std::get<pos>(grads)...), std::make_tuple(gradient_of<i>(tree_, Up(g))...));
        (accumulate_leaf<i>(std::move(std::get<pos>(grads))), ...);
      }(std::make_index_sequence<sizeof...(i)>{});
    }
  }

  template <int I, class G>
  void accumulate_leaf(G grad) {
    const Edge& edge = inputs[static_cast<std::size_t>(I)];
    if (!edge) return;
    using Leaf = typename leaf_type<S, I>::type;
    // Handed over alone, a fresh gradient becomes the leaf's .grad as it is; a second handle on
    // it would make accumulate() copy it (three 64 MB copies in each W2 step).
    accumulate_input(edge, sum_to(std::move(grad), impl_cast<typename Leaf::value_type, typename Leaf::backend_type>(*edge).value.shape()));
  }

  S tree_;
};

/// Records the node of `expr`, whose value has been computed into `value`.
template <class T, class B, class E>
std::shared_ptr<VarImpl<T, B>> record_fused(Tensor<T, B> value, const E& expr) {
  auto out = std::make_shared<VarImpl<T, B>>(std::move(value));
  if (!is_grad_enabled()) return out;
  constexpr int N = leaf_count_v<E>;
  std::array<Edge, static_cast<std::size_t>(N)> edges{};
  int next = 0;
  auto tree = store(expr, edges, next);
  bool any = false;
  for (const Edge& e : edges) any = any || e != nullptr;
  if (!any) return out;
  out->requires_grad = true;
  out->grad_fn = make_node<FusedNode<stored_t<E>, Tensor<T, B>>>(std::move(tree), edges);
  return out;
}

}  // namespace autograd::detail

template <FloatingScalar T, class B>
template <Expression E>
  requires detail::has_variable<std::remove_cvref_t<E>>::value
Var<T, B>::Var(const E& expr) {
  static_assert(std::is_same_v<T, typename std::remove_cvref_t<E>::value_type>,
                "the expression's element type differs from the Var's: convert it with dsm::cast<T>(expr)");
  impl_ = autograd::detail::record_fused(Tensor<T, B>(expr), expr);
}

}  // namespace dsm
