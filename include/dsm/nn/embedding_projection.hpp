// dsm/nn/embedding_projection.hpp: the input projection of an embedding-fed LSTM, per token.
//
//   nn::EmbeddingProjectionCache<float> cache;                         // 64 MiB budget
//   if (const Tensor<float>* table = cache.update(embed.weight.value(), lstm.layer(0), ids))
//     auto r = lstm.from_projections(*table, ids, lengths);           // inference only
//
// When an LSTM's first layer reads embeddings, its input product x_t W_ih^T depends on the token
// alone: row v of the table holds E[v] W_ih^T + b_ih + b_hh for each direction, so at inference
// each step's GEMM is the recurrent one only (for the W5 tagger, 0.21 of its 0.48 GFLOP per
// batch goes away). Rows are computed on first use and kept while the values they came from are
// unchanged: every update compares the layer's W_ih and biases (all of them) and the embedding
// rows of the batch's tokens with copies taken when their rows were computed, so a training step,
// load_state_dict or any in-place edit between calls is seen, never served stale. The table
// costs V x D*4H values (plus a copy of the embedding); update returns null when that exceeds the
// budget, and the caller runs the ordinary path. Not safe to share between threads.
#pragma once

#include <cstring>
#include <span>
#include <vector>

#include "functional/lstm.hpp"

namespace dsm::nn {

template <FloatingScalar T = float, class B = cpu>
class EmbeddingProjectionCache {
 public:
  explicit EmbeddingProjectionCache(std::int64_t max_bytes = std::int64_t{64} << 20) : max_bytes_(max_bytes) {}

  /// Brings the rows of ids' tokens up to date for embedding [V, E] and the first layer's
  /// directions (w_ih [4H, E], biases [4H] or undefined); returns the table [V, D*4H] for
  /// functional::lstm_layer_lookup, or null when it would need more than the budget.
  const Tensor<T, B>* update(const Tensor<T, B>& embedding, std::span<const functional::LSTMDirection<T, B>> dirs, const Tensor<std::int64_t, B>& ids) {
    constexpr const char* op = "EmbeddingProjectionCache";
    if (embedding.rank() != 2) fail<shape_error>(op, "embedding of shape ", embedding.shape(), " must be [vocabulary, dim]");
    if (dirs.empty() || !dirs[0].w_ih.defined()) fail<shape_error>(op, "no input weights to project with");
    const std::int64_t vocab = embedding.size(0), dim = embedding.size(1), n_dirs = static_cast<std::int64_t>(dirs.size());
    const std::int64_t h4 = dirs[0].w_ih.size(0), ld = n_dirs * h4;
    for (const auto& d : dirs) {
      if (!d.w_ih.defined() || d.w_ih.shape() != Shape{h4, dim})
        fail<shape_error>(op, "weight_ih ", d.w_ih.defined() ? d.w_ih.shape() : Shape{}, " must be [", h4, ", ", dim, "] for embeddings of dim ", dim);
      for (const auto* b : {&d.b_ih, &d.b_hh})
        if (b->defined() && b->shape() != Shape{h4}) fail<shape_error>(op, "bias of shape ", b->shape(), " must be [", h4, "]");
    }
    if (vocab * (ld + dim) * static_cast<std::int64_t>(sizeof(T)) > max_bytes_) return nullptr;

    const Tensor<T, B> emb = embedding.contiguous();
    refresh_weights(dirs, vocab, dim, h4);
    const Tensor<std::int64_t, B> idc = ids.contiguous();
    const std::int64_t* id = idc.data();
    ++call_;
    std::vector<std::int64_t> pending;
    for (std::int64_t r = 0; r < idc.numel(); ++r) {
      const std::int64_t v = id[r];
      if (v < 0 || v >= vocab) fail<index_error>(op, "id ", v, " is outside the embedding's ", vocab, " rows");
      const auto vi = static_cast<std::size_t>(v);
      if (seen_[vi] == call_) continue;
      seen_[vi] = call_;
      if (!valid_[vi] || std::memcmp(rows_.data() + v * dim, emb.data() + v * dim, static_cast<std::size_t>(dim) * sizeof(T)) != 0) pending.push_back(v);
    }
    last_computed_ = static_cast<std::int64_t>(pending.size());
    if (!pending.empty()) compute_rows(pending, emb.data(), dim, ld);
    return &table_;
  }

