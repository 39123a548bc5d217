// A user's program linked with dsm::precompiled: matmul, attention and the optimizer come from the
// installed library (declared extern by <dsm/dsm.hpp>), and must give the header-only results.
#include <dsm/dsm.hpp>

#include <cmath>
#include <iostream>

#if !DSM_PRECOMPILED
#error "dsm::precompiled must define DSM_PRECOMPILED for its users"
#endif

int main() {
  // d/da sum(a @ b) = ones @ b^T: a[i, j] gets the sum of row j of b.
  dsm::Var<float> a(dsm::Tensor<float>::arange(0.f, 6.f).reshape({2, 3}), true);
  dsm::Var<float> b(dsm::Tensor<float>::arange(0.f, 12.f).reshape({3, 4}), true);
  dsm::Var<float> s = dsm::sum(dsm::matmul(a, b));
  s.backward();
  const float grad_ok = a.grad().at({1, 2}) == 8.f + 9.f + 10.f + 11.f ? 1.f : 0.f;
  // The block-wise attention against the plain one, both from the library.
  const auto q = dsm::Var<float>(dsm::Tensor<float>::randn({1, 2, 40, 8}));
  const auto k = dsm::Var<float>(dsm::Tensor<float>::randn({1, 2, 40, 8}));
  const auto v = dsm::Var<float>(dsm::Tensor<float>::randn({1, 2, 40, 8}));
  const dsm::nn::functional::AttentionOptions causal{.causal = true};
  const float diff = dsm::max(dsm::abs(dsm::nn::functional::flash_attention(q, k, v, causal).value() -
                                       dsm::nn::functional::attention(q, k, v, causal).value())).item();
  std::cout << "consumer (precompiled): sum = " << s.item() << ", attention difference = " << diff << '\n';
  return s.item() == 394.f && grad_ok == 1.f && diff < 1e-5f ? 0 : 1;
}
