// W6 in LibTorch: the same chain as a PyTorch user writes it.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

constexpr int chain = 10000;

void W6_chain_libtorch(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  auto x0 = torch::ones({16}).requires_grad_();
  for (auto _ : state) {
    x0.mutable_grad() = torch::Tensor();
    auto x = x0;
    for (int i = 0; i < chain; ++i) x = x * 1.0001 + 0.0001;
    x.sum().backward();
    benchmark::DoNotOptimize(x0.grad().data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * chain);
}
BENCHMARK(W6_chain_libtorch)->Name("W6/chain/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
