// dsm/models/transformer.hpp: a decoder-only transformer language model whose feed-forward
// blocks are dense or Mixture-of-Experts, DeepSeek-style.
//
//   dsm::models::TransformerLM<{.vocab_size = 256, .d_model = 256, .n_layers = 4, .n_heads = 4,
//                               .d_ff = 512, .n_experts = 8, .top_k = 2}> lm;
//   auto out = lm(ids);                                  // ids [B, T] -> logits [B, T, 256]
//   Var<float> loss = lm_loss(out.logits, targets) + out.balance_loss;
//   auto text = lm.generate(prompt, 200, {.temperature = 0.8, .top_k = 40}, gen);
//
// Block (pre-norm): h = x + attention(rms_norm(x)) with causal RoPE attention; y = h +
// ffn(rms_norm(h)), the FFN a SwiGLU FeedForward for the first `first_dense_layers` layers (and
// all layers when n_experts = 0), else an MoE layer. A final RMSNorm, then the LM head (or the
// embedding matrix when tie_embeddings). Generation keeps one KV cache per layer, so each new
// token costs O(T) attention work.
#pragma once

#include <optional>
#include <vector>

#include "../decode/sampling.hpp"
#include "../moe/moe.hpp"
#include "../nn/nn.hpp"

namespace dsm::models {

struct TransformerConfig {
  std::int64_t vocab_size = 0;
  std::int64_t d_model = 0;
  std::int64_t n_layers = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0;          ///< 0: n_heads
  std::int64_t d_ff = 0;                ///< hidden width of the dense FFN and of each expert
  std::int64_t n_experts = 0;           ///< 0: every FFN dense
  std::int64_t top_k = 2;
  std::int64_t n_shared = 0;
  moe::GateKind gate = moe::GateKind::softmax;
  std::int64_t first_dense_layers = 0;  ///< DeepSeek keeps the first layers dense
  bool tie_embeddings = false;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

/// Example: TransformerOptions o; o.moe.aux_loss_coef = 0.01; o.rope_theta = 10000;
struct TransformerOptions {
  moe::MoEOptions moe;            ///< balancing, capacity... of every MoE layer
  double rope_theta = 10000.0;
  bool memory_efficient_attention = true;
  Generator* generator = nullptr; ///< initialization; the default generator when null
  double dropout = 0.0;           ///< residual dropout on each attention and FFN output (training only)
  std::uint64_t dropout_seed = 0; ///< block l draws its masks from seed dropout_seed + l
  /// Activation checkpointing: 0 keeps every block's activations; n recomputes blocks 0, n, 2n...
  /// in backward (1: every block). Also set_checkpoint_every() (docs/checkpointing.md).
  std::int64_t checkpoint_every = 0;
};

namespace detail {
inline const char* transformer_problem(const TransformerConfig& c) {
  if (c.vocab_size <= 0 || c.d_model <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.d_ff <= 0)
    return "vocab_size, d_model, n_layers, n_heads and d_ff must be positive";
  if (c.d_model % c.n_heads != 0) return "n_heads must divide d_model";
  if ((c.d_model / c.n_heads) % 2 != 0) return "the head dimension must be even (rotary embeddings)";
  if (c.n_experts < 0 || c.first_dense_layers < 0) return "n_experts and first_dense_layers must not be negative";
  if (c.n_experts > 0 && (c.top_k <= 0 || c.top_k > c.n_experts)) return "top_k must be between 1 and n_experts";
  return nullptr;
}
}  // namespace detail

/// One pre-norm block: attention and a dense or MoE FFN.
template <FloatingScalar T = float>
class TransformerBlock : public nn::Module {
 public:
  nn::RMSNorm<dynamic, T> attention_norm, ffn_norm;
  nn::MultiheadAttention<dynamic, T> attention;
  moe::FeedForward<T> dense;                        // when the block is dense
  std::optional<moe::MoELayer<dynamic, T>> moe;     // when it is MoE
  nn::Dropout attention_dropout, ffn_dropout;       // residual dropout (p = 0: off)

