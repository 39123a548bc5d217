// dsm/moe/router.hpp: the gating network of an MoE layer, computed in fp32.
//
//   dsm::moe::Router<> router(/*d_model*/ 64, /*n_experts*/ 8, gen);    // fp32 router
//   auto r = router.route(x, {.top_k = 2});   // x: Var<float> [tokens, 64]
//   r.expert_ids;                             // [tokens, 2], best first
//   r.weights;                                // Var<float> [tokens, 2], differentiable
//
// Scores: softmax (GShard, Mixtral) or sigmoid (DeepSeek-V3) of logits = x W^T. Selection runs on
// the scores plus a per-expert bias (auxiliary-loss-free balancing: it moves which experts are
// chosen, never the weights, and carries no gradient). Group-limited routing (DeepSeek-V2/V3)
// first keeps the topk_groups best groups of experts, scoring a group by its best expert (softmax)
// or the sum of its two best (sigmoid), then picks top_k inside them. Ties go to the lower index,
// so routing is deterministic. The weights are the chosen scores, optionally renormalized to sum 1,
// times routed_scaling_factor; the router learns through them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../autograd/autograd.hpp"
#include "../nn/init.hpp"
#include "config.hpp"

namespace dsm::moe {

/// How the router chooses: the parts of MoEConfig and MoEOptions it needs.
struct RouteSpec {
  std::int64_t top_k = 1;
  GateKind gate = GateKind::softmax;
  std::int64_t n_groups = 1;
  std::int64_t topk_groups = 1;
  bool normalize_weights = true;
  double routed_scaling_factor = 1.0;
};

/// One forward's routing: everything downstream of the router and the balancing losses need.
template <FloatingScalar R>
struct RouterOutput {
  Var<R> logits;                    // [tokens, n_experts]
  Var<R> scores;                    // [tokens, n_experts]: softmax or sigmoid of the logits
  Var<R> weights;                   // [tokens, top_k]: gate weights of the chosen experts
  Tensor<std::int64_t> expert_ids;  // [tokens, top_k]: chosen experts, best first
};

namespace detail {

/// Chooses top_k experts per token on `selection` [tokens, experts] (scores + bias).
template <FloatingScalar R>
Tensor<std::int64_t> select_experts(const Tensor<R>& selection, const RouteSpec& spec) {
  const Tensor<R> sel = selection.contiguous();
  const std::int64_t n = sel.size(0), e = sel.size(1), k = spec.top_k;
  const std::int64_t group_size = e / spec.n_groups;
  Tensor<std::int64_t> ids({n, k});
  const R* ps = sel.data();
  std::int64_t* pi = ids.data();
  constexpr R excluded = -std::numeric_limits<R>::infinity();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n * e > (1 << 15))
#endif
  for (std::int64_t t = 0; t < n; ++t) {
    std::vector<R> row(ps + t * e, ps + (t + 1) * e);
    std::vector<bool> taken(static_cast<std::size_t>(e), false);
    if (spec.n_groups > 1) {
      std::vector<R> group_score(static_cast<std::size_t>(spec.n_groups));
      for (std::int64_t g = 0; g < spec.n_groups; ++g) {
        const R* first = row.data() + g * group_size;
        R best = excluded, second = excluded;
        for (std::int64_t j = 0; j < group_size; ++j) {
          if (first[j] > best) {
            second = best;
            best = first[j];
          } else if (first[j] > second) {
            second = first[j];
          }
        }
        const bool sum_two = spec.gate == GateKind::sigmoid && group_size > 1;
        group_score[static_cast<std::size_t>(g)] = sum_two ? best + second : best;
      }
      std::vector<bool> kept(static_cast<std::size_t>(spec.n_groups), false);
      for (std::int64_t r = 0; r < spec.topk_groups; ++r) {
        std::int64_t arg = -1;
        for (std::int64_t g = 0; g < spec.n_groups; ++g)
          if (!kept[static_cast<std::size_t>(g)] && (arg < 0 || group_score[static_cast<std::size_t>(g)] > group_score[static_cast<std::size_t>(arg)]))
            arg = g;
        kept[static_cast<std::size_t>(arg)] = true;
      }
      for (std::int64_t j = 0; j < e; ++j) taken[static_cast<std::size_t>(j)] = !kept[static_cast<std::size_t>(j / group_size)];
    }
    for (std::int64_t r = 0; r < k; ++r) {
      std::int64_t arg = -1;
      for (std::int64_t j = 0; j < e; ++j)
        if (!taken[static_cast<std::size_t>(j)] && (arg < 0 || row[static_cast<std::size_t>(j)] > row[static_cast<std::size_t>(arg)])) arg = j;
      taken[static_cast<std::size_t>(arg)] = true;
      pi[t * k + r] = arg;
    }
  }
  return ids;
}

}  // namespace detail

