// examples/fused_elementwise.cpp: expression templates evaluate a whole elementwise tree in one
// pass over memory (see docs/expressions.md). Times y = relu(a * b + c) against the unfused form.
#include <dsm/dsm.hpp>

#include <chrono>
#include <iostream>

int main() {
  using dsm::Tensor;
  const std::int64_t n = 1 << 24;  // 16 Mi floats, the W2 workload
  dsm::Generator gen{0};
  auto a = Tensor<float>::randn({n}, gen), b = Tensor<float>::randn({n}, gen), c = Tensor<float>::randn({n}, gen);
  Tensor<float> y({n});

  auto seconds = [](auto&& f) {
    f();  // warm up
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 5;
  };
  // One fused pass: reads a, b, c once and writes y once.
  const double fused = seconds([&] { y = dsm::relu(a * b + c); });
  // The unfused form a framework without fusion runs: three passes and two temporaries.
  const double unfused = seconds([&] {
    Tensor<float> t1 = a * b;
    Tensor<float> t2 = t1 + c;
    y = dsm::relu(t2);
  });
  const double bytes = 4.0 * 4.0 * static_cast<double>(n);
  std::cout << "y = relu(a * b + c) over " << n << " floats, " << dsm::get_num_threads() << " threads\n";
  std::cout << "  fused:   " << fused * 1e3 << " ms, " << bytes / fused / 1e9 << " GB/s\n";
  std::cout << "  unfused: " << unfused * 1e3 << " ms (" << unfused / fused << "x slower)\n";
  std::cout << "y[:5] = " << y.narrow(0, 0, 5) << "\n";

  // Broadcasting, where, casts and compound assignment work the same way.
  auto bias = Tensor<float>::from({0.5f, -0.5f});
  auto m = Tensor<float>::randn({3, 2}, gen);
  Tensor<float> z = dsm::where(m > 0.f, m + bias, 0.1f * m);
  z *= 2.f;
  std::cout << "z = " << z << "\n";
  return 0;
}
