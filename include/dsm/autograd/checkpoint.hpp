// dsm/autograd/checkpoint.hpp: activation checkpointing (recompute in backward instead of storing).
//
//   auto block = [&](const dsm::Var<float>& x) { return dsm::Var<float>(x + mlp(drop(norm(x)))); };
//   dsm::Var<float> y = dsm::checkpoint(block, x);    // keeps x, not the block's activations
//   loss(y).backward();                                 // runs block again, then its backward
//
// checkpoint(f, inputs...) computes f(inputs...) and keeps only the inputs and the outputs: the
// graph f built is dropped as soon as f returns, so the activations inside f are freed. In
// backward, f runs again on the saved inputs with the graph recorded, and the incoming gradient
// goes back through that graph: to the inputs, and to every parameter f reads (leaves captured by
// f receive their gradients directly, as without checkpointing).
//
// The recomputation sees what the first run saw:
//   - random numbers: every Generator that f draws from (dropout masks, noise) is rewound to where
//     it stood when f first drew from it, and put back afterwards, so the masks match and the
//     streams continue as if f had run once;
//   - the autocast mode (the node keeps it, like every node);
// Whatever else f reads must not change between forward and backward (module train/eval mode,
// captured tensors). Functions with side effects that must happen once (an MoE layer counting its
// load) need to tell the first run from the recomputation: checkpoint_recomputing() says which, and
// the transformer's blocks use it to replay their routing (dsm/models/transformer.hpp).
//
// f takes the inputs as `const Var<T, B>&...` and returns a Var<T, B> or a std::vector of them
// (several outputs are stored as one buffer and returned as views of it). When f is
// deterministic the gradients are those of the plain call: bit for bit for a chain of blocks, and
// to rounding where a value inside f receives gradient from several places, since those
// contributions may then be summed in another order.
#pragma once

#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/random.hpp"
#include "function.hpp"
#include "functions/join.hpp"
#include "functions/views.hpp"

namespace dsm {

namespace autograd::detail {

/// Records, for each Generator drawn from while it is active on this thread, its state before
/// the first draw.
struct GeneratorRecord final : dsm::detail::GeneratorTape {
  std::vector<std::pair<Generator*, Generator::State>> first;
  void note(Generator& g, std::uint64_t offset) override {
    for (const auto& [p, s] : first)
      if (p == &g) return;
    first.emplace_back(&g, Generator::State{g.seed(), offset});
  }
};

/// Makes `record` the active tape of this thread (enclosing tapes still see every draw).
class [[nodiscard]] RecordScope {
 public:
  explicit RecordScope(GeneratorRecord& r) : record_(r) {
    r.parent = dsm::detail::generator_tape();
    dsm::detail::generator_tape() = &r;
  }
  ~RecordScope() { dsm::detail::generator_tape() = record_.parent; }
  RecordScope(const RecordScope&) = delete;
  RecordScope& operator=(const RecordScope&) = delete;

 private:
  GeneratorRecord& record_;
};

/// Rewinds the recorded generators for a recomputation and restores their current states after.
class [[nodiscard]] RewindScope {
 public:
  explicit RewindScope(const GeneratorRecord& r) : record_(r) {
    for (const auto& [g, s] : r.first) {
      now_.push_back(g->state());
      g->set_state(s);
    }
  }
  ~RewindScope() {
    for (std::size_t i = 0; i < now_.size(); ++i) record_.first[i].first->set_state(now_[i]);
  }
  RewindScope(const RewindScope&) = delete;
  RewindScope& operator=(const RewindScope&) = delete;

