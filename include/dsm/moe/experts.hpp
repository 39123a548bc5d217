// dsm/moe/experts.hpp: SwiGLU feed-forward experts, run as one GEMM chain per expert.
//
//   dsm::moe::FeedForward<float> ffn(/*d_model*/ 512, /*hidden*/ 1024, gen);   // dense FFN
//   Var<float> y = ffn(x);                                   // x [..., 512]
//   // routed experts over permuted rows (see dispatch.hpp):
//   Var<float> yp = dsm::moe::grouped_swiglu(xp, plan.expert_offsets, std::span(experts));
//
// An expert computes y = w2 (silu(w1 x) * (w3 x)) (LLaMA/DeepSeek/Mixtral naming: w1 the gate,
// w3 the up projection, w2 the down projection; no biases). grouped_swiglu runs every expert over
// its contiguous block of rows as three GEMMs, the SwiGLU product fused into one pass between
// them; it is ONE autograd node whose backward runs six GEMMs per expert and one fused pass:
//
//   da = dy w2,  (a, dg, du) = (silu(g) u, da u silu'(g), da silu(g)),
//   dw2 = dy^T a,  dw1 = dg^T x,  dw3 = du^T x,  dx = dg w1 + du w3.
//
// It saves the block's input and the two pre-activations g and u (not a: it is recomputed in
// the fused pass, which costs no extra memory traffic). No pass touches rows of other experts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "../autograd/autograd.hpp"
#include "../expr/math.hpp"
#include "../nn/init.hpp"
#include "../nn/module.hpp"

namespace dsm::moe {

/// A SwiGLU FFN: the dense FFN of a non-MoE layer, one routed expert, or the shared experts.
template <FloatingScalar T = float, class B = cpu>
class FeedForward : public nn::Module {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "FeedForward: float or double parameters (low-precision work runs under autocast)");

 public:
  Var<T, B> w1;  // [hidden, d_model]: gate projection
  Var<T, B> w2;  // [d_model, hidden]: down projection
  Var<T, B> w3;  // [hidden, d_model]: up projection

  FeedForward() = default;
  /// Initialized as torch.nn.Linear (U(+-1/sqrt(fan_in))) from gen.
  FeedForward(std::int64_t d_model, std::int64_t hidden, Generator& gen) {
    if (d_model <= 0 || hidden <= 0) fail<config_error>("FeedForward", "d_model and hidden must be positive, got ", d_model, " and ", hidden);
    auto make = [&](std::int64_t out, std::int64_t in) {
      Var<T, B> w(Tensor<T, B>({out, in}), true);
      nn::init::linear_default_(w.value(), Tensor<T, B>(), gen);
      return w;
    };
    w1 = make(hidden, d_model);
    w2 = make(d_model, hidden);
    w3 = make(hidden, d_model);
  }
  std::int64_t d_model() const { return w1.size(1); }
  std::int64_t hidden() const { return w1.size(0); }

  /// x [..., d_model] -> [..., d_model].
  Var<T, B> operator()(const Var<T, B>& x) const;

  void visit(nn::Members& m) override {
    m.parameter("w1", w1);
    m.parameter("w2", w2);
    m.parameter("w3", w3);
  }
};

