// dsm/nn/functional/crf.hpp: linear-chain CRF: negative log-likelihood, Viterbi and n-best.
//
//   functional::CRFScores<float> s{start, end, transitions};        // [K], [K], [K, K]
//   Var<float> loss = functional::crf_nll(emissions, tags, lengths, s); // emissions [B, T, K]
//   auto best = functional::viterbi_decode(emissions.value(), lengths, s);  // best.tags [B, T]
//
// The score of tags y_0..y_{L-1} of a sequence of length L is
//   start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]
// (transitions[i, j] scores moving from tag i to tag j, as pytorch-crf defines it). The NLL is
// log Z - score(gold), log Z by the forward algorithm in log space: each step subtracts the
// running maximum of the forward scores, so a step is one K x K matrix-vector product in linear
// space plus K logs, exact for any scores and free of overflow. The backward computes the
// backward scores likewise and the gradients as marginals minus gold counts (one node).
// Viterbi for the best path runs all the sequences of a batch together, vectorized across them;
// n-best (list Viterbi) runs one sequence at a time.
//
// Constraints (BIO/BIOES schemes, see nn/crf.hpp) mark transitions, starts and ends as
// impossible: they score -inf in the NLL and in decoding, receive no gradient, and a gold path
// that uses one is an error. Steps at t >= lengths[b] are padding: no score, no gradient.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "../../autograd/autograd.hpp"
#include "../../expr/math.hpp"
#include "lstm.hpp"  // checked_lengths, lengths_from_mask

namespace dsm::nn::functional {

/// The CRF's parameters: start [K], end [K], transitions [K, K] (from row tag to column tag).
template <class T, class B = cpu>
struct CRFScores {
  Var<T, B> start;
  Var<T, B> end;
  Var<T, B> transitions;
};

/// Which starts, ends and transitions are possible (all, when a vector is empty).
struct CRFConstraints {
  std::vector<bool> start;        ///< [K]
  std::vector<bool> end;          ///< [K]
  std::vector<bool> transitions;  ///< [K * K], row-major from -> to
};

enum class CRFReduction { none, sum, mean, token_mean };  ///< mean: over sequences; token_mean: over real tokens

/// Best paths: tags [B, T] (-1 at padding) or [B, n, T] for n-best (-1 where fewer paths
/// exist), and their scores [B] or [B, n] (-inf where no path).
template <class T>
struct CRFPaths {
  Tensor<std::int64_t> tags;
  Tensor<T> scores;
};

namespace detail {

/// The scores as flat vectors with constraints applied (-inf where impossible), checked.
template <class T>
struct CRFTables {
  std::int64_t k = 0;
  std::vector<T> start, end, trans;
};

template <class T, class B>
CRFTables<T> crf_tables(const char* op, const CRFScores<T, B>& s, std::int64_t k, const CRFConstraints* c) {
  if (!s.start.defined() || !s.end.defined() || !s.transitions.defined()) fail<config_error>(op, "start, end and transitions must all be defined");
  if (s.start.shape() != Shape{k} || s.end.shape() != Shape{k} || s.transitions.shape() != Shape{k, k})
    fail<shape_error>(op, "start ", s.start.shape(), ", end ", s.end.shape(), " and transitions ", s.transitions.shape(), " must be [", k, "], [", k,
                      "] and [", k, ", ", k, "] for emissions with ", k, " tags");
  CRFTables<T> t{k, s.start.value().contiguous().to_vector(), s.end.value().contiguous().to_vector(), s.transitions.value().contiguous().to_vector()};
  if (c) {
    const auto uk = static_cast<std::size_t>(k);
    if ((!c->start.empty() && c->start.size() != uk) || (!c->end.empty() && c->end.size() != uk) || (!c->transitions.empty() && c->transitions.size() != uk * uk))
      fail<shape_error>(op, "constraints for ", c->start.size(), " starts, ", c->end.size(), " ends and ", c->transitions.size(), " transitions; ", k,
                        " tags need ", k, ", ", k, " and ", k * k);
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    for (std::size_t i = 0; i < c->start.size(); ++i)
      if (!c->start[i]) t.start[i] = ninf;
    for (std::size_t i = 0; i < c->end.size(); ++i)
      if (!c->end[i]) t.end[i] = ninf;
    for (std::size_t i = 0; i < c->transitions.size(); ++i)
      if (!c->transitions[i]) t.trans[i] = ninf;
  }
  return t;
}

template <class T>
T log_sum_exp(const T* v, std::int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, v[i]);
  if (m == -std::numeric_limits<T>::infinity()) return m;
  T s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += std::exp(v[i] - m);
  return m + std::log(s);
}

/// Row stride of the exponentiated transition matrices: K rounded up to 8, the padding zero, so
/// that the matrix-vector product below runs whole vectors.
inline std::int64_t padded_tags(std::int64_t k) { return (k + 7) / 8 * 8; }

/// next[j] = log sum_i exp(cur[i] + trans[i, j]) with trans given as exp(trans - tmax) (row
/// stride padded_tags(k)): shift by max(cur), one matrix-vector product, K logs.
template <class T>
void log_matvec(std::int64_t k, const T* cur, const T* exp_trans, T tmax, T* scratch, T* next) {
  const std::int64_t kp = padded_tags(k);
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t i = 0; i < k; ++i) m = std::max(m, cur[i]);
  if (m == -std::numeric_limits<T>::infinity()) {
    for (std::int64_t j = 0; j < k; ++j) next[j] = m;
    return;
  }
  DSM_SIMD for (std::int64_t i = 0; i < k; ++i) scratch[i] = math::exp_nonpositive(cur[i] - m);  // vectorized; libm's expf is a call per element
  // Columns 24 (then 8) at a time, summed in registers: accumulating into next[] in memory made
  // each row's update wait on the previous row's store (K = 20 took 3x longer).
  auto column_block = [&]<std::int64_t Width>(std::int64_t j0) {
    T acc[Width];  // starts from row 0's terms: zeroing it first compiled to a slow-starting rep stos
    DSM_SIMD for (std::int64_t j = 0; j < Width; ++j) acc[j] = scratch[0] * exp_trans[j0 + j];
    for (std::int64_t i = 1; i < k; ++i) {
      const T p = scratch[i];
      const T* row = exp_trans + i * kp + j0;
      DSM_SIMD for (std::int64_t j = 0; j < Width; ++j) acc[j] += p * row[j];
    }
    // log 0 = -inf: no path reaches j.
    const std::int64_t valid = std::min(Width, k - j0);
    DSM_SIMD for (std::int64_t j = 0; j < valid; ++j) next[j0 + j] = m + tmax + math::log(acc[j]);
  };
  std::int64_t j0 = 0;
  for (; j0 + 24 <= kp; j0 += 24) column_block.template operator()<24>(j0);
  for (; j0 < kp; j0 += 8) column_block.template operator()<8>(j0);
}

