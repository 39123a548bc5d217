// dsm/models/tagger.hpp: sequence labelling with a BiLSTM-CRF, and the joint intent + slot model.
//
//   dsm::models::BiLSTMCRF<{.vocab_size = 20000, .num_tags = 12, .char_vocab_size = 100}> tagger;
//   dsm::models::TaggerInput in{words, lengths, chars, char_lengths};   // words [B, T]
//   Var<float> loss = tagger.loss(in, gold);      // CRF NLL, mean over sentences
//   auto best = tagger.decode(in);                // best.tags [B, T] (-1 at padding)
//
//   dsm::models::JointIntentSlot<{.vocab_size = 5000, .num_tags = 9, .num_intents = 6}> nlu;
//   Var<float> l = nlu.loss(in, slot_tags, intents);   // CRF NLL + intent cross-entropy
//   auto p = nlu.predict(in);                          // p.tags [B, T], p.intents [B]
//
// The encoder (Lample et al. 2016): word embeddings, optionally concatenated with character
// features (a BiLSTM over each word's characters, its two final states), a BiLSTM over the words,
// dropout, then a linear projection to per-tag emission scores for the CRF. The joint model adds
// a sentence head: the BiLSTM's final states (forward after the last word, backward after the
// first) -> linear -> intent logits. Sizes are the configuration (compile time, or dsm::dynamic).
#pragma once

#include <optional>

#include "../nn/nn.hpp"

namespace dsm::models {

struct TaggerConfig {
  std::int64_t vocab_size = 0;
  std::int64_t embedding_dim = 100;
  std::int64_t hidden_size = 128;      ///< per direction
  std::int64_t num_layers = 1;
  std::int64_t num_tags = 0;
  std::int64_t char_vocab_size = 0;    ///< 0: no character features
  std::int64_t char_embedding_dim = 25;
  std::int64_t char_hidden_size = 25;  ///< per direction
  std::int64_t num_intents = 0;        ///< JointIntentSlot only
  bool dynamic_form = false;  // set by dsm::dynamic only
};

/// Example: TaggerOptions o; o.dropout = 0.5; o.dropout_seed = 1;
struct TaggerOptions {
  double dropout = 0.0;            ///< on the embeddings and on the BiLSTM output, in train() only
  std::uint64_t dropout_seed = 0;
  Generator* generator = nullptr;  ///< initialization; the default generator when null
  /// Inference without character features looks up the BiLSTM's input projection per token
  /// (nn::EmbeddingProjectionCache) when the table fits in this many bytes; 0 turns it off.
  std::int64_t projection_cache_bytes = std::int64_t{64} << 20;
};

/// One batch: word ids [B, T] and each sentence's length (empty: all T); with character
/// features, chars [B, T, C] (character ids, anything past a word's end) and the character
/// count of each word, [B * T] in row-major order (0 for padding words).
struct TaggerInput {
  Tensor<std::int64_t> words;
  std::vector<std::int64_t> lengths;
  Tensor<std::int64_t> chars;
  std::vector<std::int64_t> char_lengths;
};

namespace detail {
inline const char* tagger_problem(const TaggerConfig& c, bool joint) {
  if (c.vocab_size <= 0 || c.embedding_dim <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.num_tags <= 0)
    return "vocab_size, embedding_dim, hidden_size, num_layers and num_tags must be positive";
  if (c.char_vocab_size < 0) return "char_vocab_size must not be negative";
  if (c.char_vocab_size > 0 && (c.char_embedding_dim <= 0 || c.char_hidden_size <= 0))
    return "char_embedding_dim and char_hidden_size must be positive with character features";
  if (joint && c.num_intents <= 0) return "num_intents must be positive for the joint intent + slot model";
  return nullptr;
}

/// Embeddings (+ character BiLSTM) -> BiLSTM -> dropout: the shared encoder.
template <class T>
class TaggerEncoder : public nn::Module {
 public:
  nn::Embedding<dynamic, T> embed;
  std::optional<nn::Embedding<dynamic, T>> char_embed;
  std::optional<nn::LSTM<dynamic, T>> char_lstm;
  nn::LSTM<dynamic, T> lstm;

  TaggerEncoder(const TaggerConfig& c, const TaggerOptions& o, Generator& gen)
      : embed(nn::EmbeddingConfig{c.vocab_size, c.embedding_dim}, {&gen}),
        lstm(nn::LSTMConfig{.input_size = c.embedding_dim + (c.char_vocab_size > 0 ? 2 * c.char_hidden_size : 0),
                            .hidden_size = c.hidden_size,
                            .num_layers = c.num_layers,
                            .bidirectional = true},
             {.dropout = o.dropout, .dropout_seed = o.dropout_seed + 1, .generator = &gen}),
        dropout_(o.dropout),
        dropout_gen_(o.dropout_seed),
        projection_cache_(o.projection_cache_bytes) {
    if (c.char_vocab_size > 0) {
      char_embed.emplace(nn::EmbeddingConfig{c.char_vocab_size, c.char_embedding_dim}, nn::EmbeddingOptions{&gen});
      char_lstm.emplace(nn::LSTMConfig{.input_size = c.char_embedding_dim, .hidden_size = c.char_hidden_size, .bidirectional = true},
                        nn::LSTMOptions{.generator = &gen});
    }
  }

