// dsm/nn/attention.hpp: multi-head attention (self, cross, grouped-query, rotary, KV cache) and
// joint cross-modal attention.
//
//   dsm::nn::MultiheadAttention<{.d_model = 512, .n_heads = 8, .n_kv_heads = 2, .rope = true}> attn;
//   Var<float> y = attn(x, {.causal = true});                 // self-attention, x [B, T, 512]
//   Var<float> z = attn(text, image);                         // cross: text queries, image keys/values
//   dsm::nn::KVCache<float> cache;                             // decoding: O(T) per new token
//   { dsm::no_grad g; y = attn(x_new, {.causal = true}, &cache); }
//
// Projections are named as in HuggingFace LLaMA/DeepSeek checkpoints: q_proj, k_proj, v_proj,
// o_proj. n_kv_heads = n_heads is multi-head attention, 1 is multi-query, in between grouped-
// query. With rope, queries and keys are rotated (rotate-half convention) at their absolute
// positions, which continue from the cache's length when decoding. The memory-efficient kernel
// (flash_attention) is the default; Options::memory_efficient = false selects the plain one,
// which also supports attention dropout.
#pragma once

#include <utility>
#include <vector>

#include "embedding.hpp"
#include "functional/attention.hpp"
#include "linear.hpp"

namespace dsm::nn {

struct AttentionConfig {
  std::int64_t d_model = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0;  ///< 0: n_heads (multi-head); 1: multi-query; else grouped-query
  bool bias = false;
  bool rope = false;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

/// Example: MultiheadAttentionOptions o; o.memory_efficient = false; o.dropout = 0.1;
struct MultiheadAttentionOptions {
  double rope_theta = 10000.0;
  double dropout = 0.0;           ///< on the attention weights, in training (plain kernel only)
  bool memory_efficient = true;   ///< flash_attention; false: the plain reference kernel
  Generator* generator = nullptr; ///< initialization (and dropout); the default generator when null
};

/// Per-call choices of an attention forward.
struct AttendOptions {
  bool causal = false;
  Tensor<bool> key_padding_mask{};  ///< [B, Tk], true where a key is padding
};

/// Keys and values of the tokens seen so far, per layer, for incremental decoding. Storage grows
/// by doubling, so appending a token costs O(1) amortized copies plus the attention's O(T).
template <FloatingScalar T = float>
class KVCache {
 public:
  std::int64_t length() const { return length_; }
  void reset() { length_ = 0; }
  /// Appends k, v [B, Hkv, T_new, D]; returns the whole cache [B, Hkv, length, D] for each.
  std::pair<Tensor<T>, Tensor<T>> append(const Tensor<T>& k, const Tensor<T>& v) {
    if (k.rank() != 4 || v.rank() != 4 || k.size(2) != v.size(2)) fail<shape_error>("KVCache", "keys ", k.shape(), " and values ", v.shape(), " must be [B, Hkv, T, D]");
    if (length_ > 0 && (k.size(0) != k_.size(0) || k.size(1) != k_.size(1) || k.size(3) != k_.size(3) || v.size(3) != v_.size(3)))
      fail<shape_error>("KVCache", "keys ", k.shape(), " do not match the cached ", k_.narrow(2, 0, length_).shape());
    const std::int64_t need = length_ + k.size(2);
    if (!k_.defined() || need > k_.size(2) || k.size(0) != k_.size(0) || k.size(1) != k_.size(1) || k.size(3) != k_.size(3) || v.size(3) != v_.size(3)) {
      const std::int64_t cap = std::max<std::int64_t>({need, 2 * (k_.defined() ? k_.size(2) : 0), 64});
      Tensor<T> nk({k.size(0), k.size(1), cap, k.size(3)}), nv({v.size(0), v.size(1), cap, v.size(3)});
      if (length_ > 0) {
        nk.narrow(2, 0, length_).copy_(k_.narrow(2, 0, length_));
        nv.narrow(2, 0, length_).copy_(v_.narrow(2, 0, length_));
      }
      k_ = nk;
      v_ = nv;
    }
    k_.narrow(2, length_, k.size(2)).copy_(k);
    v_.narrow(2, length_, v.size(2)).copy_(v);
    length_ = need;
    return {k_.narrow(2, 0, length_), v_.narrow(2, 0, length_)};
  }

