// dsm/moe/config.hpp: what a Mixture-of-Experts layer is (MoEConfig, a template argument) and how
// it is tuned between runs (MoEOptions).
//
//   // Mixtral-style: 8 experts, softmax top-2, weights renormalized over the two chosen.
//   dsm::moe::MoELayer<{.d_model = 512, .d_ff = 1024, .n_experts = 8, .top_k = 2}> mixtral;
//   // DeepSeek-V3-style: sigmoid affinities, 4 groups of which 2 are kept, one shared expert.
//   dsm::moe::MoELayer<{.d_model = 256, .d_ff = 128, .n_experts = 16, .top_k = 4, .n_shared = 1,
//                       .gate = dsm::moe::GateKind::sigmoid, .n_groups = 4, .topk_groups = 2}> v3;
//
// The configuration holds what changes the generated code (sizes, counts, kinds); an impossible
// combination is a static_assert with a sentence, or a config_error in the dsm::dynamic form.
#pragma once

#include <cstdint>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../nn/module.hpp"

namespace dsm::moe {

/// How router logits become affinities.
enum class GateKind {
  softmax,  ///< GShard / Mixtral: softmax over the experts; groups scored by their best expert
  sigmoid,  ///< DeepSeek-V3: independent sigmoids; groups scored by the sum of their two best
};

struct MoEConfig {
  std::int64_t d_model = 0;
  std::int64_t d_ff = 0;          ///< hidden width of one routed expert (SwiGLU)
  std::int64_t n_experts = 0;     ///< routed experts
  std::int64_t top_k = 1;         ///< experts per token
  std::int64_t n_shared = 0;      ///< shared experts (merged into one FFN of n_shared * d_ff)
  GateKind gate = GateKind::softmax;
  std::int64_t n_groups = 1;      ///< expert groups for group-limited routing (1: off)
  std::int64_t topk_groups = 1;   ///< groups a token may use
  bool normalize_weights = true;  ///< renormalize the k chosen weights to sum 1
  bool dynamic_form = false;      // set by dsm::dynamic only
};

/// What the auxiliary balance loss counts its expert loads over.
enum class BalanceScope {
  micro_batch,   ///< each forward's own tokens (Switch)
  global_batch,  ///< every forward since the last finish_step() (global-batch balancing)
};

/// The tunable scalars of an MoE layer. Zero turns a mechanism off.
///
/// Example:
///   dsm::moe::MoEOptions o;
///   o.aux_loss_coef = 0.01;         // Switch balance loss
///   o.bias_update_speed = 1e-3;     // DeepSeek-V3 auxiliary-loss-free balancing
///   o.capacity_factor = 1.25;       // drop tokens beyond 1.25x the even share (0: dropless)
struct MoEOptions {
  double capacity_factor = 0.0;        ///< expert capacity = ceil(cf * tokens * k / experts); 0: dropless
  double aux_loss_coef = 0.0;          ///< alpha of the Switch loss alpha * N * sum_i f_i P_i
  double seq_aux_loss_coef = 0.0;      ///< alpha of DeepSeek-V3's sequence-wise balance loss
  double z_loss_coef = 0.0;            ///< ST-MoE router z-loss coefficient
  double bias_update_speed = 0.0;      ///< gamma of the auxiliary-loss-free bias update
  double routed_scaling_factor = 1.0;  ///< multiplies the routed weights (DeepSeek-V3: 2.5)
  double noise_std = 0.0;              ///< std of Gaussian noise added to router logits in training
  BalanceScope balance_scope = BalanceScope::micro_batch;
  std::uint64_t noise_seed = 0x5eed;   ///< seeds the layer's own noise generator
  Generator* generator = nullptr;      ///< initializes the weights; the default generator when null
};

namespace detail {

/// The first violated rule of a configuration, or nullptr. One list serves the static_assert
/// (through the constexpr checks in MoELayer) and the dynamic form's config_error.
constexpr const char* config_problem(const MoEConfig& c) {
  if (c.d_model <= 0) return "d_model must be positive";
  if (c.d_ff <= 0) return "d_ff must be positive";
  if (c.n_experts <= 0) return "n_experts must be positive";
  if (c.top_k <= 0) return "top_k must be positive";
  if (c.top_k > c.n_experts) return "top_k must not exceed the number of experts";
  if (c.n_shared < 0) return "n_shared must not be negative";
  if (c.n_groups <= 0) return "n_groups must be positive";
  if (c.n_experts % c.n_groups != 0) return "n_experts must be divisible by n_groups";
  if (c.topk_groups <= 0) return "topk_groups must be positive";
  if (c.topk_groups > c.n_groups) return "topk_groups must not exceed n_groups";
  if (c.top_k > c.topk_groups * (c.n_experts / c.n_groups)) return "top_k must not exceed the experts in the kept groups";
  return nullptr;
}

inline void check_options(const MoEOptions& o) {
  if (!(o.capacity_factor >= 0)) fail<config_error>("MoE", "capacity_factor must be >= 0 (0 for dropless), got ", o.capacity_factor);
  if (!(o.aux_loss_coef >= 0) || !(o.seq_aux_loss_coef >= 0) || !(o.z_loss_coef >= 0))
    fail<config_error>("MoE", "loss coefficients must be >= 0, got aux ", o.aux_loss_coef, ", seq_aux ", o.seq_aux_loss_coef, ", z ", o.z_loss_coef);
  if (!(o.bias_update_speed >= 0)) fail<config_error>("MoE", "bias_update_speed must be >= 0, got ", o.bias_update_speed);
  if (!(o.noise_std >= 0)) fail<config_error>("MoE", "noise_std must be >= 0, got ", o.noise_std);
  if (!(o.routed_scaling_factor > 0)) fail<config_error>("MoE", "routed_scaling_factor must be positive, got ", o.routed_scaling_factor);
}

}  // namespace detail
}  // namespace dsm::moe
