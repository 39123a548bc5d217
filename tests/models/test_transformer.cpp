// Tests of the MoE transformer LM and of sampling: overfitting a fixed batch, KV-cache decoding
// against full recomputation, reproducible generation, parameter names, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include <dsm/dsm.hpp>

using dsm::Tensor;
using dsm::Var;
using namespace dsm::models;

namespace {
TransformerConfig tiny(std::int64_t n_experts) {
  TransformerConfig c;
  c.vocab_size = 16;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 32;
  c.n_experts = n_experts;
  c.top_k = 2;
  c.first_dense_layers = 1;
  return c;
}
}  // namespace

TEST_CASE("a tiny MoE LM overfits a fixed batch to near-zero loss") {
  dsm::Generator gen(1);
  TransformerOptions o;
  o.generator = &gen;
  o.moe.aux_loss_coef = 0.01;
  TransformerLM<dsm::dynamic> lm(tiny(4), o);
  const Tensor<std::int64_t> tokens = Tensor<std::int64_t>::randint(0, 16, {4, 13}, gen);
  const Tensor<std::int64_t> input = tokens.narrow(1, 0, 12).contiguous(), target = tokens.narrow(1, 1, 12).contiguous();
  dsm::optim::AdamW<float> opt(lm.named_parameters(), {.lr = 1e-2, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    auto out = lm(input);
    Var<float> ce = lm_loss(out.logits, target);
    Var<float> loss = ce + out.balance_loss;
    loss.backward();
    opt.step();
    lm.finish_step();
    if (step == 0) first = ce.item();
    last = ce.item();
  }
  MESSAGE("cross-entropy " << first << " -> " << last);
  CHECK(first > 2.0);
  CHECK(last < 0.05);
}

TEST_CASE("KV-cache decoding gives the logits of full recomputation, generation is reproducible") {
  dsm::Generator gen(2);
  TransformerOptions o;
  o.generator = &gen;
  TransformerLM<dsm::dynamic, double> lm(tiny(4), o);
  lm.eval();
  const Tensor<std::int64_t> seq = Tensor<std::int64_t>::randint(0, 16, {1, 9}, gen);
  dsm::no_grad guard;
  const Tensor<double> full = lm(seq).logits.value();  // [1, 9, 16]
  std::vector<dsm::nn::KVCache<double>> caches(2);
  const Tensor<double> prompt = lm(seq.narrow(1, 0, 5).contiguous(), &caches).logits.value();
  for (std::int64_t t = 0; t < 5; ++t)
    for (std::int64_t v = 0; v < 16; ++v)
      CHECK(prompt.select(1, t).select(1, v).item() == doctest::Approx(full.select(1, t).select(1, v).item()).epsilon(1e-12));
  for (std::int64_t t = 5; t < 9; ++t) {
    const Tensor<double> step = lm(seq.narrow(1, t, 1).contiguous(), &caches).logits.value();
    for (std::int64_t v = 0; v < 16; ++v) CHECK(step.select(1, 0).select(1, v).item() == doctest::Approx(full.select(1, t).select(1, v).item()).epsilon(1e-12));
  }

  TransformerLM<dsm::dynamic> small(tiny(0), o);
  dsm::Generator g1(5), g2(5), g3(6);
  const auto prompt_ids = Tensor<std::int64_t>::from({1, 2, 3});
  const auto a = small.generate(prompt_ids, 20, {.temperature = 1.0, .top_k = 0, .top_p = 1.0}, g1);
  const auto b = small.generate(prompt_ids, 20, {.temperature = 1.0, .top_k = 0, .top_p = 1.0}, g2);
  const auto c = small.generate(prompt_ids, 20, {.temperature = 1.0, .top_k = 0, .top_p = 1.0}, g3);
  CHECK(a.size() == 20);
  CHECK(a == b);
  CHECK(a != c);
  for (auto id : a) CHECK((id >= 0 && id < 16));
  // a bounded context restarts the caches from the recent half instead of growing past it
  dsm::Generator g4(5);
  const auto bounded = small.generate(prompt_ids, 20, {.temperature = 0.0, .top_k = 0, .top_p = 1.0}, g4, 6);
  CHECK(bounded.size() == 20);
  CHECK_THROWS_AS(small.generate(prompt_ids, 2, {}, g4, 1), dsm::config_error);
}

TEST_CASE("TransformerLM parameters are named like the checkpoints, dense, MoE and tied layouts") {
  dsm::Generator gen(3);
  TransformerOptions o;
  o.generator = &gen;
  TransformerConfig c = tiny(4);
  c.n_shared = 1;
  c.tie_embeddings = true;
  TransformerLM<dsm::dynamic> lm(c, o);
  const auto sd = lm.state_dict();
  for (const char* name : {"embed.weight", "layers.0.attention_norm.weight", "layers.0.attention.q_proj.weight", "layers.0.ffn.w1",
                           "layers.1.moe.router.weight", "layers.1.moe.router.expert_bias", "layers.1.moe.experts.3.w2",
                           "layers.1.moe.shared_experts.w3", "norm.weight"})
    CHECK_MESSAGE(sd.contains(name), name);
  CHECK_FALSE(sd.contains("lm_head.weight"));
  CHECK(lm(Tensor<std::int64_t>::zeros({2, 3})).logits.shape() == dsm::Shape{2, 3, 16});
  // a static configuration compiles to the same model
  TransformerLM<{.vocab_size = 16, .d_model = 32, .n_layers = 1, .n_heads = 4, .d_ff = 32, .n_experts = 2, .top_k = 1}> fixed(o);
  CHECK(fixed(Tensor<std::int64_t>::zeros({1, 4})).moe_stats.size() == 1);
}

namespace {
struct StepResult {
  std::vector<std::vector<float>> grads;
  double loss = 0;
  std::vector<std::int64_t> load;  // the MoE layer's load counted by the step
  std::size_t held = 0;            // bytes allocated between the forward's start and its end
};
/// One training step of a tiny MoE LM with residual dropout, checkpointing every n-th block.
StepResult lm_step(std::int64_t checkpoint_every, std::int64_t n_layers = 3, std::int64_t batch = 4, std::int64_t seq = 12) {
  dsm::Generator gen(21);
  TransformerOptions o;
  o.generator = &gen;
  o.moe.aux_loss_coef = 0.01;
  o.dropout = 0.2;
  o.dropout_seed = 5;
  o.checkpoint_every = checkpoint_every;
  TransformerConfig c = tiny(4);
  c.n_layers = n_layers;
  TransformerLM<dsm::dynamic> lm(c, o);
  const Tensor<std::int64_t> tokens = Tensor<std::int64_t>::randint(0, 16, {batch, seq + 1}, gen);
  const Tensor<std::int64_t> input = tokens.narrow(1, 0, seq).contiguous(), target = tokens.narrow(1, 1, seq).contiguous();
  StepResult r;
  dsm::cpu::empty_cache();
  const std::size_t base = dsm::cpu::memory_stats().current_bytes;
  auto out = lm(input);
  Var<float> loss = Var<float>(lm_loss(out.logits, target) + out.balance_loss);
  r.held = dsm::cpu::memory_stats().current_bytes - base;
  loss.backward();
  r.loss = loss.item();
  for (auto& [name, p] : lm.named_parameters()) r.grads.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<float>{});
  r.load = lm.layers[1].moe->global_load().tokens_per_expert;
  return r;
}
}  // namespace