  TransformerBlock(const TransformerConfig& c, bool use_moe, const TransformerOptions& o, Generator& gen, std::int64_t index = 0)
      : attention_norm(nn::NormConfig{c.d_model}), ffn_norm(nn::NormConfig{c.d_model}),
        attention(attention_config(c), attention_options(o, gen)),
        attention_dropout({.p = o.dropout, .seed = o.dropout_seed + static_cast<std::uint64_t>(index)}),
        ffn_dropout({.p = o.dropout, .seed = o.dropout_seed + static_cast<std::uint64_t>(index) + (std::uint64_t{1} << 32)}), dropout_(o.dropout) {
    if (use_moe) {
      moe::MoEOptions mo = o.moe;
      mo.generator = &gen;
      moe.emplace(moe::MoEConfig{.d_model = c.d_model, .d_ff = c.d_ff, .n_experts = c.n_experts, .top_k = c.top_k, .n_shared = c.n_shared, .gate = c.gate},
                  mo);
    } else {
      dense = moe::FeedForward<T>(c.d_model, c.d_ff, gen);
    }
  }

  using RouterScalar = typename moe::MoEOutput<T>::RouterScalar;

  /// x [B, T, d]; adds this block's balance loss to `balance` and its statistics to `stats`.
  /// With `checkpointed` (training without a cache), the block's activations are recomputed in
  /// backward instead of kept; its routing is replayed then, so the load is counted once.
  Var<T> operator()(const Var<T>& x, nn::KVCache<T>* cache, Var<RouterScalar>& balance, std::vector<moe::MoEStatistics>& stats,
                    bool checkpointed = false) {
    static_assert(std::is_same_v<RouterScalar, T>, "TransformerBlock: the router runs in the model's precision (float or double)");
    if (!checkpointed || cache != nullptr || !is_grad_enabled()) {
      Step step = forward(x, cache, {});
      if (moe) {
        balance = Var<RouterScalar>(balance + step.balance_loss);
        stats.push_back(std::move(step.stats));
      }
      return step.y;
    }
    struct FirstRun {  // what the first run decided, shared with the recomputation
      bool done = false;
      Tensor<std::int64_t> routing;
      moe::MoEStatistics stats;
    };
    auto first = std::make_shared<FirstRun>();
    auto block = [this, first](const Var<T>& in) {
      Step step = forward(in, nullptr, first->done ? first->routing : Tensor<std::int64_t>());
      if (!first->done) {
        first->done = true;
        first->routing = std::move(step.routing);
        first->stats = std::move(step.stats);
      }
      std::vector<Var<T>> out{step.y};
      if (moe) out.push_back(step.balance_loss);
      return out;
    };
    std::vector<Var<T>> out = checkpoint(block, x);
    if (moe) {
      balance = Var<RouterScalar>(balance + out[1]);
      stats.push_back(first->stats);
    }
    return out[0];
  }

  void visit(nn::Members& m) override {
    m.module("attention_norm", attention_norm);
    m.module("attention", attention);
    m.module("ffn_norm", ffn_norm);
    if (moe) m.module("moe", *moe);
    else m.module("ffn", dense);
    m.module("attention_dropout", attention_dropout);  // no tensors: registered for train()/eval()
    m.module("ffn_dropout", ffn_dropout);
  }

 private:
  struct Step {
    Var<T> y;
    Var<RouterScalar> balance_loss;  // MoE blocks only
    Tensor<std::int64_t> routing;
    moe::MoEStatistics stats;
  };
  /// The block itself; `replay` fixes the MoE routing (undefined: route afresh).
  Step forward(const Var<T>& x, nn::KVCache<T>* cache, const Tensor<std::int64_t>& replay) {
    Var<T> a = attention(attention_norm(x), {.causal = true, .key_padding_mask = {}}, cache);
    if (dropout_ > 0) a = attention_dropout(a);
    const Var<T> h = Var<T>(x + a);
    Step step;
    Var<T> f;
    if (moe) {
      auto out = (*moe)(ffn_norm(h), replay);
      f = out.output;
      step.balance_loss = out.balance_loss;
      step.routing = std::move(out.expert_ids);
      step.stats = std::move(out.stats);
    } else {
      f = dense(ffn_norm(h));
    }
    if (dropout_ > 0) f = ffn_dropout(f);
    step.y = Var<T>(h + f);
    return step;
  }

  double dropout_ = 0;

