// W3: the MoE layer. T = 4096 tokens, d_model 512, 8 routed SwiGLU experts of hidden 1024, softmax
// top-2 with renormalized weights, dropless, Switch aux loss; forward (no grad) and forward +
// backward. Rates in tokens/s; the counter GFLOP/s counts the expert GEMMs only. The limit row
// is the register-only FMA peak (W0a) expressed in tokens/s of expert GEMM work.
#include <benchmark/benchmark.h>

#include <dsm/dsm.hpp>

#include "fma_limit.hpp"
#include "steady.hpp"
#include "w3_common.hpp"

namespace {

using Layer = dsm::moe::MoELayer<{.d_model = w3::d_model, .d_ff = w3::hidden, .n_experts = w3::n_experts, .top_k = w3::top_k}>;

Layer make_layer() {
  dsm::Generator gen(3);
  dsm::moe::MoEOptions o;
  o.aux_loss_coef = w3::aux_loss_coef;
  o.generator = &gen;
  return Layer(o);
}

void report(benchmark::State& state, double flops_per_token) {
  state.SetItemsProcessed(state.iterations() * w3::tokens);
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * w3::tokens * flops_per_token / 1e9, benchmark::Counter::kIsRate);
}

void W3_forward_dsm(benchmark::State& state) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  Layer layer = make_layer();
  dsm::Generator gen(4);
  const dsm::Var<float> x(dsm::Tensor<float>::randn({w3::tokens, w3::d_model}, gen));
  dsm::no_grad guard;
  dsm_bench::run_steady(state, [&] {
    auto out = layer(x);
    benchmark::DoNotOptimize(out.output.value().data());
  });
  report(state, w3::forward_flops_per_token);
}
BENCHMARK(W3_forward_dsm)->Name("W3/forward/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

/// bf16: the forward under bf16 autocast (the expert GEMMs round their operands; the router stays fp32).
void W3_train(benchmark::State& state, bool bf16) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  Layer layer = make_layer();
  dsm::Generator gen(4);
  const dsm::Var<float> x(dsm::Tensor<float>::randn({w3::tokens, w3::d_model}, gen), true);
  dsm_bench::run_steady(state, [&] {
    layer.zero_grad();
    x.zero_grad();
    dsm::Var<float> loss;
    {
      dsm::amp::autocast ac(dsm::amp::Precision::bf16, bf16);
      auto out = layer(x);
      loss = dsm::sum(out.output) + out.balance_loss;
    }
    loss.backward();
    benchmark::DoNotOptimize(x.grad().data());
  });
  report(state, w3::train_flops_per_token);
}
BENCHMARK_CAPTURE(W3_train, fp32, false)->Name("W3/forward_backward/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W3_train, bf16, true)->Name("W3/forward_backward_autocast_bf16/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W3_limit(benchmark::State& state, double flops_per_token) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t iters = 20'000'000;
  double flops = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(dsm_bench::fma_all_threads(threads, iters));
    flops += threads * dsm_bench::fma_kernel_flops(iters);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(flops / flops_per_token));
}
BENCHMARK_CAPTURE(W3_limit, forward, w3::forward_flops_per_token)->Name("W3/forward/limit")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W3_limit, train, w3::train_flops_per_token)->Name("W3/forward_backward/limit")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
