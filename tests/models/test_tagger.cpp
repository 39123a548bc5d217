// Tests of the sequence-labelling models: the BiLSTM-CRF learns a context-dependent tagging task,
// character features carry information the word ids do not, the joint intent + slot model learns
// both heads, decoding marks padding, parameter names, and configuration errors.
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Tensor;
using dsm::Var;
using dsm::models::TaggerInput;

namespace {

/// Random sentences over `vocab` words with lengths in [2, steps]; gold tag of word t is
/// (w_t + w_{t-1}) % n_tags (w_{-1} = 0): it needs the left context.
struct Synthetic {
  TaggerInput input;
  Tensor<std::int64_t> gold;
};
Synthetic synthetic(std::int64_t nb, std::int64_t steps, std::int64_t vocab, std::int64_t n_tags, std::uint64_t seed) {
  dsm::Generator gen(seed);
  Synthetic s{{Tensor<std::int64_t>::randint(0, vocab, {nb, steps}, gen), {}, {}, {}}, Tensor<std::int64_t>::zeros({nb, steps})};
  const auto lens = Tensor<std::int64_t>::randint(2, steps + 1, {nb}, gen).to_vector();
  s.input.lengths = lens;
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t t = 0; t < steps; ++t) {
      const std::int64_t w = s.input.words.data()[b * steps + t], prev = t ? s.input.words.data()[b * steps + t - 1] : 0;
      s.gold.data()[b * steps + t] = (w + prev) % n_tags;
    }
  return s;
}

double tag_accuracy(const Tensor<std::int64_t>& pred, const Synthetic& s) {
  std::int64_t right = 0, total = 0;
  const std::int64_t steps = s.gold.size(1);
  for (std::int64_t b = 0; b < s.gold.size(0); ++b)
    for (std::int64_t t = 0; t < s.input.lengths[static_cast<std::size_t>(b)]; ++t, ++total) right += pred.data()[b * steps + t] == s.gold.data()[b * steps + t];
  return static_cast<double>(right) / static_cast<double>(total);
}

}  // namespace