  static nn::AttentionConfig attention_config(const TransformerConfig& c) {
    nn::AttentionConfig a;
    a.d_model = c.d_model;
    a.n_heads = c.n_heads;
    a.n_kv_heads = c.n_kv_heads;
    a.rope = true;
    return a;
  }
  static nn::MultiheadAttentionOptions attention_options(const TransformerOptions& o, Generator& gen) {
    nn::MultiheadAttentionOptions a;
    a.rope_theta = o.rope_theta;
    a.memory_efficient = o.memory_efficient_attention;
    a.generator = &gen;
    return a;
  }
};

template <FloatingScalar T>
struct LMOutput {
  Var<T> logits;                             ///< [B, T, vocab]
  Var<typename moe::MoEOutput<T>::RouterScalar> balance_loss;  ///< sum over the MoE layers (0 when none)
  std::vector<moe::MoEStatistics> moe_stats; ///< one per MoE layer, in order
};

/// Mean next-token cross-entropy of logits [B, T, V] against targets [B, T].
template <FloatingScalar T>
Var<T> lm_loss(const Var<T>& logits, const Tensor<std::int64_t>& targets) {
  if (logits.rank() != 3 || targets.shape() != Shape{logits.size(0), logits.size(1)})
    fail<shape_error>("lm_loss", "logits ", logits.shape(), " and targets ", targets.shape(), " must be [B, T, V] and [B, T]");
  return nn::functional::cross_entropy(logits.reshape({-1, logits.size(2)}), targets.contiguous().reshape({-1}));
}

template <TransformerConfig C = dynamic, FloatingScalar T = float>
class TransformerLM : public nn::Module, public nn::ConfigHolder<TransformerConfig, C> {
  using Holder = nn::ConfigHolder<TransformerConfig, C>;

 public:
  using Options = TransformerOptions;
  nn::Embedding<dynamic, T> embed;
  std::vector<TransformerBlock<T>> layers;
  nn::RMSNorm<dynamic, T> norm;
  std::optional<nn::Linear<dynamic, T>> lm_head;  // absent when tie_embeddings

  explicit TransformerLM(Options o = {}) requires(!Holder::is_dynamic) : TransformerLM(C, o, 0) {
    static_assert(C.vocab_size > 0 && C.d_model > 0 && C.n_layers > 0 && C.n_heads > 0 && C.d_ff > 0,
                  "TransformerLM: vocab_size, d_model, n_layers, n_heads and d_ff must be positive");
    static_assert(C.d_model % C.n_heads == 0, "TransformerLM: n_heads must divide d_model");
    static_assert((C.d_model / C.n_heads) % 2 == 0, "TransformerLM: the head dimension must be even (rotary embeddings)");
    static_assert(C.n_experts == 0 || (C.top_k > 0 && C.top_k <= C.n_experts), "TransformerLM: top_k must be between 1 and n_experts");
  }
  explicit TransformerLM(const TransformerConfig& c, Options o = {}) requires(Holder::is_dynamic) : TransformerLM(checked(c), o, 0) {}
  using Holder::config;

  /// ids [B, T] -> logits [B, T, vocab]. With caches (one per layer, under no_grad), ids are the
  /// new tokens and positions continue from the caches' length.
  LMOutput<T> operator()(const Tensor<std::int64_t>& ids, std::vector<nn::KVCache<T>>* caches = nullptr) {
    if (ids.rank() != 2) fail<shape_error>("TransformerLM", "token ids must be [batch, time], got ", ids.shape());
    if (caches && static_cast<std::int64_t>(caches->size()) != config().n_layers)
      fail<shape_error>("TransformerLM", caches->size(), " KV caches for ", config().n_layers, " layers");
    LMOutput<T> out;
    using RS = typename moe::MoEOutput<T>::RouterScalar;
    out.balance_loss = Var<RS>(Tensor<RS>::scalar(RS(0)));
    Var<T> x = embed(ids);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const bool checkpointed = checkpoint_every_ > 0 && static_cast<std::int64_t>(l) % checkpoint_every_ == 0;
      x = layers[l](x, caches ? &(*caches)[l] : nullptr, out.balance_loss, out.moe_stats, checkpointed);
    }
    x = norm(x);
    out.logits = lm_head ? (*lm_head)(x) : matmul(x, embed.weight.t());
    return out;
  }

