// dsm/autograd/graph.hpp: the dynamic graph that reverse-mode autograd walks.
//
// Every Var points at a VarImpl (its value, its gradient, the node that produced it). A Node
// holds edges to the VarImpls of its inputs and whatever it saved for the backward pass; it never
// points at its own output, so the graph owns itself from the outputs down and has no cycles.
//
//   out impl --grad_fn--> Node --inputs--> impl of a --grad_fn--> Node --> ...
//
// Long chains (100,000 nodes) are created, walked and destroyed without recursion: the engine
// sorts iteratively, and dropping the last handle of a chain releases its links from a worklist.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/precision_mode.hpp"
#include "../core/tensor.hpp"
#include "../expr/assign.hpp"
#include "../expr/operators.hpp"

namespace dsm {

// ---- grad mode -----------------------------------------------------------------------------------

namespace detail {
inline bool& grad_mode_flag() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// Whether operations on Vars record the graph on this thread.
inline bool is_grad_enabled() { return detail::grad_mode_flag(); }

/// A scope in which operations on Vars are computed but not recorded (inference, optimizer
/// updates). Scopes nest; the previous mode comes back when the scope ends.
///
///   { dsm::no_grad guard; auto y = model(x); }   // y.requires_grad() is false
class [[nodiscard]] no_grad {
 public:
  no_grad() : previous_(detail::grad_mode_flag()) { detail::grad_mode_flag() = false; }
  ~no_grad() { detail::grad_mode_flag() = previous_; }
  no_grad(const no_grad&) = delete;
  no_grad& operator=(const no_grad&) = delete;

 private:
  bool previous_;
};

/// The opposite scope: records even inside a no_grad scope (for checkpoint recomputation).
class [[nodiscard]] enable_grad {
 public:
  enable_grad() : previous_(detail::grad_mode_flag()) { detail::grad_mode_flag() = true; }
  ~enable_grad() { detail::grad_mode_flag() = previous_; }
  enable_grad(const enable_grad&) = delete;
  enable_grad& operator=(const enable_grad&) = delete;

 private:
  bool previous_;
};

namespace autograd {

struct Node;

/// The part of a variable the engine sees, whatever its element type.
struct VarImplBase {
  std::shared_ptr<Node> grad_fn;  // null for leaves
  bool requires_grad = false;     // leaves: set by the user; others: some input requires it
  bool retains_grad = false;      // keep the gradient of a non-leaf after backward
  std::uint64_t visit = 0;        // engine bookkeeping: the pass that last visited this impl

  VarImplBase() = default;
  VarImplBase(const VarImplBase&) = delete;
  VarImplBase& operator=(const VarImplBase&) = delete;
  virtual ~VarImplBase() = default;

  bool is_leaf() const { return grad_fn == nullptr; }
  virtual bool has_grad() const = 0;
  virtual void clear_grad() = 0;
};

using Edge = std::shared_ptr<VarImplBase>;

namespace detail {
/// Drops a list of edges without recursion: when dropping one frees an impl, whose node frees
/// more edges, those go onto the worklist of the outermost call instead of the call stack.
inline void release_edges(std::vector<Edge>& edges) {
  thread_local std::vector<Edge>* worklist = nullptr;
  if (worklist != nullptr) {
    for (auto& e : edges)
      if (e) worklist->push_back(std::move(e));
    edges.clear();
    return;
  }
  std::vector<Edge> pending;
  pending.reserve(edges.size());
  for (auto& e : edges)
    if (e) pending.push_back(std::move(e));
  edges.clear();
  worklist = &pending;
  while (!pending.empty()) {
    Edge e = std::move(pending.back());
    pending.pop_back();
    e.reset();  // may destroy an impl and its node, which pushes that node's edges
  }
  worklist = nullptr;
}
}  // namespace detail

/// One recorded operation. `apply` reads the output's gradient and accumulates the gradients of
/// the inputs that require one (a null edge means the input needs none).
struct Node {
  std::vector<Edge> inputs;
  bool released = false;  // its saved state was freed by a backward without retain_graph
  // The autocast mode the forward ran in: the engine runs apply() in it, so a GEMM's backward
  // rounds its operands as its forward did, whatever scope backward() is called from.
  GemmPrecision precision = gemm_precision();

