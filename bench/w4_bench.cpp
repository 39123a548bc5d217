// W4: causal self-attention, B = 8, T = 256, d = 512, 8 heads, with the Q, K, V and output
// projections; forward (no grad) and forward + backward. Rates in tokens/s. dsm runs its default
// memory-efficient kernel ("dsm") and the plain one that materializes the scores ("dsm_plain" rows
// are reported under their own name, without a LibTorch peer row). W4/peak_memory_T4096 rows:
// the peak memory of both kernels at T = 4096 (the attention issue's memory target).
#include <benchmark/benchmark.h>

#include <dsm/dsm.hpp>

#include "steady.hpp"

namespace {

constexpr std::int64_t batch = 8, seq = 256, d_model = 512, heads = 8;
using Attention = dsm::nn::MultiheadAttention<{.d_model = d_model, .n_heads = heads}>;

Attention make(bool memory_efficient) {
  dsm::Generator gen(1);
  dsm::nn::MultiheadAttentionOptions o;
  o.generator = &gen;
  o.memory_efficient = memory_efficient;
  return Attention(o);
}

void W4_forward(benchmark::State& state, bool memory_efficient) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  Attention attn = make(memory_efficient);
  dsm::Generator gen(2);
  const dsm::Var<float> x(dsm::Tensor<float>::randn({batch, seq, d_model}, gen));
  dsm::no_grad guard;
  dsm_bench::run_steady(state, [&] {
    auto y = attn(x, {.causal = true, .key_padding_mask = {}});
    benchmark::DoNotOptimize(y.value().data());
  });
  state.SetItemsProcessed(state.iterations() * batch * seq);
}

void W4_train(benchmark::State& state, bool memory_efficient) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  Attention attn = make(memory_efficient);
  dsm::Generator gen(2);
  const dsm::Var<float> x(dsm::Tensor<float>::randn({batch, seq, d_model}, gen), true);
  dsm_bench::run_steady(state, [&] {
    attn.zero_grad();
    x.zero_grad();
    dsm::sum(attn(x, {.causal = true, .key_padding_mask = {}})).backward();
    benchmark::DoNotOptimize(x.grad().data());
  });
  state.SetItemsProcessed(state.iterations() * batch * seq);
}

/// The memory target of the attention issue: the peak allocator bytes of one forward + backward of
/// the W4 module on one sequence of T = 4096 (causal), flash against plain. Counters peak_MB (the
/// step's peak above what existed before it).
void W4_peak_memory(benchmark::State& state, bool memory_efficient) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  constexpr std::int64_t long_seq = 4096;
  Attention attn = make(memory_efficient);
  dsm::Generator gen(3);
  const dsm::Var<float> x(dsm::Tensor<float>::randn({1, long_seq, d_model}, gen), true);
  std::size_t peak = 0;
  for (auto _ : state) {
    attn.zero_grad();
    x.zero_grad();
    dsm::cpu::empty_cache();
    const std::size_t base = dsm::cpu::memory_stats().current_bytes;
    dsm::cpu::reset_peak_memory();
    dsm::sum(attn(x, {.causal = true, .key_padding_mask = {}})).backward();
    peak = std::max(peak, dsm::cpu::memory_stats().peak_bytes - base);
  }
  state.counters["peak_MB"] = static_cast<double>(peak) / 1e6;
  state.SetItemsProcessed(state.iterations() * long_seq);
}

BENCHMARK_CAPTURE(W4_peak_memory, flash, true)->Name("W4/peak_memory_T4096/dsm")->Arg(1)->ArgName("threads")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_peak_memory, plain, false)->Name("W4/peak_memory_T4096/dsm_plain")->Arg(1)->ArgName("threads")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_forward, flash, true)->Name("W4/forward/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_train, flash, true)->Name("W4/forward_backward/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_forward, plain, false)->Name("W4/forward/dsm_plain")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_train, plain, false)->Name("W4/forward_backward/dsm_plain")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
