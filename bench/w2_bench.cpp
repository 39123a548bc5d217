// W2: fused elementwise y = relu(a * b + c), n = 16 Mi fp32, forward, and forward+backward
// through autograd. Bytes: 4 arrays x 4 B x n (the workload's unit, for both rows).
// dsm fwd: the expression assigned into a preallocated y (one pass).
// dsm fwd_bwd: a, b, c are Vars requiring gradients; y = relu(a * b + c) is one fused node and
//   y.backward(g) writes da, db, dc in one pass (11 arrays of traffic in all).
// limit: the same computation hand-written as OpenMP SIMD loops (fwd_bwd: a forward loop and a
//   backward loop reading g, a, b, c and writing the three gradients).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

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

void W2_fwd_bwd_dsm(benchmark::State& state) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  auto& in = inputs();
  dsm::Var<float> a(in.a, true), b(in.b, true), c(in.c, true);
  const auto g = dsm::Tensor<float>::ones({n});
  for (auto _ : state) {
    a.zero_grad(), b.zero_grad(), c.zero_grad();
    dsm::Var<float> y = dsm::relu(a * b + c);
    y.backward(g);
    benchmark::DoNotOptimize(c.grad().data());
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_bwd_dsm)->Name("W2/fwd_bwd/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W2_fwd_bwd_limit(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  auto& in = inputs();
  static std::vector<float> g(n, 1.f), ga(n), gb(n), gc(n);
  const float *pa = in.a.data(), *pb = in.b.data(), *pc = in.c.data(), *pg = g.data();
  float *py = in.y.data(), *qa = ga.data(), *qb = gb.data(), *qc = gc.data();
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
#pragma omp for simd schedule(static)
      for (std::int64_t i = 0; i < n; ++i) {
        const float v = pa[i] * pb[i] + pc[i];
        py[i] = v > 0.f ? v : 0.f;
      }
#pragma omp for simd schedule(static)
      for (std::int64_t i = 0; i < n; ++i) {
        const float d = pa[i] * pb[i] + pc[i] > 0.f ? pg[i] : 0.f;
        qa[i] = d * pb[i];
        qb[i] = d * pa[i];
        qc[i] = d;
      }
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 4 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W2_fwd_bwd_limit)->Name("W2/fwd_bwd/limit")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