namespace detail {

/// silu(g) * u into a, elementwise over n values.
template <class T>
void swiglu_forward_pass(std::int64_t n, const T* g, const T* u, T* a) {
  cpu::parallel_for(n, 1 << 14, [&](std::int64_t b, std::int64_t e) {
    DSM_SIMD for (std::int64_t i = b; i < e; ++i) a[i] = g[i] * math::sigmoid(g[i]) * u[i];
  });
}

/// From da (overwritten with a = silu(g) u): dg = da u silu'(g), du = da silu(g).
template <class T>
void swiglu_backward_pass(std::int64_t n, const T* g, const T* u, T* da_to_a, T* dg, T* du) {
  cpu::parallel_for(n, 1 << 14, [&](std::int64_t b, std::int64_t e) {
    DSM_SIMD for (std::int64_t i = b; i < e; ++i) {
      const T s = math::sigmoid(g[i]), silu = g[i] * s, da = da_to_a[i];
      du[i] = da * silu;
      dg[i] = da * u[i] * (s + silu * (T(1) - s));
      da_to_a[i] = silu * u[i];
    }
  });
}

/// The order in which grouped_swiglu runs its experts on the CPU with several threads: `whole`
/// experts one after the other, each GEMM split over all threads, then the `tasks` side by side,
/// one thread each, largest first as threads come free (no barrier per GEMM, and each thread packs
/// only its own experts' weights). An expert with more than half a thread's share of the rows
/// (skewed routing) runs whole so that it cannot leave the other threads idle. A GEMM's result
/// does not depend on its thread count, so neither does the layer's.
struct ExpertSchedule {
  std::vector<std::int64_t> whole, tasks;
};
template <class B>
ExpertSchedule schedule_experts(const std::vector<std::int64_t>& offsets) {
  ExpertSchedule s;
  const auto n_experts = static_cast<std::int64_t>(offsets.size()) - 1;
  const std::int64_t rows = offsets.back();
  auto count = [&](std::int64_t e) { return offsets[static_cast<std::size_t>(e + 1)] - offsets[static_cast<std::size_t>(e)]; };
  int threads = 1;
  if constexpr (std::is_same_v<B, cpu>) threads = get_num_threads();
#if defined(_OPENMP)
  if (omp_in_parallel()) threads = 1;
#endif
  for (std::int64_t e = 0; e < n_experts; ++e) (threads > 1 && count(e) * 2 * threads <= rows ? s.tasks : s.whole).push_back(e);
  std::stable_sort(s.tasks.begin(), s.tasks.end(), [&](std::int64_t a, std::int64_t b) { return count(a) > count(b); });
  return s;
}

/// Runs run(e) for every expert in the schedule's order and placement.
template <class B, class Run>
void for_each_expert(const ExpertSchedule& s, Run&& run) {
  for (const std::int64_t e : s.whole) run(e);
  if constexpr (std::is_same_v<B, cpu>) {
    cpu::parallel_tasks(static_cast<std::int64_t>(s.tasks.size()), [&](std::int64_t i) { run(s.tasks[static_cast<std::size_t>(i)]); });
  } else {
    for (const std::int64_t e : s.tasks) run(e);
  }
}

}  // namespace detail