 private:
  Tensor<T> k_, v_;
  std::int64_t length_ = 0;
};

template <AttentionConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class MultiheadAttention : public Module, public ConfigHolder<AttentionConfig, C> {
  using Holder = ConfigHolder<AttentionConfig, C>;
  using Proj = Linear<dynamic, T, B>;

 public:
  using Options = MultiheadAttentionOptions;
  Proj q_proj, k_proj, v_proj, o_proj;

  explicit MultiheadAttention(Options o = {}) requires(!Holder::is_dynamic)
      : q_proj(proj(C.d_model, C.d_model, o)), k_proj(proj(C.d_model, kv_width(), o)), v_proj(proj(C.d_model, kv_width(), o)),
        o_proj(proj(C.d_model, C.d_model, o)), options_(o) {
    static_assert(C.d_model > 0 && C.n_heads > 0, "MultiheadAttention: d_model and n_heads must be positive");
    static_assert(C.d_model % C.n_heads == 0, "MultiheadAttention: n_heads must divide d_model");
    static_assert(C.n_kv_heads >= 0 && (C.n_kv_heads == 0 || C.n_heads % C.n_kv_heads == 0), "MultiheadAttention: n_kv_heads must divide n_heads");
    static_assert(!C.rope || (C.d_model / C.n_heads) % 2 == 0, "MultiheadAttention: rotary embeddings need an even head dimension");
    options_.generator = nullptr;
  }
  explicit MultiheadAttention(const AttentionConfig& c, Options o = {}) requires(Holder::is_dynamic)
      : Holder(checked(c)), q_proj(proj(c.d_model, c.d_model, o)), k_proj(proj(c.d_model, kv_width(), o)), v_proj(proj(c.d_model, kv_width(), o)),
        o_proj(proj(c.d_model, c.d_model, o)), options_(o) {
    options_.generator = nullptr;  // not kept: it may not outlive the module
  }
  using Holder::config;

  std::int64_t heads() const { return config().n_heads; }
  std::int64_t kv_heads() const { return config().n_kv_heads > 0 ? config().n_kv_heads : config().n_heads; }
  std::int64_t head_dim() const { return config().d_model / config().n_heads; }

  /// Self-attention over x [B, T, d_model]. With a cache (inference, under no_grad), x holds the
  /// new tokens only; their keys and values are appended and the queries see the whole cache.
  Var<T, B> operator()(const Var<T, B>& x, const AttendOptions& a = {}, KVCache<T>* cache = nullptr) const {
    check_input(x, "input");
    if (cache && is_grad_enabled() && x.requires_grad())
      fail<error>("MultiheadAttention", "a KV cache is for inference: run decoding under dsm::no_grad");
    const std::int64_t offset = cache ? cache->length() : 0;
    Var<T, B> q = split_heads(q_proj(x), heads()), k = split_heads(k_proj(x), kv_heads()), v = split_heads(v_proj(x), kv_heads());
    if (config().rope) {
      q = functional::rotary(q, offset, options_.rope_theta);
      k = functional::rotary(k, offset, options_.rope_theta);
    }
    if (cache) {
      auto [kc, vc] = cache->append(k.value(), v.value());
      k = Var<T, B>(kc);
      v = Var<T, B>(vc);
    }
    return o_proj(merge_heads(attend(q, k, v, a)));
  }

  /// Cross-attention: queries from x [B, Tq, d_model], keys and values from context [B, Tk,
  /// d_model] (e.g. text attending to image features). No rotary embedding across streams.
  Var<T, B> operator()(const Var<T, B>& x, const Var<T, B>& context, const AttendOptions& a = {}) const {
    check_input(x, "query input");
    check_input(context, "context");
    if (context.size(0) != x.size(0)) fail<shape_error>("MultiheadAttention", "context batch ", context.size(0), " differs from the query batch ", x.size(0));
    return o_proj(merge_heads(attend(split_heads(q_proj(x), heads()), split_heads(k_proj(context), kv_heads()), split_heads(v_proj(context), kv_heads()), a)));
  }

  void visit(Members& m) override {
    m.module("q_proj", q_proj);
    m.module("k_proj", k_proj);
    m.module("v_proj", v_proj);
    m.module("o_proj", o_proj);
  }

 private:
  static const AttentionConfig& checked(const AttentionConfig& c) {
    if (c.d_model <= 0 || c.n_heads <= 0) fail<config_error>("MultiheadAttention", "d_model and n_heads must be positive, got ", c.d_model, " and ", c.n_heads);
    if (c.d_model % c.n_heads != 0) fail<config_error>("MultiheadAttention", "n_heads ", c.n_heads, " must divide d_model ", c.d_model);
    if (c.n_kv_heads < 0 || (c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads != 0))
      fail<config_error>("MultiheadAttention", "n_kv_heads ", c.n_kv_heads, " must divide n_heads ", c.n_heads);
    if (c.rope && (c.d_model / c.n_heads) % 2 != 0) fail<config_error>("MultiheadAttention", "rotary embeddings need an even head dimension, got ", c.d_model / c.n_heads);
    return c;
  }
  std::int64_t kv_width() const { return kv_heads() * head_dim(); }
  Proj proj(std::int64_t in, std::int64_t out, const Options& o) const {
    LinearConfig lc;
    lc.in_features = in;
    lc.out_features = out;
    lc.bias = config().bias;
    return Proj(lc, {o.generator ? o.generator : &default_generator()});
  }
  void check_input(const Var<T, B>& x, const char* what) const {
    if (x.rank() != 3 || x.size(2) != config().d_model)
      fail<shape_error>("MultiheadAttention", what, " of shape ", x.shape(), " must be [batch, time, ", config().d_model, "]");
  }
  // Heads stay where the projection wrote them: [B, H, T, Dh] views of [B, T, H * Dh] (time-major).
  // Rotary and flash attention read such views in place and return (and give gradients) in the
  // same layout, so merging the heads back is a view too, forward and backward.
  Var<T, B> split_heads(const Var<T, B>& x, std::int64_t n) const {  // [B, T, n * Dh] -> [B, n, T, Dh]
    return x.view({x.size(0), x.size(1), n, head_dim()}).transpose(1, 2);
  }
  Var<T, B> merge_heads(const Var<T, B>& x) const {  // [B, H, T, Dh] -> [B, T, H * Dh]
    return x.transpose(1, 2).reshape({x.size(0), x.size(2), config().d_model});
  }
  Var<T, B> attend(const Var<T, B>& q, const Var<T, B>& k, const Var<T, B>& v, const AttendOptions& a) const {
    functional::AttentionOptions o;
    o.causal = a.causal;
    o.key_padding_mask = a.key_padding_mask;
    if (options_.memory_efficient) return functional::flash_attention(q, k, v, o);
    o.dropout_p = options_.dropout;
    o.training = is_training();
    return functional::attention(q, k, v, o);
  }

  Options options_;
};

struct JointAttentionConfig {
  std::int64_t d_model = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_modalities = 2;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

/// Cross-modal attention in the joint (single-stream) form: each modality's features [B, T_m,
/// d_model] get a learned modality-type embedding, all are concatenated along the sequence and
/// attend to each other bidirectionally; the outputs come back split per modality. (The
/// two-stream form, text queries over image keys and values, is MultiheadAttention's cross call.)
template <JointAttentionConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class JointAttention : public Module, public ConfigHolder<JointAttentionConfig, C> {
  using Holder = ConfigHolder<JointAttentionConfig, C>;

 public:
  using Options = MultiheadAttentionOptions;
  Embedding<dynamic, T, B> modality_embedding;  // [n_modalities, d_model]
  MultiheadAttention<dynamic, T, B> attention;

  explicit JointAttention(Options o = {}) requires(!Holder::is_dynamic)
      : modality_embedding(embedding_config(), {o.generator}), attention(attention_config(), o) {
    static_assert(C.d_model > 0 && C.n_heads > 0 && C.n_modalities > 0, "JointAttention: d_model, n_heads and n_modalities must be positive");
  }
  explicit JointAttention(const JointAttentionConfig& c, Options o = {}) requires(Holder::is_dynamic)
      : Holder(checked(c)), modality_embedding(embedding_config(), {o.generator}), attention(attention_config(), o) {}
  using Holder::config;

  /// streams[m]: [B, T_m, d_model]; padding[m] (optional, may be undefined): [B, T_m], true at
  /// padding. Returns one output per stream, in order.
  std::vector<Var<T, B>> operator()(const std::vector<Var<T, B>>& streams, const std::vector<Tensor<bool>>& padding = {}) const {
    const auto n = static_cast<std::int64_t>(streams.size());
    if (n == 0 || n > config().n_modalities) fail<shape_error>("JointAttention", n, " streams for ", config().n_modalities, " modalities");
    if (!padding.empty() && padding.size() != streams.size()) fail<shape_error>("JointAttention", padding.size(), " padding masks for ", n, " streams");
    std::vector<Var<T, B>> typed;
    std::vector<std::int64_t> lengths;
    bool any_padding = false;
    for (std::int64_t m = 0; m < n; ++m) {
      const Var<T, B>& s = streams[static_cast<std::size_t>(m)];
      if (s.rank() != 3 || s.size(2) != config().d_model || s.size(0) != streams[0].size(0))
        fail<shape_error>("JointAttention", "stream ", m, " of shape ", s.shape(), " must be [", streams[0].size(0), ", time, ", config().d_model, "]");
      const Var<T, B> type_row = modality_embedding(Tensor<std::int64_t>::full({1, 1}, m));  // [1, 1, d]
      typed.push_back(Var<T, B>(s + type_row));
      lengths.push_back(s.size(1));
      any_padding = any_padding || (!padding.empty() && padding[static_cast<std::size_t>(m)].defined());
    }
    AttendOptions a;
    if (any_padding) {
      std::vector<Tensor<bool>> parts;
      for (std::int64_t m = 0; m < n; ++m) {
        const Tensor<bool>& p = padding[static_cast<std::size_t>(m)];
        parts.push_back(p.defined() ? p : Tensor<bool>::zeros({streams[0].size(0), lengths[static_cast<std::size_t>(m)]}));
      }
      a.key_padding_mask = cat(parts, 1);
    }
    const Var<T, B> joint = attention(cat(typed, 1), a);
    return split(joint, lengths, 1);
  }

  void visit(Members& m) override {
    m.module("modality_embedding", modality_embedding);
    m.module("attention", attention);
  }

 private:
  static const JointAttentionConfig& checked(const JointAttentionConfig& c) {
    if (c.d_model <= 0 || c.n_heads <= 0 || c.n_modalities <= 0)
      fail<config_error>("JointAttention", "d_model, n_heads and n_modalities must be positive, got ", c.d_model, ", ", c.n_heads, ", ", c.n_modalities);
    return c;
  }
  EmbeddingConfig embedding_config() const { return EmbeddingConfig{config().n_modalities, config().d_model}; }
  AttentionConfig attention_config() const { return AttentionConfig{config().d_model, config().n_heads}; }
};

}  // namespace dsm::nn