/// exp(trans - tmax) and its transpose, rows padded to padded_tags(k) with zeros; tmax the
/// largest finite transition (0 if none).
template <class T>
T exp_transitions(const CRFTables<T>& t, std::vector<T>& e, std::vector<T>& et) {
  const std::int64_t k = t.k, kp = padded_tags(k);
  T tmax = -std::numeric_limits<T>::infinity();
  for (T v : t.trans)
    if (std::isfinite(v)) tmax = std::max(tmax, v);
  if (!std::isfinite(tmax)) tmax = 0;
  e.assign(static_cast<std::size_t>(k * kp), T(0));
  et.assign(e.size(), T(0));
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      const T v = std::exp(t.trans[static_cast<std::size_t>(i * k + j)] - tmax);
      e[static_cast<std::size_t>(i * kp + j)] = v;
      et[static_cast<std::size_t>(j * kp + i)] = v;
    }
  return tmax;
}

}  // namespace detail

/// The CRF negative log-likelihood of `tags` [B, T] (int64 in [0, K) at real steps; anything at
/// padding) under emissions [B, T, K]. One autograd node over emissions and the three scores.
template <FloatingScalar T, class B, class I>
Var<T, B> crf_nll(const Var<T, B>& emissions, const Tensor<I, B>& tags, std::span<const std::int64_t> lengths, const CRFScores<T, B>& scores,
                  CRFReduction reduction = CRFReduction::mean, const CRFConstraints* constraints = nullptr) {
  constexpr const char* op = "crf_nll";
  if (emissions.rank() != 3) fail<shape_error>(op, "emissions of shape ", emissions.shape(), " must be [batch, time, tags]");
  const std::int64_t nb = emissions.size(0), steps = emissions.size(1), k = emissions.size(2);
  if (tags.shape() != Shape{nb, steps}) fail<shape_error>(op, "tags of shape ", tags.shape(), " must be [", nb, ", ", steps, "]");
  const auto lens = checked_lengths(op, lengths, nb, steps);
  const auto tab = detail::crf_tables(op, scores, k, constraints);
  const Tensor<T, B> ev = emissions.value().contiguous();
  const auto tv = tags.contiguous().to_vector();
  auto gold = [tv, steps](std::int64_t b, std::int64_t t) { return static_cast<std::int64_t>(tv[static_cast<std::size_t>(b * steps + t)]); };
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t t = 0; t < lens[static_cast<std::size_t>(b)]; ++t)
      if (gold(b, t) < 0 || gold(b, t) >= k) fail<index_error>(op, "tag ", gold(b, t), " at sequence ", b, ", step ", t, " is outside [0, ", k, ")");

  std::vector<T> exp_t, exp_tt;
  const T tmax = detail::exp_transitions(tab, exp_t, exp_tt);
  Tensor<T, B> alpha({nb, steps, k});  // forward scores, saved for the backward
  std::vector<T> log_z(static_cast<std::size_t>(nb)), nll(static_cast<std::size_t>(nb));
  cpu::parallel_for(nb, 4, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<T> scratch(static_cast<std::size_t>(k)), last(static_cast<std::size_t>(k));
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t len = lens[static_cast<std::size_t>(b)];
      if (len == 0) continue;  // the empty path: score 0, log Z 0
      const T* e = ev.data() + b * steps * k;
      T* a = alpha.data() + b * steps * k;
      for (std::int64_t j = 0; j < k; ++j) a[j] = tab.start[static_cast<std::size_t>(j)] + e[j];
      for (std::int64_t t = 1; t < len; ++t) {
        detail::log_matvec(k, a + (t - 1) * k, exp_t.data(), tmax, scratch.data(), a + t * k);
        for (std::int64_t j = 0; j < k; ++j) a[t * k + j] += e[t * k + j];
      }
      for (std::int64_t j = 0; j < k; ++j) last[static_cast<std::size_t>(j)] = a[(len - 1) * k + j] + tab.end[static_cast<std::size_t>(j)];
      log_z[static_cast<std::size_t>(b)] = detail::log_sum_exp(last.data(), k);
      T s = tab.start[static_cast<std::size_t>(gold(b, 0))] + tab.end[static_cast<std::size_t>(gold(b, len - 1))];
      for (std::int64_t t = 0; t < len; ++t) s += e[t * k + gold(b, t)];
      for (std::int64_t t = 1; t < len; ++t) s += tab.trans[static_cast<std::size_t>(gold(b, t - 1) * k + gold(b, t))];
      nll[static_cast<std::size_t>(b)] = log_z[static_cast<std::size_t>(b)] - s;
    }
  });
  for (std::int64_t b = 0; b < nb; ++b)
    if (lens[static_cast<std::size_t>(b)] > 0 && nll[static_cast<std::size_t>(b)] == std::numeric_limits<T>::infinity())
      fail<error>(op, "the gold tags of sequence ", b, " use a start, end or transition the constraints forbid");

  std::int64_t tokens = 0;
  for (auto l : lens) tokens += l;
  std::vector<T> weight(static_cast<std::size_t>(nb), T(1));  // d(result) / d(nll_b) for scalar reductions
  Tensor<T, B> value;
  if (reduction == CRFReduction::none) {
    value = Tensor<T, B>::from_range(nll, Shape{nb});
  } else {
    T total = 0;
    for (T v : nll) total += v;
    const T div = reduction == CRFReduction::mean ? T(std::max<std::int64_t>(nb, 1)) : reduction == CRFReduction::token_mean ? T(std::max<std::int64_t>(tokens, 1)) : T(1);
    for (auto& w : weight) w = T(1) / div;
    value = Tensor<T, B>::scalar(total / div);
  }
  std::vector<autograd::Edge> edges{autograd::edge_of(emissions), autograd::edge_of(scores.start), autograd::edge_of(scores.end),
                                    autograd::edge_of(scores.transitions)};
  return autograd::make_result(
      op, std::move(value), std::move(edges),
      [=](const Tensor<T, B>& g0, const std::vector<autograd::Edge>& in) {
        const auto g = g0.contiguous().to_vector();  // [B] or a scalar
        Tensor<T, B> de = Tensor<T, B>::zeros({nb, steps, k});
        const int n_threads = [] {
#if defined(_OPENMP)
          return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
          return 1;
#endif
        }();
        // Per-thread sums of the score gradients, added up after the batch loop.
        std::vector<std::vector<T>> dstart(static_cast<std::size_t>(n_threads), std::vector<T>(static_cast<std::size_t>(k))),
            dend = dstart, dtrans(static_cast<std::size_t>(n_threads), std::vector<T>(static_cast<std::size_t>(k * k)));
        auto run = [&](std::int64_t b0, std::int64_t b1, std::size_t slot) {
          std::vector<T> beta(static_cast<std::size_t>(steps * k)), scratch(static_cast<std::size_t>(k)), cur(static_cast<std::size_t>(k)), u = cur, v = cur,
              outer(static_cast<std::size_t>(k * k));
          for (std::int64_t b = b0; b < b1; ++b) {
            const std::int64_t len = lens[static_cast<std::size_t>(b)];
            if (len == 0) continue;
            const T w = g[reduction == CRFReduction::none ? static_cast<std::size_t>(b) : 0] * weight[static_cast<std::size_t>(b)];
            const T lz = log_z[static_cast<std::size_t>(b)];
            const T* e = ev.data() + b * steps * k;
            const T* a = alpha.data() + b * steps * k;
            T* d = de.data() + b * steps * k;
            // Backward scores: beta[L-1] = end, beta[t] = logsumexp_j(trans[., j] + e[t+1, j] + beta[t+1, j]).
            for (std::int64_t j = 0; j < k; ++j) beta[static_cast<std::size_t>((len - 1) * k + j)] = tab.end[static_cast<std::size_t>(j)];
            for (std::int64_t t = len - 2; t >= 0; --t) {
              for (std::int64_t j = 0; j < k; ++j) cur[static_cast<std::size_t>(j)] = e[(t + 1) * k + j] + beta[static_cast<std::size_t>((t + 1) * k + j)];
              detail::log_matvec(k, cur.data(), exp_tt.data(), tmax, scratch.data(), beta.data() + t * k);
            }
            // Unary marginals minus gold one-hots.
            for (std::int64_t t = 0; t < len; ++t) {
              const T* bt = beta.data() + t * k;
              DSM_SIMD for (std::int64_t j = 0; j < k; ++j) d[t * k + j] = w * math::exp_nonpositive(a[t * k + j] + bt[j] - lz);
              d[t * k + gold(b, t)] -= w;
            }
            auto& ds = dstart[slot];
            auto& de_ = dend[slot];
            auto& dt = dtrans[slot];
            for (std::int64_t j = 0; j < k; ++j) {
              ds[static_cast<std::size_t>(j)] += d[j];                      // P(y_0 = j) - [gold]
              de_[static_cast<std::size_t>(j)] += d[(len - 1) * k + j];     // P(y_{L-1} = j) - [gold]
            }
            // Pair marginals P(y_{t-1} = i, y_t = j) = exp(alpha[t-1, i] + trans[i, j] + e[t, j] + beta[t, j] - log Z),
            // factored as u_i * exp(trans[i, j] - tmax) * v_j: u_i = exp(alpha[t-1, i] - max_i + r / 2),
            // v_j = exp(cur_j - max_j + r / 2), r = max_i + max_j + tmax. 2K exps a step instead of K^2;
            // the sum over steps of u_i v_j is an outer product, scaled by exp_t once per sequence.
            // Factors stay within e^{+-40} when r <= 80 (the marginals are at most 1, so r is small
            // unless the best-scoring i and j are joined by a very unlikely transition); a step past
            // that falls back to one exp per pair.
            std::fill(outer.begin(), outer.end(), T(0));
            for (std::int64_t t = 1; t < len; ++t) {
              const T* at = a + (t - 1) * k;
              T max_a = -std::numeric_limits<T>::infinity(), max_c = max_a;
              for (std::int64_t j = 0; j < k; ++j) {
                cur[static_cast<std::size_t>(j)] = e[t * k + j] + beta[static_cast<std::size_t>(t * k + j)] - lz;
                max_a = std::max(max_a, at[j]);
                max_c = std::max(max_c, cur[static_cast<std::size_t>(j)]);
              }
              dt[static_cast<std::size_t>(gold(b, t - 1) * k + gold(b, t))] -= w;
              if (max_a == -std::numeric_limits<T>::infinity() || max_c == -std::numeric_limits<T>::infinity()) continue;
              const T r = max_a + max_c + tmax;
              if (!(r <= T(80))) {
                for (std::int64_t i = 0; i < k; ++i) {
                  const T* tr = tab.trans.data() + i * k;
                  T* out = dt.data() + i * k;
                  DSM_SIMD for (std::int64_t j = 0; j < k; ++j) out[j] += w * math::exp_nonpositive(at[i] + tr[j] + cur[static_cast<std::size_t>(j)]);
                }
                continue;
              }
              const T shift_a = r / 2 - max_a, shift_c = r / 2 - max_c;
              DSM_SIMD for (std::int64_t j = 0; j < k; ++j) {
                u[static_cast<std::size_t>(j)] = math::exp_nonpositive(at[j] + shift_a);
                v[static_cast<std::size_t>(j)] = math::exp_nonpositive(cur[static_cast<std::size_t>(j)] + shift_c);
              }
              for (std::int64_t i = 0; i < k; ++i) {
                const T ui = u[static_cast<std::size_t>(i)];
                if (ui == T(0)) continue;
                T* out = outer.data() + i * k;
                DSM_SIMD for (std::int64_t j = 0; j < k; ++j) out[j] += ui * v[static_cast<std::size_t>(j)];
              }
            }
            const std::int64_t kp = detail::padded_tags(k);
            for (std::int64_t i = 0; i < k; ++i)
              DSM_SIMD for (std::int64_t j = 0; j < k; ++j) dt[static_cast<std::size_t>(i * k + j)] +=
                  w * exp_t[static_cast<std::size_t>(i * kp + j)] * outer[static_cast<std::size_t>(i * k + j)];
          }
        };
#if defined(_OPENMP)
        if (n_threads > 1 && nb > 1) {
#pragma omp parallel num_threads(n_threads)
          {
            const std::int64_t id = omp_get_thread_num(), nt = omp_get_num_threads();
            run(nb * id / nt, nb * (id + 1) / nt, static_cast<std::size_t>(id));
          }
        } else {
          run(0, nb, 0);
        }
#else
        run(0, nb, 0);
#endif
        auto total = [&](const std::vector<std::vector<T>>& parts, Shape s) {
          Tensor<T, B> out = Tensor<T, B>::zeros(s);
          for (const auto& p : parts)
            for (std::size_t i = 0; i < p.size(); ++i) out.data()[i] += p[i];
          return out;
        };
        if (in[0]) autograd::accumulate_input(in[0], std::move(de));
        if (in[1]) autograd::accumulate_input(in[1], total(dstart, {k}));
        if (in[2]) autograd::accumulate_input(in[2], total(dend, {k}));
        if (in[3]) autograd::accumulate_input(in[3], total(dtrans, {k, k}));
      });
}

