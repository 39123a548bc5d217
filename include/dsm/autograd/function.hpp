// dsm/autograd/function.hpp: recording a non-elementwise operation on the graph.
//
// An operation computes its value eagerly, then calls make_result with the edges of its inputs
// and a backward function that captures what it saved:
//
//   return autograd::make_result("softmax", std::move(y), {edge_of(x)},
//       [y](const Tensor<T, B>& g, const std::vector<Edge>& in) { accumulate_input(in[0], ...); });
//
// The backward function is dropped (freeing its saved tensors) once the node has run without
// retain_graph. Nothing is recorded in a no_grad scope or when no input requires a gradient.
#pragma once

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "graph.hpp"
#include "var.hpp"

namespace dsm::autograd {

/// The edge to a Var's impl if the Var requires a gradient, else null.
template <class T, class B>
Edge edge_of(const Var<T, B>& v) {
  return v.defined() && v.requires_grad() ? Edge(v.impl()) : Edge();
}

template <class T, class B, class Backward>
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, std::vector<Edge> edges, Backward backward) : Node(name), backward_(std::move(backward)) {
    inputs = std::move(edges);
  }
  void apply(VarImplBase& output) override { (*backward_)(impl_cast<T, B>(output).grad, inputs); }

 protected:
  void release_saved() override { backward_.reset(); }

 private:
  std::optional<Backward> backward_;
};

/// The impl of an operation's result; it requires a gradient when grad mode is on and some edge
/// is non-null. Apart from make_result so that it is compiled once per element type, not per op.
template <class T, class B>
std::shared_ptr<VarImpl<T, B>> result_impl(Tensor<T, B>&& value, const std::vector<Edge>& edges) {
  auto out = std::make_shared<VarImpl<T, B>>(std::move(value));
  bool any = false;
  for (const Edge& e : edges) any = any || e != nullptr;
  out->requires_grad = any && is_grad_enabled();
  return out;
}

/// Wraps `value` in a Var produced by operation `name`, recording `backward(g, inputs)` when
/// grad mode is on and some edge is non-null.
template <class T, class B, class Backward>
Var<T, B> make_result(const char* name, Tensor<T, B> value, std::vector<Edge> edges, Backward&& backward) {
  auto out = result_impl(std::move(value), edges);
  if (out->requires_grad)
    out->grad_fn = make_node<FunctionNode<T, B, std::decay_t<Backward>>>(name, std::move(edges), std::forward<Backward>(backward));
  return Var<T, B>(std::move(out));
}

}  // namespace dsm::autograd