TEST_CASE("activation checkpointing: bit-identical gradients with dropout and MoE routing replay, load counted once") {
  const StepResult plain = lm_step(0);
  CHECK(lm_step(0, 3, 4, 12).loss == plain.loss);  // deterministic to begin with
  for (std::int64_t every : {1, 2}) {
    CAPTURE(every);
    const StepResult ck = lm_step(every);
    CHECK(ck.loss == plain.loss);
    REQUIRE(ck.grads.size() == plain.grads.size());
    for (std::size_t i = 0; i < ck.grads.size(); ++i) {
      CAPTURE(i);
      CHECK(ck.grads[i] == plain.grads[i]);
    }
    CHECK(ck.load == plain.load);  // the recomputation replays the routing and does not count it
  }
  std::int64_t assigned = 0;
  for (auto n : plain.load) assigned += n;
  CHECK(assigned == 4 * 12 * 2);  // tokens x top_k, once
}

TEST_CASE("activation checkpointing holds fewer bytes between forward and backward") {
  const StepResult plain = lm_step(0, 4, 8, 64), every = lm_step(1, 4, 8, 64), second = lm_step(2, 4, 8, 64);
  MESSAGE("bytes held after the forward, 4 blocks: none " << plain.held << ", every 2nd " << second.held << ", every block " << every.held);
  CHECK(every.held < second.held);
  CHECK(second.held < plain.held);
  CHECK(every.held * 2 < plain.held);
}