namespace detail {

/// Plain Viterbi (the best path) for sequences [b0, b1) of emissions [B, T, K] at once, into
/// out.tags / out.scores (n = 1). The recursion runs over all the sequences together, with the
/// sequence innermost: a max over K predecessors per tag is then a vector loop without
/// horizontal reductions or data-dependent branches (one sequence at a time, the argmax's
/// mispredicted branches made it 4% of a W5 decode, five times this). Steps past a sequence's length
/// compute values nobody reads. Ties go to the smaller predecessor, then the smaller last tag.
template <class T>
void viterbi_best_batched(const T* emissions, std::int64_t steps, std::int64_t k, const std::vector<std::int64_t>& lens, const CRFTables<T>& tab,
                          std::int64_t b0, std::int64_t b1, CRFPaths<T>& out) {
  const T ninf = -std::numeric_limits<T>::infinity();
  const std::int64_t nbc = b1 - b0;
  std::int64_t longest = 0;
  for (std::int64_t b = b0; b < b1; ++b) longest = std::max(longest, lens[static_cast<std::size_t>(b)]);
  if (longest == 0) {
    for (std::int64_t b = b0; b < b1; ++b) out.scores.data()[b] = 0;  // empty paths
    return;
  }
  // delta[(t * K + j) * nbc + s]: the best score of a path of sequence b0 + s ending in tag j at
  // step t; back likewise, the tag it came from.
  std::vector<T> delta(static_cast<std::size_t>(longest * k * nbc));
  std::vector<std::int32_t> back(delta.size());
  auto emission = [&](std::int64_t s, std::int64_t t, std::int64_t j) { return emissions[((b0 + s) * steps + t) * k + j]; };
  for (std::int64_t j = 0; j < k; ++j)
    for (std::int64_t s = 0; s < nbc; ++s) delta[static_cast<std::size_t>(j * nbc + s)] = tab.start[static_cast<std::size_t>(j)] + emission(s, 0, j);
  // Running maxima, ping-ponged between two buffers: updating one in place turns the vector
  // loop's selects into masked stores, several times slower on some CPUs.
  std::vector<T> best_a(static_cast<std::size_t>(nbc)), best_b(best_a.size());
  std::vector<std::int32_t> from_a(best_a.size()), from_b(best_a.size());
  for (std::int64_t t = 1; t < longest; ++t)
    for (std::int64_t j = 0; j < k; ++j) {
      T* best = best_a.data();
      T* best_next = best_b.data();
      std::int32_t* from = from_a.data();
      std::int32_t* from_next = from_b.data();
      std::fill(best, best + nbc, ninf);
      std::fill(from, from + nbc, 0);
      for (std::int64_t i = 0; i < k; ++i) {
        const T tr = tab.trans[static_cast<std::size_t>(i * k + j)];
        const T* prev = delta.data() + ((t - 1) * k + i) * nbc;
        const auto tag = static_cast<std::int32_t>(i);
        DSM_SIMD for (std::int64_t s = 0; s < nbc; ++s) {
          const T v = prev[s] + tr;
          const bool gt = v > best[s];  // strictly: a tie keeps the smaller predecessor
          best_next[s] = gt ? v : best[s];
          from_next[s] = gt ? tag : from[s];
        }
        std::swap(best, best_next);
        std::swap(from, from_next);
      }
      T* d = delta.data() + (t * k + j) * nbc;
      std::int32_t* bk = back.data() + (t * k + j) * nbc;
      for (std::int64_t s = 0; s < nbc; ++s) {
        d[s] = best[s] == ninf ? ninf : best[s] + emission(s, t, j);
        bk[s] = from[s];
      }
    }
  for (std::int64_t s = 0; s < nbc; ++s) {
    const std::int64_t b = b0 + s, len = lens[static_cast<std::size_t>(b)];
    if (len == 0) {
      out.scores.data()[b] = 0;  // the empty path
      continue;
    }
    T top = ninf;
    std::int64_t tag = -1;
    for (std::int64_t j = 0; j < k; ++j) {
      const T v = delta[static_cast<std::size_t>(((len - 1) * k + j) * nbc + s)] + tab.end[static_cast<std::size_t>(j)];
      if (v > top) {
        top = v;
        tag = j;
      }
    }
    if (tag < 0) continue;  // no allowed path: score -inf, tags -1
    out.scores.data()[b] = top;
    std::int64_t* path = out.tags.data() + b * steps;
    for (std::int64_t t = len - 1; t >= 0; --t) {
      path[t] = tag;
      if (t > 0) tag = back[static_cast<std::size_t>((t * k + tag) * nbc + s)];
    }
  }
}

}  // namespace detail

