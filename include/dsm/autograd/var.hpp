// dsm/autograd/var.hpp: Var<T, B>, a tensor that records how it was computed.
//
// A Var is a handle (copies share the value, the gradient and the history). Elementwise
// expressions over Vars build the same lazy trees as over tensors; evaluating one into a Var
// records ONE graph node for the whole tree (dsm/autograd/fused.hpp). Other operations (matmul,
// reductions, softmax, indexing, views, joins) have Var overloads in dsm/autograd/functions/.
//
//   dsm::Var<float> w(dsm::Tensor<float>::randn({3, 3}), /*requires_grad=*/true);
//   dsm::Var<float> x(dsm::Tensor<float>::randn({3}));
//   dsm::Var<float> y = relu(x * 2.f + 1.f);      // one node
//   auto loss = dsm::sum(dsm::matmul(w, y));     // two more
//   loss.backward();                             // w.grad() now holds d loss / d w
//
// A Var's value is not modified in place by operations: `x = x * 2.f` computes a new Var and
// rebinds the handle `x` to it (the old value stays in the graph for backward).
#pragma once

#include <memory>
#include <utility>

#include "../core/concepts.hpp"
#include "../core/tensor.hpp"
#include "engine.hpp"
#include "graph.hpp"

namespace dsm {

template <FloatingScalar T, class B = cpu>
class Var {
 public:
  using value_type = T;
  using backend_type = B;
  using Impl = autograd::VarImpl<T, B>;
  static constexpr bool is_expression = true;

  /// An undefined Var (no value); defined() is false.
  Var() = default;
  /// A leaf holding `value` (shared, not copied).
  explicit Var(Tensor<T, B> value, bool requires_grad = false) : impl_(std::make_shared<Impl>(std::move(value))) {
    if (!impl_->value.defined()) fail<error>("Var", "the value tensor is undefined");
    impl_->requires_grad = requires_grad;
  }
  /// Evaluates an elementwise expression over Vars in one pass and records one node for it
  /// (defined in dsm/autograd/fused.hpp).
  template <Expression E>
    requires detail::has_variable<std::remove_cvref_t<E>>::value
  Var(const E& expr);  // NOLINT: implicit on purpose, `Var<float> y = x * 2.f;`
  /// Rebinds this handle to the result of an expression (which may read this Var's old value).
  template <Expression E>
    requires detail::has_variable<std::remove_cvref_t<E>>::value
  Var& operator=(const E& expr) {
    Var result(expr);
    impl_ = std::move(result.impl_);
    return *this;
  }
  /// A Var whose impl is already built (used by graph nodes).
  explicit Var(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  // ---- state --------------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Tensor<T, B>& value() const { return checked().value; }
  /// The accumulated gradient: undefined before any backward reached this Var.
  const Tensor<T, B>& grad() const { return checked().grad; }
  /// Replaces the gradient (e.g. by an optimizer or a checkpoint); must match the value's shape.
  void set_grad(Tensor<T, B> g) const {
    if (g.defined() && !(g.shape() == value().shape()))
      fail<shape_error>("set_grad", "gradient of shape ", g.shape(), " for a value of shape ", value().shape());
    checked().grad = std::move(g);
  }
  /// Drops the gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() const { checked().grad = Tensor<T, B>(); }
  bool requires_grad() const { return checked().requires_grad; }
  /// Turns gradient tracking on or off for a leaf.
  Var& requires_grad_(bool on = true) {
    if (!checked().is_leaf())
      fail<error>("requires_grad_", "only leaves can change requires_grad; use detach() for a non-leaf");
    impl_->requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return checked().is_leaf(); }
  /// Keeps this non-leaf's gradient after backward (leaves always keep theirs).
  void retain_grad() const { checked().retains_grad = true; }
  /// Name of the operation that produced this Var ("" for a leaf).
  const char* grad_fn_name() const { return checked().is_leaf() ? "" : impl_->grad_fn->name(); }
  /// A leaf sharing this value, cut from the graph.
  Var detach() const { return Var(value(), false); }

  const Shape& shape() const { return value().shape(); }
  int rank() const { return value().rank(); }
  int dim() const { return value().rank(); }
  std::int64_t numel() const { return value().numel(); }
  std::int64_t size(std::int64_t d) const { return value().size(d); }
  T item() const requires B::host_accessible { return value().item(); }

  // ---- backward ------------------------------------------------------------------------------------
  /// Back-propagates from this scalar: every leaf that requires a gradient and contributes to it
  /// gets d this / d leaf added to its grad(). Requires numel() == 1.
  void backward(bool retain_graph = false) const {
    if (numel() != 1)
      fail<shape_error>("backward", "a gradient can be created implicitly only for a single-element output; got shape ",
                        shape(), " (pass the upstream gradient explicitly)");
    backward(Tensor<T, B>::ones(shape()), retain_graph);
  }
  /// Back-propagates `upstream` (the gradient of some scalar with respect to this Var).
  void backward(const Tensor<T, B>& upstream, bool retain_graph = false) const {
    if (!requires_grad())
      fail<error>("backward", "this Var does not require a gradient: no input of its computation requires one");
    if (!upstream.defined() || !(upstream.shape() == shape()))
      fail<shape_error>("backward", "upstream gradient of shape ", upstream.defined() ? upstream.shape() : Shape{},
                        " for an output of shape ", shape());
    if (is_leaf()) {
      impl_->accumulate(upstream);
      return;
    }
    impl_->grad = upstream.clone();  // the engine may accumulate into it in place
    autograd::run_backward(impl_, retain_graph);
  }

  // ---- views (dsm/autograd/functions/views.hpp) ------------------------------------------------
  Var view(Shape to) const;
  Var reshape(Shape to) const;
  Var flatten(std::int64_t start = 0, std::int64_t end = -1) const;
  Var squeeze(std::int64_t dim) const;
  Var unsqueeze(std::int64_t dim) const;
  Var transpose(std::int64_t d0, std::int64_t d1) const;
  Var t() const;
  Var permute(const Shape& dims) const;
  Var narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const;
  Var slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Var select(std::int64_t dim, std::int64_t index) const;
  Var expand(Shape to) const;
  Var contiguous() const;

  const std::shared_ptr<Impl>& impl() const { return impl_; }

 private:
  Impl& checked() const {
    if (!impl_) fail<error>("Var", "the Var is undefined (default-constructed or moved from)");
    return *impl_;
  }
  std::shared_ptr<Impl> impl_;
};

template <Expression E>
Var(const E&) -> Var<typename std::remove_cvref_t<E>::value_type, typename expr_backend<std::remove_cvref_t<E>>::type>;

namespace detail {
template <class T, class B>
struct has_variable<Var<T, B>> : std::true_type {};
template <class X>
struct is_var : std::false_type {};
template <class T, class B>
struct is_var<Var<T, B>> : std::true_type {};
}  // namespace detail

/// In expressions a Var reads as its value tensor.
template <class T, class B>
struct expr_access<Var<T, B>> {
  static constexpr int leaves = 1;
  static LeafEval<T> evaluator(const Var<T, B>& v, int& next) { return expr_access<Tensor<T, B>>::evaluator(v.value(), next); }
  template <class Visit>
  static void for_each_leaf(const Var<T, B>& v, Visit&& visit) { visit(v.value()); }
};

}  // namespace dsm