TEST_CASE("BiLSTMCRF learns a tagging task that needs context, decoding marks padding with -1") {
  dsm::Generator gen(1);
  dsm::models::BiLSTMCRF<{.vocab_size = 6, .embedding_dim = 8, .hidden_size = 16, .num_tags = 3}> tagger({.generator = &gen});
  const auto data = synthetic(24, 7, 6, 3, 2);
  dsm::optim::Adam<float> opt(tagger.named_parameters(), {.lr = 0.03});
  const double before = tag_accuracy(tagger.decode(data.input).tags, data);
  float first = 0, last = 0;
  for (int step = 0; step < 120; ++step) {
    opt.zero_grad();
    const Var<float> loss = tagger.loss(data.input, data.gold);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  const auto best = tagger.decode(data.input);
  const double after = tag_accuracy(best.tags, data);
  MESSAGE("tag accuracy " << before << " -> " << after << ", CRF NLL " << first << " -> " << last);
  CHECK(after >= 0.97);
  CHECK(last < 0.1 * first);
  for (std::int64_t b = 0; b < 24; ++b)
    for (std::int64_t t = data.input.lengths[static_cast<std::size_t>(b)]; t < 7; ++t) CHECK(best.tags.data()[b * 7 + t] == -1);
}

TEST_CASE("Decoding through the per-token projection table equals decoding without it, after training steps too") {
  // Two taggers with the same weights, one with the table (the default) and one without; trained
  // alike, they must keep decoding alike: the table sees every weight change.
  using Tagger = dsm::models::BiLSTMCRF<{.vocab_size = 30, .embedding_dim = 8, .hidden_size = 12, .num_layers = 2, .num_tags = 4}>;
  dsm::Generator g1(4), g2(4);
  Tagger cached({.generator = &g1}), plain({.generator = &g2, .projection_cache_bytes = 0});
  const auto data = synthetic(9, 6, 30, 4, 6), other = synthetic(5, 4, 30, 4, 7);
  dsm::optim::Adam<float> o1(cached.named_parameters(), {.lr = 0.05}), o2(plain.named_parameters(), {.lr = 0.05});
  for (int step = 0; step < 3; ++step) {
    const auto a = cached.decode(data.input), b = plain.decode(data.input);
    CHECK(a.tags.to_vector() == b.tags.to_vector());
    dsm_test::check_close(a.scores, b.scores, 1e-5, 1e-5);
    for (auto* o : {&o1, &o2}) o->zero_grad();
    cached.loss(data.input, data.gold).backward();
    plain.loss(data.input, data.gold).backward();
    o1.step();
    o2.step();
  }
  // The result does not depend on which rows earlier batches left in the table.
  Tagger fresh({.generator = &g1});
  fresh.load_state_dict(cached.state_dict());
  const auto warm = cached.decode(other.input), cold = fresh.decode(other.input);
  CHECK(warm.tags.to_vector() == cold.tags.to_vector());
  dsm_test::check_close(warm.scores, cold.scores, 0, 0);
}

TEST_CASE("Character features carry what the word ids do not") {
  // Every word id is the same; the tag is the word's first character (a, b or c).
  const std::int64_t nb = 16, steps = 5, nc = 3;
  dsm::Generator gen(3);
  TaggerInput in{Tensor<std::int64_t>::zeros({nb, steps}), {}, Tensor<std::int64_t>::randint(1, 4, {nb, steps, nc}, gen), {}};
  in.char_lengths.assign(static_cast<std::size_t>(nb * steps), 0);
  Tensor<std::int64_t> gold({nb, steps});
  for (std::int64_t i = 0; i < nb * steps; ++i) {
    in.char_lengths[static_cast<std::size_t>(i)] = 1 + i % nc;
    gold.data()[i] = in.chars.data()[i * nc] - 1;
  }
  dsm::models::BiLSTMCRF<dsm::dynamic> tagger({.vocab_size = 2, .embedding_dim = 4, .hidden_size = 8, .num_tags = 3, .char_vocab_size = 4,
                                               .char_embedding_dim = 4, .char_hidden_size = 6},
                                              {.generator = &gen});
  dsm::optim::Adam<float> opt(tagger.named_parameters(), {.lr = 0.05});
  for (int step = 0; step < 80; ++step) {
    opt.zero_grad();
    tagger.loss(in, gold).backward();
    opt.step();
  }
  const auto pred = tagger.decode(in).tags;
  std::int64_t right = 0;
  for (std::int64_t i = 0; i < nb * steps; ++i) right += pred.data()[i] == gold.data()[i];
  CHECK(static_cast<double>(right) / static_cast<double>(nb * steps) >= 0.95);
  CHECK(tagger.encoder.char_lstm.has_value());
  bool has_char_names = false;
  for (auto& [name, p] : tagger.named_parameters<float>()) has_char_names = has_char_names || name == "encoder.char_lstm.weight_ih_l0_reverse";
  CHECK(has_char_names);
}

TEST_CASE("JointIntentSlot learns intents and slots together") {
  // Intent: whether word 5 occurs in the sentence; slots as in the synthetic tagging task.
  auto data = synthetic(24, 6, 6, 3, 4);
  Tensor<std::int64_t> intents = Tensor<std::int64_t>::zeros({24});
  for (std::int64_t b = 0; b < 24; ++b)
    for (std::int64_t t = 0; t < data.input.lengths[static_cast<std::size_t>(b)]; ++t)
      if (data.input.words.data()[b * 6 + t] == 5) intents.data()[b] = 1;
  dsm::Generator gen(5);
  dsm::models::JointIntentSlot<{.vocab_size = 6, .embedding_dim = 8, .hidden_size = 16, .num_tags = 3, .num_intents = 2}> nlu({.generator = &gen});
  dsm::optim::Adam<float> opt(nlu.named_parameters(), {.lr = 0.03});
  for (int step = 0; step < 120; ++step) {
    opt.zero_grad();
    nlu.loss(data.input, data.gold, intents).backward();
    opt.step();
  }
  const auto p = nlu.predict(data.input);
  CHECK(tag_accuracy(p.tags, data) >= 0.97);
  std::int64_t right = 0;
  for (std::int64_t b = 0; b < 24; ++b) right += p.intents.data()[b] == intents.data()[b];
  CHECK(right >= 23);
  CHECK(p.intent_probabilities.shape() == dsm::Shape{24, 2});
  CHECK(dsm::sum(p.intent_probabilities).item() == doctest::Approx(24.0).epsilon(1e-5));
}

TEST_CASE("Tagger configuration and input errors") {
  using Dyn = dsm::models::BiLSTMCRF<dsm::dynamic>;
  CHECK_THROWS_WITH_AS(Dyn({.vocab_size = 5, .num_tags = 0}), "BiLSTMCRF: vocab_size, embedding_dim, hidden_size, num_layers and num_tags must be positive",
                       dsm::config_error);
  CHECK_THROWS_WITH_AS(dsm::models::JointIntentSlot<dsm::dynamic>({.vocab_size = 5, .num_tags = 3}),
                       "JointIntentSlot: num_intents must be positive for the joint intent + slot model", dsm::config_error);
  Dyn chars({.vocab_size = 5, .embedding_dim = 4, .hidden_size = 4, .num_tags = 3, .char_vocab_size = 10});
  const TaggerInput no_chars{Tensor<std::int64_t>::zeros({2, 3}), {}, {}, {}};
  CHECK_THROWS_WITH_AS(chars.emissions(no_chars), "Tagger: chars of shape [] must be [2, 3, characters] with character features", dsm::shape_error);
  Dyn plain({.vocab_size = 5, .embedding_dim = 4, .hidden_size = 4, .num_tags = 3});
  CHECK_THROWS_WITH_AS(plain.emissions({Tensor<std::int64_t>::zeros({6}), {}, {}, {}}), "Tagger: words must be [batch, time], got [6]", dsm::shape_error);
  CHECK(plain.emissions(no_chars).shape() == dsm::Shape{2, 3, 3});
}
