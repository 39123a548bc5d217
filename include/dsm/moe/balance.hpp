// dsm/moe/balance.hpp: keeping experts evenly loaded.
//
// Losses (each returns a differentiable scalar to add to the main loss, so that it is scaled,
// accumulated and clipped exactly like it):
//   switch_balance_loss   alpha * N * sum_i f_i P_i                     (Switch Transformer)
//   sequence_balance_loss the same per sequence, averaged over sequences (DeepSeek-V3)
//   router_z_loss         coef * mean_t logsumexp(logits_t)^2             (ST-MoE)
// with N experts, f_i = (assignments to expert i) / (tokens * k), a constant, and P_i the mean
// router probability of expert i, through which the gradient flows.
//
// Auxiliary-loss-free balancing (DeepSeek-V3) needs no loss: update_expert_bias moves a per-expert
// selection bias by gamma against the sign of each expert's excess load.
//
// Statistics: load_statistics summarizes one forward's routing (tokens per expert, fraction
// dropped, MaxVio = (max load - mean load) / mean load, dead experts).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../autograd/autograd.hpp"
#include "config.hpp"
#include "dispatch.hpp"

namespace dsm::moe {

/// Probabilities for the balance losses: softmax scores as they are, sigmoid affinities
/// normalized to sum 1 over the experts (as DeepSeek-V3 defines P_i).
template <FloatingScalar T>
Var<T> balance_probabilities(const Var<T>& scores, GateKind gate) {
  if (gate == GateKind::softmax) return scores;
  return Var<T>(scores / sum(scores, {-1}, true));
}

/// alpha * N * sum_i f_i P_i over probs [tokens, N]; counts[i] = assignments to expert i, of
/// `assignments` in all. Zero (and no graph) when alpha is 0.
template <FloatingScalar T>
Var<T> switch_balance_loss(const Var<T>& probs, const std::vector<std::int64_t>& counts, std::int64_t assignments, double alpha) {
  const std::int64_t n_experts = probs.size(-1);
  if (static_cast<std::int64_t>(counts.size()) != n_experts)
    fail<shape_error>("switch_balance_loss", counts.size(), " expert counts for ", n_experts, " experts");
  if (alpha == 0 || assignments == 0) return Var<T>(Tensor<T>::scalar(T(0)));
  Tensor<T> f({n_experts});
  for (std::int64_t i = 0; i < n_experts; ++i)
    f.data()[i] = static_cast<T>(alpha * static_cast<double>(n_experts) * static_cast<double>(counts[static_cast<std::size_t>(i)]) / static_cast<double>(assignments));
  return sum(Var<T>(mean(probs, {0}) * f));
}

/// DeepSeek-V3's sequence-wise loss: probs [sequences, length, N], expert_ids [sequences *
/// length, k]; alpha * N * sum_i f_i P_i per sequence, averaged over the sequences.
template <FloatingScalar T>
Var<T> sequence_balance_loss(const Var<T>& probs, const Tensor<std::int64_t>& expert_ids, double alpha) {
  if (probs.rank() != 3 || expert_ids.rank() != 2 || expert_ids.size(0) != probs.size(0) * probs.size(1))
    fail<shape_error>("sequence_balance_loss", "probabilities ", probs.shape(), " must be [sequences, length, experts] and ids ", expert_ids.shape(),
                      " [sequences * length, k]");
  if (alpha == 0) return Var<T>(Tensor<T>::scalar(T(0)));
  const std::int64_t seqs = probs.size(0), len = probs.size(1), n = probs.size(2), k = expert_ids.size(1);
  const Tensor<std::int64_t> ids = expert_ids.contiguous();
  Tensor<T> f = Tensor<T>::zeros({seqs, n});
  const double unit = alpha * static_cast<double>(n) / static_cast<double>(k * len) / static_cast<double>(seqs);
  for (std::int64_t s = 0; s < seqs; ++s)
    for (std::int64_t i = 0; i < len * k; ++i) f.data()[s * n + ids.data()[s * len * k + i]] += static_cast<T>(unit);
  return sum(Var<T>(mean(probs, {1}) * f));
}

/// coef * mean over tokens of logsumexp(logits)^2 (logits [tokens, N]).
template <FloatingScalar T>
Var<T> router_z_loss(const Var<T>& logits, double coef) {
  if (coef == 0) return Var<T>(Tensor<T>::scalar(T(0)));
  const Var<T> z = logsumexp(logits, {-1});
  return mean(Var<T>(z * z * static_cast<T>(coef)));
}

/// The load of one forward (or one global batch).
struct LoadStatistics {
  std::vector<std::int64_t> tokens_per_expert;  ///< assignments routed to each expert, before dropping
  double fraction_dropped = 0;                  ///< dropped assignments / all assignments
  double max_vio = 0;                           ///< (max load - mean load) / mean load
  std::int64_t dead_experts = 0;                ///< experts that received no token
};

inline LoadStatistics load_statistics(const std::vector<std::int64_t>& tokens_per_expert, std::int64_t dropped) {
  LoadStatistics s;
  s.tokens_per_expert = tokens_per_expert;
  std::int64_t total = 0, most = 0;
  for (std::int64_t c : tokens_per_expert) {
    total += c;
    most = std::max(most, c);
    s.dead_experts += c == 0;
  }
  if (total > 0) {
    const double mean = static_cast<double>(total) / static_cast<double>(tokens_per_expert.size());
    s.max_vio = (static_cast<double>(most) - mean) / mean;
    s.fraction_dropped = static_cast<double>(dropped) / static_cast<double>(total);
  }
  return s;
}

/// Auxiliary-loss-free balancing: bias_i += gamma * sign(mean load - load_i). Loads are counts
/// over any number of forwards; nothing changes when no token was counted.
template <FloatingScalar T>
void update_expert_bias(Tensor<T>& bias, const std::vector<std::int64_t>& load, double gamma) {
  if (static_cast<std::int64_t>(load.size()) != bias.numel())
    fail<shape_error>("update_expert_bias", load.size(), " expert loads for a bias of ", bias.numel(), " experts");
  std::int64_t total = 0;
  for (std::int64_t c : load) total += c;
  if (total == 0 || gamma == 0) return;
  const double mean = static_cast<double>(total) / static_cast<double>(load.size());
  Tensor<T> b = bias.contiguous();
  for (std::size_t i = 0; i < load.size(); ++i) {
    const double excess = static_cast<double>(load[i]) - mean;
    b.data()[i] += static_cast<T>(excess > 0 ? -gamma : excess < 0 ? gamma : 0.0);
  }
  if (b.data() != bias.data()) bias.copy_(b);
}

}  // namespace dsm::moe
