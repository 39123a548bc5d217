// dsm/moe/layer.hpp: the Mixture-of-Experts feed-forward layer of DeepSeek-style models.
//
//   dsm::moe::MoEOptions opt;
//   opt.aux_loss_coef = 0.01;
//   dsm::moe::MoELayer<{.d_model = 512, .d_ff = 1024, .n_experts = 8, .top_k = 2}> moe(opt);
//   auto out = moe(x);                          // x: Var<float> [batch, seq, 512] or [tokens, 512]
//   Var<float> loss = task_loss(out.output) + out.balance_loss;
//   loss.backward(); optimizer.step();
//   moe.finish_step();                          // aux-loss-free bias update, new global batch
//
// Forward: route (router.hpp) -> permute the tokens into expert order (dispatch.hpp) -> one
// SwiGLU GEMM chain per expert (experts.hpp) -> un-permute and combine with the gate weights ->
// plus the shared experts, which every token passes through. The result has x's shape.
//
// Routing replay: out.expert_ids fed back as forward(x, ids) reuses those decisions (recomputing
// the gate weights, which carry the router's gradient) and does not count the load again, so an
// activation-checkpointed block recomputes exactly what it computed the first time.
#pragma once

#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <vector>

#include "balance.hpp"
#include "config.hpp"
#include "dispatch.hpp"
#include "experts.hpp"
#include "router.hpp"

