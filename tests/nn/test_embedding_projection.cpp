// Tests of inference from per-token input projections: lstm_layer_lookup against lstm_layer over
// the embedded tokens (both directions, lengths, initial states, both layouts), the cache's rows
// against E W_ih^T + b, which rows it computes and when it recomputes them (embedding rows,
// weights, biases), its budget, LSTM::from_projections over two layers, and errors.
#include <doctest/doctest.h>

#include <algorithm>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Tensor;
using dsm::Var;
namespace F = dsm::nn::functional;

namespace {

/// Row v: E[v] W_ih^T + b_ih + b_hh for each direction, side by side (written out plainly).
template <class T>
Tensor<T> reference_table(const Tensor<T>& emb, std::span<const F::LSTMDirection<T>> dirs) {
  std::vector<Tensor<T>> parts;
  for (const auto& d : dirs) parts.push_back(dsm::matmul(emb, d.w_ih.value().transpose(0, 1)) + d.b_ih.value() + d.b_hh.value());
  return dsm::cat(parts, 1);
}

/// The number of distinct values in ids.
std::int64_t distinct(const Tensor<std::int64_t>& ids) {
  auto v = ids.to_vector();
  std::sort(v.begin(), v.end());
  return std::unique(v.begin(), v.end()) - v.begin();
}

}  // namespace

TEST_CASE("lstm_layer_lookup equals lstm_layer over the embedded tokens") {
  dsm::Generator gen(3);
  for (const bool batch_first : {true, false})
    for (const bool bidirectional : {false, true}) {
      CAPTURE(batch_first);
      CAPTURE(bidirectional);
      const std::int64_t vocab = 11, dim = 6, h = 5, nb = 4, steps = 7, nd = bidirectional ? 2 : 1;
      dsm::nn::LSTM<dsm::dynamic, double> lstm({.input_size = dim, .hidden_size = h, .bidirectional = bidirectional, .batch_first = batch_first});
      const Tensor<double> emb = Tensor<double>::randn({vocab, dim}, gen);
      const Tensor<std::int64_t> ids = Tensor<std::int64_t>::randint(0, vocab, batch_first ? dsm::Shape{nb, steps} : dsm::Shape{steps, nb}, gen);
      const std::vector<std::int64_t> lengths{7, 3, 0, 5};
      const Tensor<double> h0 = Tensor<double>::randn({nd, nb, h}, gen), c0 = Tensor<double>::randn({nd, nb, h}, gen);
      dsm::no_grad guard;
      const auto plain = F::lstm_layer(dsm::embedding(Var<double>(emb), ids), lstm.layer(0), {.batch_first = batch_first}, lengths, Var<double>(h0), Var<double>(c0));
      const auto looked = F::lstm_layer_lookup(reference_table(emb, lstm.layer(0)), ids, lstm.layer(0), {.batch_first = batch_first}, lengths, h0, c0);
      dsm_test::check_close(looked.output.value(), plain.output.value(), 1e-12, 1e-12);
      dsm_test::check_close(looked.h_n.value(), plain.h_n.value(), 1e-12, 1e-12);
      dsm_test::check_close(looked.c_n.value(), plain.c_n.value(), 1e-12, 1e-12);
      CHECK_FALSE(looked.output.requires_grad());
    }
}

TEST_CASE("EmbeddingProjectionCache computes each token's row once and again only when its inputs change") {
  dsm::Generator gen(5);
  dsm::nn::LSTM<dsm::dynamic, float> lstm({.input_size = 7, .hidden_size = 5, .bidirectional = true});
  dsm::nn::Embedding<dsm::dynamic, float> embed({50, 7});
  dsm::nn::EmbeddingProjectionCache<float> cache;
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::randint(0, 20, {3, 5}, gen);
  auto check_rows = [&](const Tensor<float>& table, const Tensor<std::int64_t>& which) {
    const Tensor<float> want = reference_table(embed.weight.value(), lstm.layer(0));
    for (const std::int64_t v : which.to_vector()) dsm_test::check_close(table.select(0, v), want.select(0, v), 1e-5, 1e-6);
  };

  const Tensor<float>* table = cache.update(embed.weight.value(), lstm.layer(0), ids);
  REQUIRE(table != nullptr);
  CHECK(table->shape() == dsm::Shape{50, 40});
  CHECK(cache.last_computed() == distinct(ids));
  check_rows(*table, ids);
  cache.update(embed.weight.value(), lstm.layer(0), ids);
  CHECK(cache.last_computed() == 0);

  const Tensor<std::int64_t> more = Tensor<std::int64_t>::from({{ids.data()[0], 30, 31, 30}});
  cache.update(embed.weight.value(), lstm.layer(0), more);
  CHECK(cache.last_computed() == 2);
  check_rows(*table, more);

  // An edited embedding row is recomputed; the others are kept.
  embed.weight.value().data()[ids.data()[0] * 7 + 3] += 0.5f;
  cache.update(embed.weight.value(), lstm.layer(0), ids);
  CHECK(cache.last_computed() == 1);
  check_rows(*table, ids);
  // Any change to the layer's input weights or biases recomputes every row.
  auto params = lstm.named_parameters<float>();
  for (const char* name : {"weight_ih_l0_reverse", "bias_ih_l0", "bias_hh_l0_reverse"}) {
    CAPTURE(name);
    for (auto& [n, w] : params)
      if (n == name) w.value().data()[2] -= 0.25f;
    cache.update(embed.weight.value(), lstm.layer(0), ids);
    CHECK(cache.last_computed() == distinct(ids));
    check_rows(*table, ids);
  }
  cache.clear();
  cache.update(embed.weight.value(), lstm.layer(0), ids);
  CHECK(cache.last_computed() == distinct(ids));

  // Over budget: no table, the caller takes the ordinary path. 50 x (40 + 7) floats = 9,400 bytes.
  CHECK(dsm::nn::EmbeddingProjectionCache<float>(9400).update(embed.weight.value(), lstm.layer(0), ids) != nullptr);
  CHECK(dsm::nn::EmbeddingProjectionCache<float>(9399).update(embed.weight.value(), lstm.layer(0), ids) == nullptr);
}