/// Runs expert e on rows [offsets[e], offsets[e + 1]) of x [rows, d_model] (offsets has
/// experts.size() + 1 entries, non-decreasing, ending at rows). One autograd node.
template <FloatingScalar T, class B>
Var<T, B> grouped_swiglu(const Var<T, B>& x, const std::vector<std::int64_t>& offsets, std::span<const FeedForward<T, B>> experts) {
  const auto n_experts = static_cast<std::int64_t>(experts.size());
  if (n_experts == 0) fail<config_error>("grouped_swiglu", "no experts");
  const std::int64_t d = experts[0].d_model(), h = experts[0].hidden();
  if (x.rank() != 2 || x.size(1) != d) fail<shape_error>("grouped_swiglu", "input ", x.shape(), " must be [rows, ", d, "]");
  if (static_cast<std::int64_t>(offsets.size()) != n_experts + 1 || offsets.front() != 0 || offsets.back() != x.size(0))
    fail<shape_error>("grouped_swiglu", "offsets must have ", n_experts + 1, " entries from 0 to ", x.size(0));
  for (std::int64_t e = 0; e < n_experts; ++e) {
    const auto& ex = experts[static_cast<std::size_t>(e)];
    if (ex.d_model() != d || ex.hidden() != h) fail<shape_error>("grouped_swiglu", "expert ", e, " is ", ex.d_model(), " x ", ex.hidden(), ", expert 0 is ", d, " x ", h);
    if (offsets[static_cast<std::size_t>(e + 1)] < offsets[static_cast<std::size_t>(e)]) fail<shape_error>("grouped_swiglu", "offsets decrease at expert ", e);
  }
  const std::int64_t rows = x.size(0);
  const Tensor<T, B> xv = x.value().contiguous();
  const detail::ExpertSchedule schedule = detail::schedule_experts<B>(offsets);
  Tensor<T, B> g({rows, h}), u({rows, h}), y({rows, d});
  {
    Tensor<T, B> a({rows, h});
    detail::for_each_expert<B>(schedule, [&](std::int64_t e) {  // each expert writes its own rows
      const std::int64_t r0 = offsets[static_cast<std::size_t>(e)], n = offsets[static_cast<std::size_t>(e + 1)] - r0;
      if (n == 0) return;
      const auto& ex = experts[static_cast<std::size_t>(e)];
      const T* xe = xv.data() + r0 * d;
      T *ge = g.data() + r0 * h, *ue = u.data() + r0 * h, *ae = a.data() + r0 * h;
      B::gemm(false, true, n, h, d, T(1), xe, d, ex.w1.value().data(), d, T(0), ge, h);  // [n, h]
      B::gemm(false, true, n, h, d, T(1), xe, d, ex.w3.value().data(), d, T(0), ue, h);  // [n, h]
      detail::swiglu_forward_pass(n * h, ge, ue, ae);
      B::gemm(false, true, n, d, h, T(1), ae, h, ex.w2.value().data(), h, T(0), y.data() + r0 * d, d);  // [n, d]
    });
  }
  std::vector<autograd::Edge> edges{autograd::edge_of(x)};
  std::vector<Tensor<T, B>> weights;  // w1, w3, w2 of each expert, as the backward reads them
  for (const auto& ex : experts) {
    edges.push_back(autograd::edge_of(ex.w1));
    edges.push_back(autograd::edge_of(ex.w3));
    edges.push_back(autograd::edge_of(ex.w2));
    weights.push_back(ex.w1.value().contiguous());
    weights.push_back(ex.w3.value().contiguous());
    weights.push_back(ex.w2.value().contiguous());
  }
  return autograd::make_result(
      "grouped_swiglu", std::move(y), std::move(edges),
      [xv, g, u, offsets, schedule, weights = std::move(weights), d, h](const Tensor<T, B>& dy0, const std::vector<autograd::Edge>& in) {
        const Tensor<T, B> dy = dy0.contiguous();
        const std::int64_t rows = dy.size(0), n_experts = static_cast<std::int64_t>(weights.size() / 3);
        Tensor<T, B> da_a({rows, h}), dg({rows, h}), du({rows, h});
        Tensor<T, B> dx = in[0] ? Tensor<T, B>({rows, d}) : Tensor<T, B>();
        // dw1, dw3, dw2 of each expert, allocated here: nothing inside the parallel region allocates
        // a tensor, and autograd receives them serially, in expert order, afterwards.
        std::vector<Tensor<T, B>> dws;
        for (std::int64_t e = 0; e < n_experts; ++e) {
          dws.emplace_back(Shape{h, d});
          dws.emplace_back(Shape{h, d});
          dws.emplace_back(Shape{d, h});
        }
        detail::for_each_expert<B>(schedule, [&](std::int64_t e) {  // each expert writes its own rows and gradients
          const std::int64_t r0 = offsets[static_cast<std::size_t>(e)], n = offsets[static_cast<std::size_t>(e + 1)] - r0;
          const Tensor<T, B>&w1 = weights[static_cast<std::size_t>(3 * e)], &w3 = weights[static_cast<std::size_t>(3 * e + 1)],
                          &w2 = weights[static_cast<std::size_t>(3 * e + 2)];
          Tensor<T, B>&dw1 = dws[static_cast<std::size_t>(3 * e)], &dw3 = dws[static_cast<std::size_t>(3 * e + 1)], &dw2 = dws[static_cast<std::size_t>(3 * e + 2)];
          if (n == 0) {  // an expert without tokens gets a zero gradient, as the loop form gives it
            dw1.fill_(T(0));
            dw3.fill_(T(0));
            dw2.fill_(T(0));
          } else {
            const T *xe = xv.data() + r0 * d, *dye = dy.data() + r0 * d;
            T *ae = da_a.data() + r0 * h, *dge = dg.data() + r0 * h, *due = du.data() + r0 * h;
            B::gemm(false, false, n, h, d, T(1), dye, d, w2.data(), h, T(0), ae, h);  // da [n, h]
            detail::swiglu_backward_pass(n * h, g.data() + r0 * h, u.data() + r0 * h, ae, dge, due);
            B::gemm(true, false, d, h, n, T(1), dye, d, ae, h, T(0), dw2.data(), h);   // dy^T a [d, h]
            B::gemm(true, false, h, d, n, T(1), dge, h, xe, d, T(0), dw1.data(), d);   // dg^T x [h, d]
            B::gemm(true, false, h, d, n, T(1), due, h, xe, d, T(0), dw3.data(), d);   // du^T x [h, d]
            if (dx.defined()) {
              B::gemm(false, false, n, d, h, T(1), dge, h, w1.data(), d, T(0), dx.data() + r0 * d, d);
              B::gemm(false, false, n, d, h, T(1), due, h, w3.data(), d, T(1), dx.data() + r0 * d, d);
            }
          }
        });
        for (std::size_t i = 0; i < dws.size(); ++i) autograd::accumulate_input(in[1 + i], std::move(dws[i]));
        if (dx.defined()) autograd::accumulate_input(in[0], std::move(dx));
      });
}

template <FloatingScalar T, class B>
Var<T, B> FeedForward<T, B>::operator()(const Var<T, B>& x) const {
  if (x.rank() == 0 || x.size(-1) != d_model()) fail<shape_error>("FeedForward", "input of shape ", x.shape(), " for d_model ", d_model());
  const Var<T, B> rows = x.reshape({-1, d_model()});
  const Var<T, B> y = grouped_swiglu(rows, std::vector<std::int64_t>{0, rows.size(0)}, std::span<const FeedForward<T, B>>(this, 1));
  return y.reshape(x.shape());
}

}  // namespace dsm::moe
