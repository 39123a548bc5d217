// examples/tensor_basics.cpp: tensors, views, random numbers, ops (see docs/tensor.md).
#include <dsm/dsm.hpp>

#include <iostream>

int main() {
  using dsm::Tensor;

  // Factories and views: a view shares storage, contiguous() copies only when it must.
  auto x = Tensor<float>::arange(0.f, 12.f).reshape({3, 4});
  std::cout << "x =\n" << x << "\n";
  auto xt = x.transpose(0, 1);  // [4, 3], no copy
  xt(0, 2) = -1.f;              // writes x(2, 0)
  std::cout << "x after writing through its transpose =\n" << x << "\n";
  std::cout << "every other column: " << x.slice(1, 0, 4, 2) << "\n";

  // Counter-based random numbers: the same seed gives the same tensor on any thread count.
  dsm::Generator gen{42};
  auto w = Tensor<float>::randn({4, 2}, gen);
  std::cout << "w = " << w << "\n";

  // Ops: matmul with a transposed view (a GEMM flag, not a copy), reductions, softmax, top-k.
  auto logits = dsm::matmul(x, w);  // [3, 2]
  std::cout << "logits = " << logits << "\n";
  std::cout << "softmax = " << dsm::softmax(logits, -1) << "\n";
  auto [vals, idx] = dsm::topk(x, 2);
  std::cout << "top-2 per row: " << vals << " at " << idx << "\n";
  std::cout << "row means = " << dsm::mean(x, {1}) << "\n";

  // Mixed precision storage: bf16 rounds to nearest even.
  auto h = x.to<dsm::bf16>();
  std::cout << "as bf16: " << h << "\n";

  // Errors name the op and the values.
  try {
    auto bad = dsm::matmul(x, x);
    (void)bad;
  } catch (const dsm::shape_error& e) {
    std::cout << "caught: " << e.what() << "\n";
  }
  return 0;
}