  /// The BiLSTM's result for a batch: output [B, T, 2H] (after dropout), h_n [2 * layers, B, H].
  nn::LSTMOutput<T> operator()(const TaggerInput& in) {
    constexpr const char* op = "Tagger";
    if (in.words.rank() != 2) fail<shape_error>(op, "words must be [batch, time], got ", in.words.shape());
    const std::int64_t nb = in.words.size(0), steps = in.words.size(1);
    // Inference (no graph, no dropout) from words alone: each token's input projection is a table row.
    if (!char_lstm && !is_grad_enabled() && (dropout_ == 0 || !is_training()))
      if (const Tensor<T>* table = projection_cache_.update(embed.weight.value(), lstm.layer(0), in.words))
        return lstm.from_projections(*table, in.words, in.lengths);
    Var<T> x = embed(in.words);  // [B, T, E]
    if (char_lstm) {
      if (in.chars.rank() != 3 || in.chars.size(0) != nb || in.chars.size(1) != steps)
        fail<shape_error>(op, "chars of shape ", in.chars.shape(), " must be [", nb, ", ", steps, ", characters] with character features");
      const std::int64_t nc = in.chars.size(2);
      if (static_cast<std::int64_t>(in.char_lengths.size()) != nb * steps)
        fail<shape_error>(op, in.char_lengths.size(), " character lengths for ", nb * steps, " words");
      const Var<T> ce = (*char_embed)(in.chars.reshape({nb * steps, nc}));  // [B*T, C, ce]
      const auto r = (*char_lstm)(ce, in.char_lengths);                     // h_n [2, B*T, ch]
      const Var<T> words_chars = r.h_n.transpose(0, 1).reshape({nb, steps, -1});
      x = cat({x, words_chars}, 2);
    }
    x = nn::functional::dropout(x, dropout_, is_training(), dropout_gen_);
    auto r = lstm(x, in.lengths);
    r.output = nn::functional::dropout(r.output, dropout_, is_training(), dropout_gen_);
    return r;
  }

  void visit(nn::Members& m) override {
    m.module("embed", embed);
    if (char_embed) m.module("char_embed", *char_embed);
    if (char_lstm) m.module("char_lstm", *char_lstm);
    m.module("lstm", lstm);
  }

 private:
  double dropout_;
  Generator dropout_gen_;
  nn::EmbeddingProjectionCache<T> projection_cache_;
};
}  // namespace detail

/// Embeddings -> BiLSTM -> linear emissions -> CRF.
template <TaggerConfig C = dynamic, FloatingScalar T = float>
class BiLSTMCRF : public nn::Module, public nn::ConfigHolder<TaggerConfig, C> {
  using Holder = nn::ConfigHolder<TaggerConfig, C>;

 public:
  using Options = TaggerOptions;
  detail::TaggerEncoder<T> encoder;
  nn::Linear<dynamic, T> proj;  // [2H -> num_tags]
  nn::CRF<dynamic, T> crf;

  explicit BiLSTMCRF(Options o = {}) requires(!Holder::is_dynamic) : BiLSTMCRF(C, o, default_gen(o)) {
    static_assert(C.vocab_size > 0 && C.embedding_dim > 0 && C.hidden_size > 0 && C.num_layers > 0 && C.num_tags > 0,
                  "BiLSTMCRF: vocab_size, embedding_dim, hidden_size, num_layers and num_tags must be positive");
    static_assert(C.char_vocab_size == 0 || (C.char_embedding_dim > 0 && C.char_hidden_size > 0),
                  "BiLSTMCRF: char_embedding_dim and char_hidden_size must be positive with character features");
  }
  explicit BiLSTMCRF(const TaggerConfig& c, Options o = {}) requires(Holder::is_dynamic) : BiLSTMCRF(checked(c), o, default_gen(o)) {}
  using Holder::config;

  /// Emission scores [B, T, num_tags].
  Var<T> emissions(const TaggerInput& in) { return proj(encoder(in).output); }
  /// The CRF negative log-likelihood of gold [B, T].
  Var<T> loss(const TaggerInput& in, const Tensor<std::int64_t>& gold, nn::CRFReduction reduction = nn::CRFReduction::mean) {
    return crf.nll(emissions(in), gold, in.lengths, reduction);
  }
  /// Viterbi tags [B, T] (-1 at padding) and path scores [B]; runs without recording a graph.
  nn::functional::CRFPaths<T> decode(const TaggerInput& in) {
    no_grad guard;
    return crf.decode(emissions(in).value(), in.lengths);
  }

  void visit(nn::Members& m) override {
    m.module("encoder", encoder);
    m.module("proj", proj);
    m.module("crf", crf);
  }

