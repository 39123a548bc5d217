// dsm/moe/dispatch.hpp: moving tokens to their experts and back.
//
//   auto plan = dsm::moe::make_dispatch_plan(expert_ids, n_experts);   // ids [tokens, k]
//   Var<float> xp = dsm::moe::permute_tokens(x, plan);       // [rows, d]: expert 0's rows, then 1's...
//   ... each expert e runs on rows [plan.expert_offsets[e], plan.expert_offsets[e + 1]) ...
//   Var<float> y = dsm::moe::unpermute_tokens(yp, weights, plan);     // [tokens, d]
//
// The plan is a stable counting sort of the (token, slot) assignments by expert id: O(tokens * k),
// and within an expert's block the rows keep token order. With a capacity, an expert keeps its
// first `capacity` assignments in token order and drops the rest (GShard/Switch): a dropped
// assignment contributes nothing, so a token dropped by all its experts leaves the layer as zero
// and passes through the residual connection unchanged.
//
// Permute and un-permute are separate functions because expert parallelism puts an all-to-all
// between them. Both backwards are gathers, summed per token in slot order, so results do not
// depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../autograd/autograd.hpp"

namespace dsm::moe {

/// Where every (token, slot) assignment goes. Built by make_dispatch_plan.
struct DispatchPlan {
  std::int64_t n_tokens = 0;
  std::int64_t top_k = 0;
  std::int64_t n_experts = 0;
  std::int64_t capacity = -1;                   ///< rows an expert keeps; -1 when dropless
  std::vector<std::int64_t> routed_per_expert;  ///< [experts] assignments routed, before dropping
  std::vector<std::int64_t> expert_offsets;     ///< [experts + 1] first permuted row of each expert
  std::vector<std::int64_t> row_of_slot;        ///< [tokens * k] permuted row of (t, j), -1 if dropped
  std::vector<std::int64_t> token_of_row;       ///< [rows] source token of each permuted row

  std::int64_t rows() const { return static_cast<std::int64_t>(token_of_row.size()); }
  std::int64_t rows_of(std::int64_t expert) const {
    return expert_offsets[static_cast<std::size_t>(expert + 1)] - expert_offsets[static_cast<std::size_t>(expert)];
  }
  std::int64_t dropped() const { return n_tokens * top_k - rows(); }
};

/// The rows an expert keeps for capacity factor `cf` (0: dropless, -1).
inline std::int64_t expert_capacity(double cf, std::int64_t n_tokens, std::int64_t top_k, std::int64_t n_experts) {
  if (cf <= 0) return -1;
  return static_cast<std::int64_t>(std::ceil(cf * static_cast<double>(n_tokens * top_k) / static_cast<double>(n_experts)));
}

/// Sorts the assignments of expert_ids [tokens, k] by expert, stably. Requires ids in
/// [0, n_experts); capacity -1 (dropless) or >= 0.
inline DispatchPlan make_dispatch_plan(const Tensor<std::int64_t>& expert_ids, std::int64_t n_experts, std::int64_t capacity = -1) {
  if (expert_ids.rank() != 2) fail<shape_error>("make_dispatch_plan", "expert ids must be [tokens, k], got ", expert_ids.shape());
  if (n_experts <= 0) fail<config_error>("make_dispatch_plan", "n_experts must be positive, got ", n_experts);
  if (capacity < -1) fail<config_error>("make_dispatch_plan", "capacity must be -1 (dropless) or >= 0, got ", capacity);
  const Tensor<std::int64_t> ids = expert_ids.contiguous();
  DispatchPlan p;
  p.n_tokens = ids.size(0);
  p.top_k = ids.size(1);
  p.n_experts = n_experts;
  p.capacity = capacity;
  const std::int64_t slots = p.n_tokens * p.top_k;
  const std::int64_t* id = ids.data();
  p.routed_per_expert.assign(static_cast<std::size_t>(n_experts), 0);
  for (std::int64_t s = 0; s < slots; ++s) {
    if (id[s] < 0 || id[s] >= n_experts)
      fail<index_error>("make_dispatch_plan", "expert id ", id[s], " at token ", s / p.top_k, " is out of range for ", n_experts, " experts");
    ++p.routed_per_expert[static_cast<std::size_t>(id[s])];
  }
  p.expert_offsets.assign(static_cast<std::size_t>(n_experts + 1), 0);
  for (std::int64_t e = 0; e < n_experts; ++e) {
    const std::int64_t routed = p.routed_per_expert[static_cast<std::size_t>(e)];
    const std::int64_t kept = capacity < 0 ? routed : std::min(routed, capacity);
    p.expert_offsets[static_cast<std::size_t>(e + 1)] = p.expert_offsets[static_cast<std::size_t>(e)] + kept;
  }
  p.token_of_row.assign(static_cast<std::size_t>(p.expert_offsets.back()), 0);
  p.row_of_slot.assign(static_cast<std::size_t>(slots), -1);
  std::vector<std::int64_t> next(p.expert_offsets.begin(), p.expert_offsets.end() - 1);
  for (std::int64_t s = 0; s < slots; ++s) {
    const auto e = static_cast<std::size_t>(id[s]);
    if (next[e] == p.expert_offsets[e + 1]) continue;  // over capacity: dropped
    p.row_of_slot[static_cast<std::size_t>(s)] = next[e];
    p.token_of_row[static_cast<std::size_t>(next[e]++)] = s / p.top_k;
  }
  return p;
}

namespace detail {

inline void check_plan(const char* op, const DispatchPlan& plan, std::int64_t tokens) {
  if (tokens != plan.n_tokens) fail<shape_error>(op, "the plan was made for ", plan.n_tokens, " tokens, got ", tokens);
}

/// out[row] = x[token_of_row[row]] for x [tokens, d] contiguous.
template <class T>
Tensor<T> gather_rows(const Tensor<T>& x, const DispatchPlan& plan) {
  const std::int64_t d = x.size(1);
  Tensor<T> out({plan.rows(), d});
  const T* src = x.data();
  T* dst = out.data();
  cpu::parallel_for(plan.rows(), 256, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) std::memcpy(dst + r * d, src + plan.token_of_row[static_cast<std::size_t>(r)] * d, sizeof(T) * static_cast<std::size_t>(d));
  });
  return out;
}