/// The n highest-scoring tag paths of each sequence (list Viterbi; ties go to the smaller tag
/// index, then the better-ranked predecessor). emissions [B, T, K]; see CRFPaths.
template <FloatingScalar T, class B>
CRFPaths<T> viterbi_nbest(const Tensor<T, B>& emissions, std::span<const std::int64_t> lengths, const CRFScores<T, B>& scores, std::int64_t n,
                          const CRFConstraints* constraints = nullptr) {
  constexpr const char* op = "viterbi_nbest";
  if (emissions.rank() != 3) fail<shape_error>(op, "emissions of shape ", emissions.shape(), " must be [batch, time, tags]");
  if (n <= 0) fail<config_error>(op, "n must be positive, got ", n);
  const std::int64_t nb = emissions.size(0), steps = emissions.size(1), k = emissions.size(2);
  const auto lens = checked_lengths(op, lengths, nb, steps);
  const auto tab = detail::crf_tables(op, scores, k, constraints);
  const Tensor<T, B> ev = emissions.contiguous();
  const T ninf = -std::numeric_limits<T>::infinity();
  CRFPaths<T> out{Tensor<std::int64_t>::full({nb, n, steps}, -1), Tensor<T>::full({nb, n}, ninf)};
  cpu::parallel_for(nb, 4, [&](std::int64_t b0, std::int64_t b1) {
    if (n == 1) return detail::viterbi_best_batched(ev.data(), steps, k, lens, tab, b0, b1, out);
    // delta[t, j, r]: the r-th best score of a path ending in tag j at step t; back[t, j, r] the
    // (tag, rank) it came from, packed as tag * n + rank.
    std::vector<T> delta(static_cast<std::size_t>(steps * k * n));
    std::vector<std::int64_t> back(delta.size());
    struct Cand {
      T score;
      std::int64_t from;
    };
    std::vector<Cand> cand;
    auto better = [](const Cand& x, const Cand& y) { return x.score > y.score || (x.score == y.score && x.from < y.from); };
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t len = lens[static_cast<std::size_t>(b)];
      if (len == 0) {
        out.scores.data()[b * n] = 0;  // the empty path
        continue;
      }
      const T* e = ev.data() + b * steps * k;
      std::fill(delta.begin(), delta.end(), ninf);
      for (std::int64_t j = 0; j < k; ++j) delta[static_cast<std::size_t>(j * n)] = tab.start[static_cast<std::size_t>(j)] + e[j];
      for (std::int64_t t = 1; t < len; ++t) {
        for (std::int64_t j = 0; j < k; ++j) {
          cand.clear();
          for (std::int64_t i = 0; i < k; ++i)
            for (std::int64_t r = 0; r < n; ++r) {
              const T prev = delta[static_cast<std::size_t>(((t - 1) * k + i) * n + r)];
              if (prev == ninf) break;  // ranks are sorted: the rest are -inf too
              cand.push_back({prev + tab.trans[static_cast<std::size_t>(i * k + j)], i * n + r});
            }
          const auto keep = std::min<std::size_t>(static_cast<std::size_t>(n), cand.size());
          std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(), better);
          for (std::size_t r = 0; r < keep; ++r) {
            if (cand[r].score == ninf) break;
            delta[static_cast<std::size_t>((t * k + j) * n) + r] = cand[r].score + e[t * k + j];
            back[static_cast<std::size_t>((t * k + j) * n) + r] = cand[r].from;
          }
        }
      }
      cand.clear();
      for (std::int64_t j = 0; j < k; ++j)
        for (std::int64_t r = 0; r < n; ++r) {
          const T v = delta[static_cast<std::size_t>(((len - 1) * k + j) * n + r)];
          if (v == ninf) break;
          cand.push_back({v + tab.end[static_cast<std::size_t>(j)], j * n + r});
        }
      const auto keep = std::min<std::size_t>(static_cast<std::size_t>(n), cand.size());
      std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(), better);
      for (std::size_t p = 0; p < keep; ++p) {
        if (cand[p].score == ninf) break;
        out.scores.data()[b * n + static_cast<std::int64_t>(p)] = cand[p].score;
        std::int64_t at = cand[p].from;
        std::int64_t* path = out.tags.data() + (b * n + static_cast<std::int64_t>(p)) * steps;
        for (std::int64_t t = len - 1; t >= 0; --t) {
          path[t] = at / n;
          if (t > 0) at = back[static_cast<std::size_t>((t * k + at / n) * n + at % n)];
        }
      }
    }
  });
  return out;
}

/// The best tag path of each sequence: tags [B, T] (-1 at padding), scores [B].
template <FloatingScalar T, class B>
CRFPaths<T> viterbi_decode(const Tensor<T, B>& emissions, std::span<const std::int64_t> lengths, const CRFScores<T, B>& scores,
                           const CRFConstraints* constraints = nullptr) {
  auto r = viterbi_nbest(emissions, lengths, scores, 1, constraints);
  return {r.tags.select(1, 0).contiguous(), r.scores.select(1, 0).contiguous()};
}

}  // namespace dsm::nn::functional
