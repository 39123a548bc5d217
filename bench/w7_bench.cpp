// W7: one training step (forward, backward, AdamW) of a byte-level MoE transformer LM: vocab 256,
// d 256, 4 layers, 4 heads, causal, T = 128, batch 16, pre-norm RMSNorm, every FFN an MoE of 8
// SwiGLU experts of hidden 512, top-2. Rate: tokens/s (batch * T per step); counters: peak memory.
// Variants: activation checkpointing of every block, bf16 autocast. Also incremental decoding
// tokens/s with and without the KV cache (rows W7/decode_*).
#include <benchmark/benchmark.h>

#include <dsm/dsm.hpp>

#include "w7_common.hpp"

namespace {

using LM = dsm::models::TransformerLM<{.vocab_size = w7::vocab, .d_model = w7::d_model, .n_layers = w7::layers, .n_heads = w7::heads,
                                       .d_ff = w7::hidden, .n_experts = w7::experts, .top_k = w7::top_k}>;

LM make_lm() {
  dsm::Generator gen(1);
  dsm::models::TransformerOptions o;
  o.generator = &gen;
  o.moe.aux_loss_coef = w7::aux_loss_coef;
  return LM(o);
}

/// One training step per iteration. bf16: the forward under bf16 autocast (backward follows each
/// node's mode); checkpoint_every: activation checkpointing of every n-th block. Counters: the
/// allocator's peak bytes over the timed steps (activations, gradients, optimizer state).
void W7_train(benchmark::State& state, bool bf16, std::int64_t checkpoint_every) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  LM lm = make_lm();
  lm.set_checkpoint_every(checkpoint_every);
  dsm::optim::AdamW<float> opt(lm.named_parameters(), {.lr = w7::lr});
  dsm::Generator gen(2);
  const auto tokens = dsm::Tensor<std::int64_t>::randint(0, w7::vocab, {w7::batch, w7::seq + 1}, gen);
  const auto x = tokens.narrow(1, 0, w7::seq).contiguous(), y = tokens.narrow(1, 1, w7::seq).contiguous();
  std::size_t held = 0;
  auto step = [&] {
    opt.zero_grad();
    const std::size_t before = dsm::cpu::memory_stats().current_bytes;  // parameters, optimizer state, data
    dsm::Var<float> loss;
    {
      dsm::amp::autocast ac(dsm::amp::Precision::bf16, bf16);
      auto out = lm(x);
      loss = dsm::models::lm_loss(out.logits, y) + out.balance_loss;
    }
    held = std::max(held, dsm::cpu::memory_stats().current_bytes - before);  // what backward will read
    loss.backward();
    opt.step();
    lm.finish_step();
    return loss.item();
  };
  // The cache starts empty and one step fills it: the optimizer state and every block the step
  // uses exist from here on, as in a long run (emptied after that step, as until 2026-12-01, the
  // first timed step of every repetition paid the first touch of all its memory again).
  dsm::cpu::empty_cache();
  step();
  dsm::cpu::reset_peak_memory();
  held = 0;
  for (auto _ : state) benchmark::DoNotOptimize(step());
  // activations_MB: bytes allocated by the forward and alive when backward starts (the saved
  // activations, what checkpointing cuts); peak_MB: the step's peak, all memory included.
  state.counters["activations_MB"] = static_cast<double>(held) / 1e6;
  state.counters["peak_MB"] = static_cast<double>(dsm::cpu::memory_stats().peak_bytes) / 1e6;
  state.SetItemsProcessed(state.iterations() * w7::batch * w7::seq);
}
BENCHMARK_CAPTURE(W7_train, fp32, false, 0)->Name("W7/train/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W7_train, checkpointed, false, 1)->Name("W7/train_checkpoint_every_block/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W7_train, bf16, true, 0)->Name("W7/train_autocast_bf16/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

/// Generates 128 tokens after a 16-token prompt, with the KV cache (generate) or by recomputing
/// the whole sequence for every new token.
void W7_decode(benchmark::State& state, bool cached) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  LM lm = make_lm();
  lm.eval();
  const std::int64_t prompt_len = 16, new_tokens = 128;
  const auto prompt = dsm::Tensor<std::int64_t>::arange(prompt_len);
  for (auto _ : state) {
    dsm::Generator gen(3);
    if (cached) {
      benchmark::DoNotOptimize(lm.generate(prompt, new_tokens, {.temperature = 0.0, .top_k = 0, .top_p = 1.0}, gen).back());
    } else {
      dsm::no_grad guard;
      std::vector<std::int64_t> seq = prompt.to_vector();
      for (std::int64_t i = 0; i < new_tokens; ++i) {
        const auto logits = lm(dsm::Tensor<std::int64_t>::from_range(seq, {1, static_cast<std::int64_t>(seq.size())})).logits.value();
        const auto last = logits.select(1, logits.size(1) - 1).contiguous();
        seq.push_back(dsm::decode::sample(last.data(), w7::vocab, {.temperature = 0.0, .top_k = 0, .top_p = 1.0}, gen));
      }
      benchmark::DoNotOptimize(seq.back());
    }
  }
  state.SetItemsProcessed(state.iterations() * new_tokens);
}
BENCHMARK_CAPTURE(W7_decode, cached, true)->Name("W7/decode_kv_cache/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W7_decode, recompute, false)->Name("W7/decode_recompute/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
