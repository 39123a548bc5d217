// W2: fused elementwise y = relu(a * b + c), n = 16 Mi fp32, forward. Bytes: 4 arrays x 4 B x n.
// dsm: the expression assigned into a preallocated y (one pass).
// limit: the same computation hand-written as one OpenMP SIMD loop.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <dsm/dsm.hpp>

namespace {

constexpr std::int64_t n = std::int64_t{16} << 20;

struct Inputs {
  dsm::Tensor<float> a, b, c, y;
  Inputs() {
    dsm::Generator g{2};
    a = dsm::Tensor<float>::randn({n}, g);
    b = dsm::Tensor<float>::randn({n}, g);
    c = dsm::Tensor<float>::randn({n}, g);
    y = dsm::Tensor<float>::zeros({n});
  }
};
Inputs& inputs() {
  static Inputs in;
  return in;
}

void W2_fwd_dsm(benchmark::State& state) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  auto& [a, b, c, y] = inputs();
  for (auto _ : state) {
    y = dsm::relu(a * b + c);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_dsm)->Name("W2/fwd/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W2_fwd_limit(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  auto& in = inputs();
  const float *pa = in.a.data(), *pb = in.b.data(), *pc = in.c.data();
  float* py = in.y.data();
  for (auto _ : state) {
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = pa[i] * pb[i] + pc[i];
      py[i] = v > 0.f ? v : 0.f;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_limit)->Name("W2/fwd/limit")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
