// Compile-time probe (W8's first half): a translation unit that includes the umbrella header and
// instantiates the everyday paths (expression evaluation, matmul, reductions, softmax, top-k).
#include <dsm/dsm.hpp>

int main() {
  auto a = dsm::Tensor<float>::randn({8, 8});
  dsm::Tensor<float> y = dsm::relu(a * 2.f + 1.f);
  auto p = dsm::softmax(dsm::matmul(y, a), -1);
  auto [v, i] = dsm::topk(p, 2);
  return dsm::sum(v).item() > 0.f && i.numel() == 16 ? 0 : 1;
}
