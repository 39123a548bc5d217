// W6: autograd overhead. A chain of 10,000 ops `x = x * 1.0001 + 0.0001` on a 16-element tensor,
// forward and backward; the rate is chain ops per second (the console shows time per iteration;
// the ratio table's items/s inverts to microseconds per op). In dsm each statement is one fused
// graph node; LibTorch records two (mul, add).
#include <benchmark/benchmark.h>

#include <dsm/dsm.hpp>

namespace {

constexpr int chain = 10000;

void W6_chain_dsm(benchmark::State& state) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  dsm::Var<float> x0(dsm::Tensor<float>::ones({16}), true);
  for (auto _ : state) {
    x0.zero_grad();
    dsm::Var<float> x = x0;
    for (int i = 0; i < chain; ++i) x = x * 1.0001f + 0.0001f;
    dsm::sum(x).backward();
    benchmark::DoNotOptimize(x0.grad().data());
  }
  state.SetItemsProcessed(state.iterations() * chain);
}
BENCHMARK(W6_chain_dsm)->Name("W6/chain/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