TEST_CASE("TransformerLM and lm_loss errors") {
  {
    TransformerLM<dsm::dynamic> lm(tiny(0));
    CHECK_THROWS_WITH_AS(lm.set_checkpoint_every(-1), doctest::Contains("must be 0 (off) or positive"), dsm::config_error);
    TransformerOptions bad;
    bad.dropout = 1.0;
    CHECK_THROWS_WITH_AS(TransformerLM<dsm::dynamic>(tiny(0), bad), doctest::Contains("probability must be in [0, 1)"), dsm::config_error);
  }
  TransformerConfig c = tiny(4);
  c.top_k = 5;
  CHECK_THROWS_WITH_AS(TransformerLM<dsm::dynamic>{c}, doctest::Contains("top_k must be between 1 and n_experts"), dsm::config_error);
  c = tiny(0);
  c.n_heads = 3;
  CHECK_THROWS_WITH_AS(TransformerLM<dsm::dynamic>{c}, doctest::Contains("n_heads must divide d_model"), dsm::config_error);
  TransformerLM<dsm::dynamic> lm(tiny(0));
  CHECK_THROWS_AS(lm(Tensor<std::int64_t>::zeros({3})), dsm::shape_error);
  CHECK_THROWS_AS(lm(Tensor<std::int64_t>::full({1, 2}, 99)), dsm::index_error);
  CHECK_THROWS_AS(lm_loss(Var<float>(Tensor<float>::zeros({2, 3, 16})), Tensor<std::int64_t>::zeros({2, 4})), dsm::shape_error);
  dsm::Generator gen(1);
  CHECK_THROWS_AS(lm.generate(Tensor<std::int64_t>::zeros({0}), 3, {}, gen), dsm::shape_error);
}

TEST_CASE("sampling: greedy, top-k, top-p and temperature draw from the right distribution") {
  const std::vector<float> logits{1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  dsm::Generator gen(8);
  using dsm::decode::sample;
  CHECK(sample(logits.data(), 5, {.temperature = 0.0, .top_k = 0, .top_p = 1.0}, gen) == 1);  // ties to the lower id
  for (int i = 0; i < 20; ++i) CHECK(sample(logits.data(), 5, {.temperature = 1.0, .top_k = 1, .top_p = 1.0}, gen) == 1);
  for (int i = 0; i < 20; ++i) CHECK(sample(logits.data(), 5, {.temperature = 1.0, .top_k = 0, .top_p = 0.01}, gen) == 1);
  // top_k = 3 at temperature 2: ids 1, 3, 2 with probabilities prop. to e^1.5, e^1.5, e^1
  std::map<std::int64_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[sample(logits.data(), 5, {.temperature = 2.0, .top_k = 3, .top_p = 1.0}, gen)];
  const double z = 2 * std::exp(1.5) + std::exp(1.0);
  CHECK(counts.count(0) == 0);
  CHECK(counts.count(4) == 0);
  CHECK(counts[2] / double(n) == doctest::Approx(std::exp(1.0) / z).epsilon(0.05));
  CHECK(counts[1] / double(n) == doctest::Approx(std::exp(1.5) / z).epsilon(0.05));
  CHECK_THROWS_AS(sample(logits.data(), 5, {.temperature = -1.0, .top_k = 0, .top_p = 1.0}, gen), dsm::config_error);
  CHECK_THROWS_AS(sample(logits.data(), 5, {.temperature = 1.0, .top_k = 0, .top_p = 0.0}, gen), dsm::config_error);
}