namespace dsm::moe {

/// What one forward reports besides its output.
struct MoEStatistics : LoadStatistics {
  double aux_loss = 0;             ///< value of the Switch balance loss (0 when off)
  double seq_aux_loss = 0;         ///< value of the sequence-wise balance loss
  double z_loss = 0;               ///< value of the router z-loss
  std::vector<double> expert_bias;  ///< the selection bias used by this forward
};

template <FloatingScalar T, class B = cpu>
struct MoEOutput {
  using RouterScalar = std::conditional_t<std::is_same_v<T, double>, double, float>;
  Var<T, B> output;                 ///< the input's shape
  Var<RouterScalar> balance_loss;   ///< scalar: the sum of the enabled balancing losses
  Tensor<std::int64_t> expert_ids;  ///< [tokens, top_k]: the routing, for replay
  MoEStatistics stats;
};

template <MoEConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class MoELayer : public nn::Module, public nn::ConfigHolder<MoEConfig, C> {
  using Holder = nn::ConfigHolder<MoEConfig, C>;

 public:
  using Options = MoEOptions;
  using RouterScalar = typename MoEOutput<T, B>::RouterScalar;  // fp32, or fp64 in a double model

  Router<RouterScalar> router;
  std::vector<FeedForward<T, B>> experts;  // routed experts, d_ff wide
  FeedForward<T, B> shared_experts;        // n_shared * d_ff wide; empty when n_shared = 0

  explicit MoELayer(Options o = {}) requires(!Holder::is_dynamic) : options_(o), noise_(o.noise_seed) {
    static_assert(C.d_model > 0, "MoE: d_model must be positive");
    static_assert(C.d_ff > 0, "MoE: d_ff must be positive");
    static_assert(C.n_experts > 0, "MoE: n_experts must be positive");
    static_assert(C.top_k > 0, "MoE: top_k must be positive");
    static_assert(C.top_k <= C.n_experts, "MoE: top_k must not exceed the number of experts");
    static_assert(C.n_shared >= 0, "MoE: n_shared must not be negative");
    static_assert(C.n_groups > 0, "MoE: n_groups must be positive");
    static_assert(C.n_experts % C.n_groups == 0, "MoE: n_experts must be divisible by n_groups");
    static_assert(C.topk_groups > 0, "MoE: topk_groups must be positive");
    static_assert(C.topk_groups <= C.n_groups, "MoE: topk_groups must not exceed n_groups");
    static_assert(C.top_k <= C.topk_groups * (C.n_experts / C.n_groups), "MoE: top_k must not exceed the experts in the kept groups");
    init();
  }
  explicit MoELayer(const MoEConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(checked(c)), options_(o), noise_(o.noise_seed) {
    init();
  }
  using Holder::config;

  const Options& options() const { return options_; }
  /// Changes the tunable scalars (e.g. a coefficient schedule); checked like the constructor's.
  void set_options(const Options& o) {
    detail::check_options(o);
    options_ = o;
  }

  /// Routes and runs x [..., d_model]. Leading dimensions: [tokens] is one sequence, [batch,
  /// seq] are batch sequences (for the sequence-wise loss). `replay` ([tokens, top_k], from an
  /// earlier output's expert_ids) fixes the routing.
  MoEOutput<T, B> forward(const Var<T, B>& x, const Tensor<std::int64_t>& replay = {}) {
    const MoEConfig& c = config();
    if (x.rank() < 2 || x.size(-1) != c.d_model) fail<shape_error>("MoE", "input of shape ", x.shape(), " for d_model ", c.d_model, " (needs [..., d_model])");
    const Var<T, B> xf = x.reshape({-1, c.d_model});  // [tokens, d_model]
    const std::int64_t tokens = xf.size(0), seq_len = x.rank() >= 3 ? x.size(-2) : tokens;
    const bool replayed = replay.defined();
    const bool counting = is_training() && !replayed;

    Tensor<RouterScalar> noise;
    if (is_training() && options_.noise_std > 0 && !replayed)
      noise = Tensor<RouterScalar>(Tensor<RouterScalar>::randn({tokens, c.n_experts}, noise_) * static_cast<RouterScalar>(options_.noise_std));
    Var<RouterScalar> xr;
    if constexpr (std::is_same_v<T, RouterScalar>) xr = xf;
    else xr = Var<RouterScalar>(cast<RouterScalar>(xf));
    const RouteSpec spec{c.top_k, c.gate, c.n_groups, c.topk_groups, c.normalize_weights, options_.routed_scaling_factor};
    RouterOutput<RouterScalar> r = router.route(xr, spec, noise, replay);

    const DispatchPlan plan = make_dispatch_plan(r.expert_ids, c.n_experts, expert_capacity(options_.capacity_factor, tokens, c.top_k, c.n_experts));
    const Var<T, B> xp = permute_tokens(xf, plan);  // [rows, d_model], expert-major
    const Var<T, B> yp = grouped_swiglu(xp, plan.expert_offsets, std::span<const FeedForward<T, B>>(experts));
    Var<T, B> y = unpermute_tokens(yp, r.weights, plan);  // [tokens, d_model]
    if (c.n_shared > 0) y = Var<T, B>(y + shared_experts(xf));

    MoEOutput<T, B> out;
    if (counting) {
      for (std::int64_t e = 0; e < c.n_experts; ++e) global_load_[static_cast<std::size_t>(e)] += plan.routed_per_expert[static_cast<std::size_t>(e)];
    }
    out.balance_loss = Var<RouterScalar>(Tensor<RouterScalar>::scalar(RouterScalar(0)));
    if (options_.aux_loss_coef > 0 || options_.seq_aux_loss_coef > 0) {
      const Var<RouterScalar> probs = balance_probabilities(r.scores, c.gate);
      if (options_.aux_loss_coef > 0) {
        const std::int64_t global_assignments = std::accumulate(global_load_.begin(), global_load_.end(), std::int64_t{0});
        const bool global = options_.balance_scope == BalanceScope::global_batch && global_assignments > 0;
        const Var<RouterScalar> aux = global ? switch_balance_loss(probs, global_load_, global_assignments, options_.aux_loss_coef)
                                             : switch_balance_loss(probs, plan.routed_per_expert, tokens * c.top_k, options_.aux_loss_coef);
        out.stats.aux_loss = static_cast<double>(aux.item());
        out.balance_loss = Var<RouterScalar>(out.balance_loss + aux);
      }
      if (options_.seq_aux_loss_coef > 0) {
        const Var<RouterScalar> seq = sequence_balance_loss(probs.reshape({tokens / seq_len, seq_len, c.n_experts}), r.expert_ids, options_.seq_aux_loss_coef);
        out.stats.seq_aux_loss = static_cast<double>(seq.item());
        out.balance_loss = Var<RouterScalar>(out.balance_loss + seq);
      }
    }
    if (options_.z_loss_coef > 0) {
      const Var<RouterScalar> z = router_z_loss(r.logits, options_.z_loss_coef);
      out.stats.z_loss = static_cast<double>(z.item());
      out.balance_loss = Var<RouterScalar>(out.balance_loss + z);
    }
    static_cast<LoadStatistics&>(out.stats) = load_statistics(plan.routed_per_expert, plan.dropped());
    const auto bias = router.bias().to_vector();
    out.stats.expert_bias.assign(bias.begin(), bias.end());
    out.output = y.reshape(x.shape());
    out.expert_ids = std::move(r.expert_ids);
    return out;
  }
  MoEOutput<T, B> operator()(const Var<T, B>& x, const Tensor<std::int64_t>& replay = {}) { return forward(x, replay); }

  /// Call once per optimizer step, after it: in training mode, moves the auxiliary-loss-free
  /// bias by the load counted over every forward since the previous call (all micro-batches of
  /// the step); then starts a new global batch for the statistics. Does nothing in eval().
  void finish_step() {
    if (!is_training()) return;
    if (options_.bias_update_speed > 0) {
      Tensor<RouterScalar> bias = router.bias();
      update_expert_bias(bias, global_load_, options_.bias_update_speed);
    }
    reset_global_batch();
  }
  /// The load counted since the last finish_step (training forwards, replays excluded).
  LoadStatistics global_load() const { return load_statistics(global_load_, 0); }
  void reset_global_batch() {
    global_load_.assign(static_cast<std::size_t>(config().n_experts), 0);
  }

  void visit(nn::Members& m) override {
    m.module("router", router);
    m.modules("experts", experts);
    if (config().n_shared > 0) m.module("shared_experts", shared_experts);
  }

 private:
  static const MoEConfig& checked(const MoEConfig& c) {
    if (const char* problem = detail::config_problem(c)) fail<config_error>("MoE", problem);
    return c;
  }
  void init() {
    detail::check_options(options_);
    const MoEConfig& c = config();
    Generator& gen = options_.generator ? *options_.generator : default_generator();
    options_.generator = nullptr;  // not kept: it may not outlive the layer
    router = Router<RouterScalar>(c.d_model, c.n_experts, gen);
    experts.reserve(static_cast<std::size_t>(c.n_experts));
    for (std::int64_t e = 0; e < c.n_experts; ++e) experts.emplace_back(c.d_model, c.d_ff, gen);
    if (c.n_shared > 0) shared_experts = FeedForward<T, B>(c.d_model, c.n_shared * c.d_ff, gen);
    reset_global_batch();
  }

  Options options_;
  Generator noise_;
  std::vector<std::int64_t> global_load_;  // assignments per expert since the last finish_step()
};

}  // namespace dsm::moe

namespace dsm::nn {
/// The MoE layer under the nn namespace, as DESIGN.md names it.
template <moe::MoEConfig C = dynamic, FloatingScalar T = float, class B = cpu>
using MoE = moe::MoELayer<C, T, B>;
}  // namespace dsm::nn