  /// Continues `prompt` (ids [T0] or [1, T0]) by max_new_tokens sampled tokens; returns the new
  /// ids only. Uses the KV caches: the prompt runs once, then one token per step. With
  /// max_context > 0 (the context length the model was trained on), the caches never grow past
  /// it: when full, they restart from the last max_context / 2 tokens, so positions stay within
  /// what the model has seen.
  std::vector<std::int64_t> generate(const Tensor<std::int64_t>& prompt, std::int64_t max_new_tokens, const decode::SamplingOptions& s, Generator& gen,
                                     std::int64_t max_context = 0) {
    decode::check(s);
    if (prompt.numel() == 0) fail<shape_error>("TransformerLM::generate", "the prompt is empty");
    if (max_context < 0 || max_context == 1) fail<config_error>("TransformerLM::generate", "max_context must be 0 (unlimited) or at least 2, got ", max_context);
    const bool was_training = is_training();
    eval();
    no_grad guard;
    std::vector<nn::KVCache<T>> caches(static_cast<std::size_t>(config().n_layers));
    std::vector<std::int64_t> context = prompt.contiguous().to_vector();
    if (max_context > 0 && static_cast<std::int64_t>(context.size()) > max_context) context.erase(context.begin(), context.end() - max_context);
    Tensor<std::int64_t> step = Tensor<std::int64_t>::from_range(context, {1, static_cast<std::int64_t>(context.size())});
    std::vector<std::int64_t> produced;
    for (std::int64_t i = 0; i < max_new_tokens; ++i) {
      const Tensor<T> logits = (*this)(step, &caches).logits.value();
      const Tensor<T> last = logits.select(1, logits.size(1) - 1).contiguous();  // [1, V]
      const std::int64_t next = decode::sample(last.data(), config().vocab_size, s, gen);
      produced.push_back(next);
      context.push_back(next);
      if (max_context > 0 && caches[0].length() + 1 > max_context) {  // restart from the recent half
        context.erase(context.begin(), context.end() - max_context / 2);
        for (auto& c : caches) c.reset();
        step = Tensor<std::int64_t>::from_range(context, {1, static_cast<std::int64_t>(context.size())});
      } else {
        step = Tensor<std::int64_t>::full({1, 1}, next);
      }
    }
    if (was_training) train();
    return produced;
  }

  /// Activation checkpointing from the next forward on: 0 none, n every n-th block (0, n, 2n...).
  void set_checkpoint_every(std::int64_t n) {
    if (n < 0) fail<config_error>("TransformerLM::set_checkpoint_every", "the interval must be 0 (off) or positive, got ", n);
    checkpoint_every_ = n;
  }
  std::int64_t checkpoint_every() const { return checkpoint_every_; }

  /// Call once per optimizer step: updates each MoE layer's balancing bias (see MoELayer).
  void finish_step() {
    for (auto& l : layers)
      if (l.moe) l.moe->finish_step();
  }

  void visit(nn::Members& m) override {
    m.module("embed", embed);
    m.modules("layers", layers);
    m.module("norm", norm);
    if (lm_head) m.module("lm_head", *lm_head);
  }

 private:
  static const TransformerConfig& checked(const TransformerConfig& c) {
    if (const char* problem = detail::transformer_problem(c)) fail<config_error>("TransformerLM", problem);
    return c;
  }
  TransformerLM(const TransformerConfig& c, Options o, int)
      : Holder(c), embed(nn::EmbeddingConfig{c.vocab_size, c.d_model}, {o.generator}), norm(nn::NormConfig{c.d_model}) {
    Generator& gen = o.generator ? *o.generator : default_generator();
    set_checkpoint_every(o.checkpoint_every);
    for (std::int64_t l = 0; l < c.n_layers; ++l) layers.emplace_back(c, c.n_experts > 0 && l >= c.first_dense_layers, o, gen, l);
    if (!c.tie_embeddings) {
      nn::LinearConfig lc;
      lc.in_features = c.d_model;
      lc.out_features = c.vocab_size;
      lc.bias = false;
      lm_head.emplace(lc, nn::LinearOptions{&gen});
    }
  }
  std::int64_t checkpoint_every_ = 0;
};

}  // namespace dsm::models