/// w[t, j] = scale * s[t, ids[t, j]], divided by sum_j s[t, ids[t, j]] when `normalize`.
/// Requires scores [tokens, experts] and ids [tokens, k] with ids in range.
template <class T, class B>
Var<T, B> gate_weights(const Var<T, B>& scores, const Tensor<std::int64_t, B>& ids, bool normalize, double scale) {
  if (scores.rank() != 2 || ids.rank() != 2 || ids.size(0) != scores.size(0))
    fail<shape_error>("gate_weights", "scores ", scores.shape(), " and expert ids ", ids.shape(), " must be [tokens, experts] and [tokens, k]");
  const Tensor<T, B> s = scores.value().contiguous();
  const Tensor<std::int64_t, B> id = ids.contiguous();
  const std::int64_t n = s.size(0), e = s.size(1), k = id.size(1);
  for (std::int64_t i = 0; i < id.numel(); ++i)
    if (id.data()[i] < 0 || id.data()[i] >= e) fail<index_error>("gate_weights", "expert id ", id.data()[i], " out of range for ", e, " experts");
  Tensor<T, B> w({n, k});
  Tensor<T, B> denom({n});  // the sum the weights were divided by (1 when not normalized)
  for (std::int64_t t = 0; t < n; ++t) {
    double total = 0;
    for (std::int64_t j = 0; j < k; ++j) total += static_cast<double>(s.data()[t * e + id.data()[t * k + j]]);
    const double d = normalize ? total + 1e-20 : 1.0;
    denom.data()[t] = static_cast<T>(d);
    for (std::int64_t j = 0; j < k; ++j) w.data()[t * k + j] = static_cast<T>(scale * static_cast<double>(s.data()[t * e + id.data()[t * k + j]]) / d);
  }
  return autograd::make_result("gate_weights", w, {autograd::edge_of(scores)},
                               [id, w, denom, e, normalize, scale](const Tensor<T, B>& g0, const std::vector<autograd::Edge>& in) {
                                 const Tensor<T, B> g = g0.contiguous();
                                 const std::int64_t n = g.size(0), k = g.size(1);
                                 Tensor<T, B> ds = Tensor<T, B>::zeros({n, e});
                                 for (std::int64_t t = 0; t < n; ++t) {
                                   // d w_j / d s_m = scale (delta_jm - w_j / scale) / denom, when normalized
                                   double gw = 0;
                                   if (normalize)
                                     for (std::int64_t j = 0; j < k; ++j) gw += static_cast<double>(g.data()[t * k + j]) * static_cast<double>(w.data()[t * k + j]);
                                   const double d = static_cast<double>(denom.data()[t]);
                                   for (std::int64_t j = 0; j < k; ++j)
                                     ds.data()[t * e + id.data()[t * k + j]] += static_cast<T>((scale * static_cast<double>(g.data()[t * k + j]) - gw) / d);
                                 }
                                 autograd::accumulate_input(in[0], std::move(ds));
                               });
}

/// The gating network: a bias-free linear map to one logit per expert, in precision R (fp32,
/// or fp64 in a double model), and the auxiliary-loss-free selection bias (a buffer: saved in
/// the state dict, never trained).
template <FloatingScalar R = float>
class Router : public nn::Module {
 public:
  Var<R> weight;          // [n_experts, d_model]
  AnyTensor expert_bias;  // R [n_experts]

  Router() = default;
  Router(std::int64_t d_model, std::int64_t n_experts, Generator& gen) {
    weight = Var<R>(Tensor<R>({n_experts, d_model}), true);
    nn::init::linear_default_(weight.value(), Tensor<R>(), gen);
    expert_bias = Tensor<R>::zeros({n_experts});
  }
  std::int64_t n_experts() const { return weight.size(0); }
  const Tensor<R>& bias() const { return expert_bias.get<R>(); }

  /// Routes x [tokens, d_model]. `noise` (same shape as the logits, or undefined) is added to the
  /// logits for the choice of experts only (exploration): the weights come from the clean scores,
  /// so a replay reproduces them exactly. `replay` (undefined: choose afresh) fixes the experts.
  RouterOutput<R> route(const Var<R>& x, const RouteSpec& spec, const Tensor<R>& noise = {}, const Tensor<std::int64_t>& replay = {}) const {
    RouterOutput<R> out;
    {
      const dsm::detail::GemmPrecisionScope fp32(GemmPrecision::fp32);  // routers stay fp32 under autocast
      out.logits = linear(x, weight);
    }
    out.scores = spec.gate == GateKind::softmax ? softmax(out.logits, -1) : Var<R>(sigmoid(out.logits));
    if (replay.defined()) {
      if (replay.rank() != 2 || replay.size(0) != x.size(0) || replay.size(1) != spec.top_k)
        fail<shape_error>("Router", "replayed expert ids ", replay.shape(), " do not fit ", x.size(0), " tokens and top_k ", spec.top_k);
      out.expert_ids = replay;
    } else {
      Tensor<R> noisy_scores;
      if (noise.defined()) {
        if (noise.shape() != out.logits.shape()) fail<shape_error>("Router", "noise ", noise.shape(), " must have the logits' shape ", out.logits.shape());
        const Tensor<R> noisy_logits = out.logits.value() + noise;
        noisy_scores = spec.gate == GateKind::softmax ? softmax(noisy_logits, -1) : Tensor<R>(sigmoid(noisy_logits));
      }
      const Tensor<R> selection = (noise.defined() ? noisy_scores : out.scores.value()) + bias().unsqueeze(0);
      out.expert_ids = detail::select_experts(selection, spec);
    }
    out.weights = gate_weights(out.scores, out.expert_ids, spec.normalize_weights, spec.routed_scaling_factor);
    return out;
  }

  void visit(nn::Members& m) override {
    m.parameter("weight", weight);
    m.buffer("expert_bias", expert_bias);
  }
};

}  // namespace dsm::moe
