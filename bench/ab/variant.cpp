// bench/ab/variant.cpp: one training step of a workload, compiled twice by run.sh against two
// versions of the headers, with `dsm` renamed (-Ddsm=dsm_a / dsm_b) so that both live in one
// program without sharing a symbol. WORKLOAD selects W3, W4, W5 or W7 (../../../shared/WORKLOADS.md
// has their definitions; the bench/wN_bench.cpp programs time the same steps).
#include <chrono>
#include <memory>

#include <dsm/dsm.hpp>
#include <dsm/models/tagger.hpp>

#include "../w3_common.hpp"
#include "../w5_common.hpp"
#include "../w7_common.hpp"

#define AB_CAT2(a, b) a##b
#define AB_CAT(a, b) AB_CAT2(a, b)

namespace {

#if WORKLOAD == 3
using Layer = dsm::moe::MoELayer<{.d_model = w3::d_model, .d_ff = w3::hidden, .n_experts = w3::n_experts, .top_k = w3::top_k}>;
struct Step {
  dsm::Generator gen{3}, data{4};
  Layer layer{[this] {
    dsm::moe::MoEOptions o;
    o.aux_loss_coef = w3::aux_loss_coef;
    o.generator = &gen;
    return o;
  }()};
  dsm::Var<float> x{dsm::Tensor<float>::randn({w3::tokens, w3::d_model}, data), true};
  dsm::Var<float> forward() {
    layer.zero_grad();
    x.zero_grad();
    auto out = layer(x);
    return dsm::sum(out.output) + out.balance_loss;
  }
  void update() {}
};
#elif WORKLOAD == 4
constexpr std::int64_t batch = 8, seq = 256, d_model = 512, heads = 8;
using Attention = dsm::nn::MultiheadAttention<{.d_model = d_model, .n_heads = heads}>;
struct Step {
  dsm::Generator gen{1}, data{2};
  Attention attn{[this] {
    dsm::nn::MultiheadAttentionOptions o;
    o.generator = &gen;
    return o;
  }()};
  dsm::Var<float> x{dsm::Tensor<float>::randn({batch, seq, d_model}, data), true};
  dsm::Var<float> forward() {
    attn.zero_grad();
    x.zero_grad();
    return dsm::sum(attn(x, {.causal = true, .key_padding_mask = {}}));
  }
  void update() {}
};
#elif WORKLOAD == 5
using Tagger = dsm::models::BiLSTMCRF<{.vocab_size = w5::vocab, .embedding_dim = w5::embedding, .hidden_size = w5::hidden, .num_tags = w5::tags}>;
struct Step {
  dsm::Generator gen{1};
  Tagger model{{.generator = &gen}};
  dsm::models::TaggerInput input{dsm::Tensor<std::int64_t>::randint(0, w5::vocab, {w5::batch, w5::seq}, gen), {}, {}, {}};
  dsm::Tensor<std::int64_t> gold = dsm::Tensor<std::int64_t>::randint(0, w5::tags, {w5::batch, w5::seq}, gen);
  dsm::optim::Adam<float> opt{model.named_parameters(), {.lr = w5::lr}};
  dsm::Var<float> forward() {
    opt.zero_grad();
    return model.crf.nll(model.emissions(input), gold, input.lengths, dsm::nn::CRFReduction::mean);
  }
  void update() { opt.step(); }
};
#elif WORKLOAD == 7
using LM = dsm::models::TransformerLM<{.vocab_size = w7::vocab, .d_model = w7::d_model, .n_layers = w7::layers, .n_heads = w7::heads,
                                       .d_ff = w7::hidden, .n_experts = w7::experts, .top_k = w7::top_k}>;
struct Step {
  dsm::Generator gen{1}, data{2};
  LM lm{[this] {
    dsm::models::TransformerOptions o;
    o.generator = &gen;
    o.moe.aux_loss_coef = w7::aux_loss_coef;
    return o;
  }()};
  dsm::optim::AdamW<float> opt{lm.named_parameters(), {.lr = w7::lr}};
  dsm::Tensor<std::int64_t> tokens = dsm::Tensor<std::int64_t>::randint(0, w7::vocab, {w7::batch, w7::seq + 1}, data);
  dsm::Tensor<std::int64_t> x = tokens.narrow(1, 0, w7::seq).contiguous(), y = tokens.narrow(1, 1, w7::seq).contiguous();
  dsm::Var<float> forward() {
    opt.zero_grad();
    auto out = lm(x);
    return dsm::models::lm_loss(out.logits, y) + out.balance_loss;
  }
  void update() {
    opt.step();
    lm.finish_step();
  }
};
#else
#error "WORKLOAD must be 3, 4, 5 or 7"
#endif

std::unique_ptr<Step> state;

}  // namespace

/// Runs n steps on `threads` threads; times[3i .. 3i+2] = forward, backward, whole step of step i in ms.
extern "C" void AB_CAT(run_, VARIANT)(int threads, int n, double* times) {
  dsm::set_num_threads(threads);
  if (!state) state = std::make_unique<Step>();
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  for (int i = 0; i < n; ++i) {
    const auto t0 = clock::now();
    dsm::Var<float> loss = state->forward();
    const auto t1 = clock::now();
    loss.backward();
    const auto t2 = clock::now();
    state->update();
    const auto t3 = clock::now();
    times[3 * i] = ms(t0, t1);
    times[3 * i + 1] = ms(t1, t2);
    times[3 * i + 2] = ms(t0, t3);
  }
}