/// out[t] (+)= sum_j w[t, j] * y[row_of_slot[t, j]] for out [tokens, d] contiguous, in slot order
/// (w null: weight 1). Without `add` the first kept slot sets the row (a token whose slots were all
/// dropped gets zeros); with it every slot adds to what out holds.
template <class T, class TW>
void combine_rows_into(const Tensor<T>& y, const TW* w, const DispatchPlan& plan, T* dst, bool add) {
  const std::int64_t d = y.size(1), k = plan.top_k;
  const T* src = y.data();
  cpu::parallel_for(plan.n_tokens, 64, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) {
      T* o = dst + t * d;
      bool written = add;  // until a slot has set the row, the first one overwrites it
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t r = plan.row_of_slot[static_cast<std::size_t>(t * k + j)];
        if (r < 0) continue;
        const T* yr = src + r * d;
        const T wt = w ? static_cast<T>(w[t * k + j]) : T(1);
        if (written) {
          DSM_SIMD for (std::int64_t c = 0; c < d; ++c) o[c] += wt * yr[c];
        } else {
          DSM_SIMD for (std::int64_t c = 0; c < d; ++c) o[c] = wt * yr[c];
        }
        written = true;
      }
      if (!written) std::fill(o, o + d, T(0));  // every slot dropped: the token leaves as zero
    }
  });
}

/// out[t] = sum_j w[t, j] * y[row_of_slot[t, j]] as a new [tokens, d] tensor.
template <class T, class TW>
Tensor<T> combine_rows(const Tensor<T>& y, const TW* w, const DispatchPlan& plan) {
  Tensor<T> out({plan.n_tokens, y.size(1)});
  combine_rows_into(y, w, plan, out.data(), false);
  return out;
}

}  // namespace detail

