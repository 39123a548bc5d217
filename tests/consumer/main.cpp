// A user's program: builds a fused expression, a matmul and a reduction, and checks the result.
#include <dsm/dsm.hpp>

#include <cmath>
#include <iostream>

int main() {
  auto a = dsm::Tensor<float>::arange(0.f, 6.f).reshape({2, 3});
  dsm::Tensor<float> y = dsm::relu(a * 2.f - 3.f);       // [[0,0,1],[3,5,7]]
  const float total = dsm::sum(dsm::matmul(y, a.t())).item();  // 5 + (0+4+10) + (9+20+35)... see below
  // y @ a^T = [[0*0+0*1+1*2, 0*3+0*4+1*5], [3*0+5*1+7*2, 3*3+5*4+7*5]] = [[2, 5], [19, 64]]
  std::cout << "consumer: sum = " << total << '\n';
  return std::fabs(total - 90.f) < 1e-4f ? 0 : 1;
}