 private:
  const GeneratorRecord& record_;
  std::vector<Generator::State> now_;
};

inline int& recompute_depth() {
  thread_local int depth = 0;
  return depth;
}

template <class R>
struct is_var_vector : std::false_type {};
template <class T, class B>
struct is_var_vector<std::vector<Var<T, B>>> : std::true_type {};

/// The outputs of f as a list (one Var, or the vector f returned).
template <class T, class B, class R>
std::vector<Var<T, B>> as_list(R&& r) {
  if constexpr (is_var_vector<std::remove_cvref_t<R>>::value) return std::vector<Var<T, B>>(std::forward<R>(r));
  else return {Var<T, B>(std::forward<R>(r))};
}

/// f(xs[0], ..., xs[N-1]).
template <class F, class V, std::size_t... I>
decltype(auto) call_with(F& f, const V& xs, std::index_sequence<I...>) {
  return f(xs[I]...);
}

/// Several outputs as one flat Var (their values one after the other); one output as itself.
template <class T, class B>
Var<T, B> pack_outputs(const std::vector<Var<T, B>>& outs) {
  if (outs.size() == 1) return outs[0];
  std::vector<Var<T, B>> flat;
  for (const auto& o : outs) flat.push_back(o.reshape({-1}));
  return cat(flat, 0);
}

}  // namespace autograd::detail

/// True while a checkpointed function runs again in backward (on this thread).
inline bool checkpoint_recomputing() { return autograd::detail::recompute_depth() > 0; }

/// f(inputs...) without keeping f's activations (see the header comment). Requires at least one
/// input; all inputs and outputs are Var<T, B>.
template <class F, class T, class B, class... More>
  requires(std::is_same_v<More, Var<T, B>> && ...)
auto checkpoint(F f, const Var<T, B>& first, const More&... more) {
  using Result = std::remove_cvref_t<std::invoke_result_t<F&, const Var<T, B>&, const More&...>>;
  static_assert(std::is_same_v<Result, Var<T, B>> || autograd::detail::is_var_vector<Result>::value,
                "checkpoint: f must return a Var of the inputs' type or a std::vector of them");
  namespace ad = autograd::detail;
  using autograd::Edge;
  if (!is_grad_enabled()) return Result(f(first, more...));  // nothing to record: a plain call

  // First run: record the graph only to learn which outputs need a gradient, then drop it.
  ad::GeneratorRecord record;
  std::vector<Var<T, B>> outs;
  {
    ad::RecordScope recording(record);
    outs = ad::as_list<T, B>(f(first, more...));
  }
  if (outs.empty()) fail<error>("checkpoint", "the function returned no outputs");
  bool any_grad = false;
  std::vector<Shape> shapes;
  for (const auto& o : outs) {
    if (!o.defined()) fail<error>("checkpoint", "the function returned an undefined Var");
    any_grad = any_grad || o.requires_grad();
    shapes.push_back(o.shape());
  }
  Tensor<T, B> packed_value;
  {
    no_grad values_only;
    packed_value = ad::pack_outputs(outs).value();
  }
  outs.clear();  // frees f's graph and activations

  const std::vector<Var<T, B>> inputs{first, more...};
  auto out = std::make_shared<autograd::VarImpl<T, B>>(std::move(packed_value));
  if (any_grad) {
    std::vector<Edge> edges;
    std::vector<Tensor<T, B>> saved;
    for (const auto& x : inputs) edges.push_back(autograd::edge_of(x)), saved.push_back(x.value());
    auto recompute = [f = std::move(f), saved = std::move(saved), record = std::move(record)](const Tensor<T, B>& g,
                                                                                              const std::vector<Edge>& in) mutable {
      std::vector<Var<T, B>> leaves;
      for (std::size_t i = 0; i < saved.size(); ++i) leaves.emplace_back(saved[i], in[i] != nullptr);
      Var<T, B> again;
      {
        enable_grad recording;
        ad::RewindScope rewind(record);
        ++ad::recompute_depth();
        struct Leave {
          ~Leave() { --ad::recompute_depth(); }
        } leave;
        again = ad::pack_outputs(ad::as_list<T, B>(ad::call_with(f, leaves, std::make_index_sequence<1 + sizeof...(More)>{})));
      }
      if (!(again.shape() == g.shape()))
        fail<shape_error>("checkpoint", "the recomputation returned ", again.shape(), " where the first run returned ", g.shape(),
                          ": f must compute the same thing twice");
      if (again.requires_grad()) again.backward(g);
      for (std::size_t i = 0; i < leaves.size(); ++i)
        if (in[i] && leaves[i].grad().defined()) autograd::accumulate_input(in[i], leaves[i].grad());
    };
    out->requires_grad = true;
    out->grad_fn = autograd::make_node<autograd::FunctionNode<T, B, decltype(recompute)>>("checkpoint", std::move(edges), std::move(recompute));
  }
  const Var<T, B> packed(std::move(out));
  if constexpr (std::is_same_v<Result, Var<T, B>>) {
    return packed;
  } else {
    if (shapes.size() == 1) return Result{packed};
    Result views;
    std::int64_t offset = 0;
    for (const Shape& s : shapes) {
      views.push_back(packed.narrow(0, offset, s.numel()).reshape(s));
      offset += s.numel();
    }
    return views;
  }
}

}  // namespace dsm