  explicit Node(const char* name) : name_(name) {}
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  virtual ~Node() { detail::release_edges(inputs); }

  /// The operation's name, for error messages ("softmax", "fused elementwise", ...).
  const char* name() const { return name_; }
  virtual void apply(VarImplBase& output) = 0;
  /// Frees the edges and saved tensors; a later apply is an error.
  void release() {
    released = true;
    release_saved();
    detail::release_edges(inputs);
  }

 protected:
  virtual void release_saved() {}

 private:
  const char* name_;
};

/// A new node of type N, owned as a Node: the one place nodes are allocated. (Owning them through
/// one shared deleter type would share one control block type among all kinds of node, 198 fewer
/// functions in a model TU, but costs a second allocation per node: W6 ran 6-9% slower.)
template <class N, class... Args>
std::shared_ptr<Node> make_node(Args&&... args) {
  return std::make_shared<N>(std::forward<Args>(args)...);
}

/// A variable's state: value, accumulated gradient, producing node.
template <class T, class B>
struct VarImpl final : VarImplBase {
  Tensor<T, B> value;
  Tensor<T, B> grad;

  explicit VarImpl(Tensor<T, B> v) : value(std::move(v)) {}
  bool has_grad() const override { return grad.defined(); }
  void clear_grad() override { grad = Tensor<T, B>(); }

  /// Adds `g` (the value's shape) to the gradient. The first gradient is adopted without a copy
  /// when nobody else holds it; a leaf always ends up with storage of its own, since optimizers
  /// and clipping update leaf gradients in place.
  void accumulate(Tensor<T, B> g) {
    if (!(g.shape() == value.shape()))
      fail<shape_error>("backward", "gradient of shape ", g.shape(), " for a value of shape ", value.shape());
    if (!grad.defined()) {
      const bool own = g.is_contiguous() && g.storage().use_count() == 1;
      grad = (own || !is_leaf()) ? std::move(g) : g.clone();
    } else if (grad.is_contiguous() && grad.storage().use_count() == 1) {
      grad += g;
    } else {
      grad = Tensor<T, B>(grad + g);
    }
  }

  /// Adds a gradient that a kernel writes itself: write(dst, add) either adds it into dst (add
  /// true: the pending gradient, when this variable has one of its own to add to) or stores it
  /// there (add false: a fresh tensor of the value's shape, then accumulated as above). A value
  /// read by several consumers (the q, k and v projections of one input, a residual stream and
  /// its norm) then gets each later gradient in the pass that computes it, not in a pass more.
  template <class Write>
  void accumulate_with(Write&& write) {
    if (grad.defined() && grad.is_contiguous() && grad.storage().use_count() == 1) {
      write(grad.data(), true);
      return;
    }
    Tensor<T, B> g(value.shape());
    write(g.data(), false);
    accumulate(std::move(g));
  }
};

/// The typed impl behind an edge (edges of a node are created with known types).
template <class T, class B>
VarImpl<T, B>& impl_cast(VarImplBase& e) {
  return static_cast<VarImpl<T, B>&>(e);
}

/// Accumulates into input `i` of a node if that input requires a gradient.
template <class T, class B>
void accumulate_input(const Edge& e, Tensor<T, B> g) {
  if (e) impl_cast<T, B>(*e).accumulate(std::move(g));
}

/// The same with a gradient that write(T* dst, bool add) puts into a contiguous buffer of the
/// input's shape, adding to it when add is true (VarImpl::accumulate_with).
template <class T, class B, class Write>
void accumulate_input_with(const Edge& e, Write&& write) {
  if (e) impl_cast<T, B>(*e).accumulate_with(std::forward<Write>(write));
}

}  // namespace autograd
}  // namespace dsm