 private:
  static Generator& default_gen(const Options& o) { return o.generator ? *o.generator : default_generator(); }
  static const TaggerConfig& checked(const TaggerConfig& c) {
    if (const char* p = detail::tagger_problem(c, false)) fail<config_error>("BiLSTMCRF", p);
    return c;
  }
  BiLSTMCRF(const TaggerConfig& c, const Options& o, Generator& gen)
      : Holder(c), encoder(c, o, gen), proj(nn::LinearConfig{2 * c.hidden_size, c.num_tags}, {&gen}), crf(nn::CRFConfig{c.num_tags}, {&gen}) {}
};

/// The joint model's prediction: slot tags [B, T] (-1 at padding) and the intent of each sentence.
template <class T>
struct IntentSlotPrediction {
  Tensor<std::int64_t> tags;
  Tensor<std::int64_t> intents;  // [B]
  Tensor<T> intent_probabilities;  // [B, num_intents]
};

/// The BiLSTM-CRF slot tagger plus a sentence-level intent classifier over the BiLSTM's final
/// states; trained on the sum of both losses.
template <TaggerConfig C = dynamic, FloatingScalar T = float>
class JointIntentSlot : public nn::Module, public nn::ConfigHolder<TaggerConfig, C> {
  using Holder = nn::ConfigHolder<TaggerConfig, C>;

 public:
  using Options = TaggerOptions;
  detail::TaggerEncoder<T> encoder;
  nn::Linear<dynamic, T> proj;         // [2H -> num_tags]
  nn::Linear<dynamic, T> intent_head;  // [2H -> num_intents]
  nn::CRF<dynamic, T> crf;

  explicit JointIntentSlot(Options o = {}) requires(!Holder::is_dynamic) : JointIntentSlot(C, o, default_gen(o)) {
    static_assert(C.vocab_size > 0 && C.embedding_dim > 0 && C.hidden_size > 0 && C.num_layers > 0 && C.num_tags > 0,
                  "JointIntentSlot: vocab_size, embedding_dim, hidden_size, num_layers and num_tags must be positive");
    static_assert(C.num_intents > 0, "JointIntentSlot: num_intents must be positive");
    static_assert(C.char_vocab_size == 0 || (C.char_embedding_dim > 0 && C.char_hidden_size > 0),
                  "JointIntentSlot: char_embedding_dim and char_hidden_size must be positive with character features");
  }
  explicit JointIntentSlot(const TaggerConfig& c, Options o = {}) requires(Holder::is_dynamic) : JointIntentSlot(checked(c), o, default_gen(o)) {}
  using Holder::config;

  struct Output {
    Var<T> emissions;      // [B, T, num_tags]
    Var<T> intent_logits;  // [B, num_intents]
  };
  Output operator()(const TaggerInput& in) {
    const auto r = encoder(in);
    const std::int64_t layers = config().num_layers;
    // The last layer's final states: forward after each sentence's last word, backward after its first.
    const Var<T> sentence = r.h_n.narrow(0, 2 * (layers - 1), 2).transpose(0, 1).reshape({r.h_n.size(1), -1});  // [B, 2H]
    return {proj(r.output), intent_head(sentence)};
  }
  /// CRF NLL (mean over sentences) + intent_weight * intent cross-entropy (mean).
  Var<T> loss(const TaggerInput& in, const Tensor<std::int64_t>& gold_tags, const Tensor<std::int64_t>& gold_intents, double intent_weight = 1.0) {
    if (gold_intents.rank() != 1 || gold_intents.size(0) != in.words.size(0))
      fail<shape_error>("JointIntentSlot", "intents of shape ", gold_intents.shape(), " must be [", in.words.size(0), "]");
    const Output out = (*this)(in);
    return crf.nll(out.emissions, gold_tags, in.lengths) + nn::functional::cross_entropy(out.intent_logits, gold_intents) * T(intent_weight);
  }
  IntentSlotPrediction<T> predict(const TaggerInput& in) {
    no_grad guard;
    const Output out = (*this)(in);
    const Tensor<T> probs = softmax(out.intent_logits.value(), 1);
    auto paths = crf.decode(out.emissions.value(), in.lengths);
    return {std::move(paths.tags), argmax(probs, 1), probs};
  }

  void visit(nn::Members& m) override {
    m.module("encoder", encoder);
    m.module("proj", proj);
    m.module("intent_head", intent_head);
    m.module("crf", crf);
  }

 private:
  static Generator& default_gen(const Options& o) { return o.generator ? *o.generator : default_generator(); }
  static const TaggerConfig& checked(const TaggerConfig& c) {
    if (const char* p = detail::tagger_problem(c, true)) fail<config_error>("JointIntentSlot", p);
    return c;
  }
  JointIntentSlot(const TaggerConfig& c, const Options& o, Generator& gen)
      : Holder(c),
        encoder(c, o, gen),
        proj(nn::LinearConfig{2 * c.hidden_size, c.num_tags}, {&gen}),
        intent_head(nn::LinearConfig{2 * c.hidden_size, c.num_intents}, {&gen}),
        crf(nn::CRFConfig{c.num_tags}, {&gen}) {}
};

}  // namespace dsm::models