/// Rows of x [tokens, d] in expert order: [plan.rows(), d]. The gradient sums each token's rows.
template <class T>
Var<T> permute_tokens(const Var<T>& x, const DispatchPlan& plan) {
  if (x.rank() != 2) fail<shape_error>("permute_tokens", "input must be [tokens, d], got ", x.shape());
  detail::check_plan("permute_tokens", plan, x.size(0));
  return autograd::make_result("permute_tokens", detail::gather_rows(x.value().contiguous(), plan), {autograd::edge_of(x)},
                               [keep = std::make_shared<DispatchPlan>(plan)](const Tensor<T>& g, const std::vector<autograd::Edge>& in) {
                                 const Tensor<T> gc = g.contiguous();
                                 // x also feeds the router: the second gradient to arrive adds where it is computed
                                 autograd::accumulate_input_with<T, cpu>(
                                     in[0], [&](T* dst, bool add) { detail::combine_rows_into<T, T>(gc, nullptr, *keep, dst, add); });
                               });
}

/// out[t] = sum_j weights[t, j] * y[row of (t, j)] for y [plan.rows(), d]; dropped assignments
/// add nothing. weights [tokens, k] may be undefined (all ones). Gradients reach y and weights.
template <class T, class TW>
Var<T> unpermute_tokens(const Var<T>& y, const Var<TW>& weights, const DispatchPlan& plan) {
  if (y.rank() != 2 || y.size(0) != plan.rows())
    fail<shape_error>("unpermute_tokens", "expert outputs ", y.shape(), " must be [", plan.rows(), ", d] for this plan");
  if (weights.defined() && weights.shape() != Shape{plan.n_tokens, plan.top_k})
    fail<shape_error>("unpermute_tokens", "weights ", weights.shape(), " must be [", plan.n_tokens, ", ", plan.top_k, "]");
  const Tensor<T> yv = y.value().contiguous();
  const Tensor<TW> wv = weights.defined() ? weights.value().contiguous() : Tensor<TW>();
  auto keep = std::make_shared<DispatchPlan>(plan);
  Tensor<T> out = detail::combine_rows(yv, wv.defined() ? wv.data() : static_cast<const TW*>(nullptr), plan);
  std::vector<autograd::Edge> edges{autograd::edge_of(y)};
  if (weights.defined()) edges.push_back(autograd::edge_of(weights));
  return autograd::make_result("unpermute_tokens", std::move(out), std::move(edges),
                               [yv, wv, keep](const Tensor<T>& g0, const std::vector<autograd::Edge>& in) {
                                 const DispatchPlan& p = *keep;
                                 const Tensor<T> g = g0.contiguous();
                                 const std::int64_t d = g.size(1), k = p.top_k;
                                 const bool weighted = wv.defined();
                                 Tensor<T> gy({p.rows(), d});
                                 Tensor<TW> gw = weighted && in.size() > 1 && in[1] ? Tensor<TW>::zeros({p.n_tokens, k}) : Tensor<TW>();
                                 cpu::parallel_for(p.n_tokens, 64, [&](std::int64_t b, std::int64_t e) {
                                   for (std::int64_t t = b; t < e; ++t) {
                                     const T* gt = g.data() + t * d;
                                     for (std::int64_t j = 0; j < k; ++j) {
                                       const std::int64_t r = p.row_of_slot[static_cast<std::size_t>(t * k + j)];
                                       if (r < 0) continue;
                                       const T wt = weighted ? static_cast<T>(wv.data()[t * k + j]) : T(1);
                                       T* gyr = gy.data() + r * d;
                                       DSM_SIMD for (std::int64_t c = 0; c < d; ++c) gyr[c] = wt * gt[c];
                                       if (gw.defined()) {
                                         const T* yr = yv.data() + r * d;
                                         double dot = 0;  // in double, as vectors: a scalar loop was 1% of a W7 step
                                         DSM_SIMD_REDUCE(+, dot) for (std::int64_t c = 0; c < d; ++c) dot += static_cast<double>(gt[c]) * static_cast<double>(yr[c]);
                                         gw.data()[t * k + j] = static_cast<TW>(dot);
                                       }
                                     }
                                   }
                                 });
                                 autograd::accumulate_input(in[0], std::move(gy));
                                 if (gw.defined()) autograd::accumulate_input(in[1], std::move(gw));
                               });
}

}  // namespace dsm::moe