  /// How many table rows the last update computed (the rest were current).
  std::int64_t last_computed() const { return last_computed_; }
  /// Forgets every row (the next update recomputes what it needs).
  void clear() { weights_.clear(); }

 private:
  // The snapshot of the layer's weights: every direction's W_ih, then every b_ih, then every
  // b_hh (zeros where undefined). A difference anywhere invalidates every row.
  void refresh_weights(std::span<const functional::LSTMDirection<T, B>> dirs, std::int64_t vocab, std::int64_t dim, std::int64_t h4) {
    const std::int64_t ld = static_cast<std::int64_t>(dirs.size()) * h4;
    std::vector<Tensor<T, B>> parts;
    for (const auto& d : dirs) parts.push_back(d.w_ih.value().contiguous());
    for (const auto& d : dirs) parts.push_back(d.b_ih.defined() ? d.b_ih.value().contiguous() : Tensor<T, B>::zeros({h4}));
    for (const auto& d : dirs) parts.push_back(d.b_hh.defined() ? d.b_hh.value().contiguous() : Tensor<T, B>::zeros({h4}));
    std::size_t total = 0;
    for (const auto& p : parts) total += static_cast<std::size_t>(p.numel());
    // The snapshot's size (ld x dim + 2 x ld) and the table's shape pin every size down.
    bool same = weights_.size() == total && table_.defined() && table_.size(0) == vocab && table_.size(1) == ld;
    for (std::size_t pos = 0, i = 0; same && i < parts.size(); pos += static_cast<std::size_t>(parts[i].numel()), ++i)
      same = std::memcmp(weights_.data() + pos, parts[i].data(), static_cast<std::size_t>(parts[i].numel()) * sizeof(T)) == 0;
    if (same) return;
    weights_.clear();
    for (const auto& p : parts) weights_.insert(weights_.end(), p.data(), p.data() + p.numel());
    table_ = Tensor<T, B>({vocab, ld});
    rows_.assign(static_cast<std::size_t>(vocab * dim), T(0));
    valid_.assign(static_cast<std::size_t>(vocab), 0);
    seen_.assign(static_cast<std::size_t>(vocab), 0);
  }

  // One GEMM for the pending tokens' rows: [n, E] x [E, D*4H], plus both biases.
  void compute_rows(const std::vector<std::int64_t>& pending, const T* emb, std::int64_t dim, std::int64_t ld) {
    const auto n = static_cast<std::int64_t>(pending.size());
    Tensor<T, B> x({n, dim}), p({n, ld});
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t v = pending[static_cast<std::size_t>(i)];
      std::copy(emb + v * dim, emb + (v + 1) * dim, x.data() + i * dim);
      std::copy(emb + v * dim, emb + (v + 1) * dim, rows_.data() + v * dim);
      valid_[static_cast<std::size_t>(v)] = 1;
    }
    const T* w_ih = weights_.data();  // [D*4H, E]
    const T* b_ih = w_ih + ld * dim;
    const T* b_hh = b_ih + ld;
    B::gemm(false, true, n, ld, dim, T(1), x.data(), dim, w_ih, dim, T(0), p.data(), ld);
    for (std::int64_t i = 0; i < n; ++i) {
      const T* src = p.data() + i * ld;
      T* dst = table_.data() + pending[static_cast<std::size_t>(i)] * ld;
      DSM_SIMD for (std::int64_t j = 0; j < ld; ++j) dst[j] = src[j] + (b_ih[j] + b_hh[j]);
    }
  }

  std::int64_t max_bytes_;
  Tensor<T, B> table_;              // [V, D*4H]
  std::vector<T> weights_;          // see refresh_weights
  std::vector<T> rows_;             // [V, E]: the embedding row each valid table row came from
  std::vector<unsigned char> valid_;
  std::vector<std::uint64_t> seen_;  // the update that last looked at each token
  std::uint64_t call_ = 0;
  std::int64_t last_computed_ = 0;
};

}  // namespace dsm::nn
