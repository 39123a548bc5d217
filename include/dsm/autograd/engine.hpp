// dsm/autograd/engine.hpp: runs the backward pass over the recorded graph.
//
// The engine sorts the impls reachable from the root in reverse topological order with an
// explicit stack (no recursion, so a chain of any length is fine), then applies each node once
// after all the gradients flowing into its output have been accumulated. Without retain_graph a
// node frees its saved tensors and edges right after it ran, so memory falls during backward; a
// second backward through it is then an error rather than garbage. Gradients of non-leaf values
// are dropped once consumed unless retain_grad() asked to keep them.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "graph.hpp"

namespace dsm::autograd {

namespace detail {
inline std::uint64_t next_visit_mark() {
  thread_local std::uint64_t mark = 0;
  return ++mark;
}

/// Impls reachable from `root` through nodes, each after every impl whose node consumes it
/// (an order in which a node runs only when its output gradient is complete). The list holds
/// the impls alive while nodes release their edges during the pass.
inline std::vector<Edge> topological_order(const Edge& root) {
  const std::uint64_t mark = next_visit_mark();
  std::vector<Edge> post;  // post-order: inputs before the impls computed from them
  std::vector<std::pair<Edge, std::size_t>> stack;
  root->visit = mark;
  stack.emplace_back(root, 0);
  while (!stack.empty()) {
    Node* node = stack.back().first->grad_fn.get();
    std::size_t& next = stack.back().second;
    if (node != nullptr && next < node->inputs.size()) {
      const Edge& in = node->inputs[next++];
      if (in && in->visit != mark) {
        in->visit = mark;
        stack.emplace_back(in, 0);  // invalidates `next`: not used after this point
      }
      continue;
    }
    post.push_back(std::move(stack.back().first));
    stack.pop_back();
  }
  return {std::make_move_iterator(post.rbegin()), std::make_move_iterator(post.rend())};
}
}  // namespace detail

/// Back-propagates from `root`, whose gradient has been seeded.
inline void run_backward(const Edge& root, bool retain_graph) {
  std::vector<Edge> order = detail::topological_order(root);
  for (Edge& impl : order) {
    Node* node = impl->grad_fn.get();
    if (impl->has_grad() && node != nullptr) {  // leaves keep their gradient; unreached impls have none
      if (node->released)
        fail<error>("backward", "the graph behind '", node->name(),
                    "' was already freed by a previous backward(); pass retain_graph = true to the first backward() "
                    "to run backward through it twice");
      {
        const dsm::detail::GemmPrecisionScope mode(node->precision);
        node->apply(*impl);
      }
      if (!impl->retains_grad) impl->clear_grad();
      if (!retain_graph) node->release();
    }
    impl.reset();  // frees intermediates nobody else holds as soon as they are done
  }
}

}  // namespace dsm::autograd