TEST_CASE("LSTM::from_projections equals the LSTM over embeddings, two layers deep") {
  dsm::Generator gen(8);
  dsm::nn::LSTM<dsm::dynamic, float> lstm({.input_size = 9, .hidden_size = 6, .num_layers = 2, .bidirectional = true});
  dsm::nn::Embedding<dsm::dynamic, float> embed({40, 9});
  dsm::nn::EmbeddingProjectionCache<float> cache;
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::randint(0, 40, {5, 8}, gen);
  const std::vector<std::int64_t> lengths{8, 1, 6, 8, 3};
  const auto want = lstm(embed(ids), lengths);
  const auto got = lstm.from_projections(*cache.update(embed.weight.value(), lstm.layer(0), ids), ids, lengths);
  CHECK_FALSE(got.output.requires_grad());
  dsm_test::check_close(got.output.value(), want.output.value(), 1e-5, 1e-6);
  dsm_test::check_close(got.h_n.value(), want.h_n.value(), 1e-5, 1e-6);
  dsm_test::check_close(got.c_n.value(), want.c_n.value(), 1e-5, 1e-6);
}

TEST_CASE("Projection lookup errors name the operation and the offending values") {
  dsm::nn::LSTM<dsm::dynamic, float> lstm({.input_size = 3, .hidden_size = 2, .bidirectional = true});
  dsm::nn::EmbeddingProjectionCache<float> cache;
  const Tensor<float> emb = Tensor<float>::zeros({10, 3});
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({{1, 10}});
  CHECK_THROWS_WITH_AS(cache.update(emb, lstm.layer(0), ids), "EmbeddingProjectionCache: id 10 is outside the embedding's 10 rows", dsm::index_error);
  CHECK_THROWS_WITH_AS(cache.update(Tensor<float>::zeros({10, 4}), lstm.layer(0), ids),
                       "EmbeddingProjectionCache: weight_ih [8, 3] must be [8, 4] for embeddings of dim 4", dsm::shape_error);
  CHECK_THROWS_WITH_AS(cache.update(Tensor<float>::zeros({30}), lstm.layer(0), ids), "EmbeddingProjectionCache: embedding of shape [30] must be [vocabulary, dim]",
                       dsm::shape_error);
  const Tensor<float> table = Tensor<float>::zeros({10, 16});
  CHECK_THROWS_WITH_AS(F::lstm_layer_lookup(table, ids, lstm.layer(0)), "lstm_layer_lookup: id 10 is outside the table's 10 rows", dsm::index_error);
  CHECK_THROWS_WITH_AS(F::lstm_layer_lookup(Tensor<float>::zeros({10, 8}), ids, lstm.layer(0)), "lstm_layer_lookup: table of shape [10, 8] must be [vocabulary, 16]",
                       dsm::shape_error);
  CHECK_THROWS_WITH_AS(F::lstm_layer_lookup(table, Tensor<std::int64_t>::zeros({4}), lstm.layer(0)), "lstm_layer_lookup: ids of shape [4] must be [batch, time]",
                       dsm::shape_error);
  const std::vector<std::int64_t> bad_lengths{3};
  CHECK_THROWS_WITH_AS(F::lstm_layer_lookup(table, Tensor<std::int64_t>::zeros({1, 2}), lstm.layer(0), {}, bad_lengths),
                       "lstm_layer_lookup: length 3 of sequence 0 is outside [0, 2]", dsm::index_error);
}
