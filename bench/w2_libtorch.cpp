// W2 in LibTorch: as a PyTorch user writes it (torch::relu(a * b + c), which allocates two
// temporaries and the result), and the in-place form an expert writes into a preallocated y.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "libtorch_threads.hpp"

namespace {

constexpr std::int64_t n = std::int64_t{16} << 20;

void W2_fwd_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  auto a = torch::randn({n}), b = torch::randn({n}), c = torch::randn({n});
  for (auto _ : state) {
    auto y = torch::relu(a * b + c);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_libtorch)->Name("W2/fwd/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W2_fwd_inplace_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  auto a = torch::randn({n}), b = torch::randn({n}), c = torch::randn({n}), y = torch::empty({n});
  for (auto _ : state) {
    at::mul_out(y, a, b);
    y.add_(c).relu_();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_inplace_libtorch)->Name("W2/fwd_inplace/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

// Forward+backward as a PyTorch user writes it: leaves with requires_grad, gradients set to None
// between steps (the default of zero_grad), y.backward(g).
void W2_fwd_bwd_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  torch::manual_seed(2);
  auto a = torch::randn({n}).requires_grad_(), b = torch::randn({n}).requires_grad_(), c = torch::randn({n}).requires_grad_();
  const auto g = torch::ones({n});
  for (auto _ : state) {
    for (auto* t : {&a, &b, &c}) t->mutable_grad() = torch::Tensor();
    auto y = torch::relu(a * b + c);
    y.backward(g);
    benchmark::DoNotOptimize(c.grad().data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_bwd_libtorch)->Name("W2/fwd_bwd/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
