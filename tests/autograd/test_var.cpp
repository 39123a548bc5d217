// Tests of dsm/autograd: Var, the engine, fused nodes.
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Tensor;
using dsm::Var;

TEST_CASE("Var: a fused expression is one node with the chain-rule gradient") {
  Var<float> a(Tensor<float>::from({1.f, -2.f, 3.f}), true);
  Var<float> b(Tensor<float>::from({4.f, 5.f, -6.f}), true);
  Var<float> c(Tensor<float>::from({0.5f, 20.f, 1.f}), true);
  Var<float> y = relu(a * b + c);  // [4.5, 10, 0]
  CHECK(std::string(y.grad_fn_name()) == "fused elementwise");
  CHECK(y.value().to_vector() == std::vector<float>{4.5f, 10.f, 0.f});
  auto loss = dsm::sum(y);
  loss.backward();
  CHECK(a.grad().to_vector() == std::vector<float>{4.f, 5.f, 0.f});
  CHECK(b.grad().to_vector() == std::vector<float>{1.f, -2.f, 0.f});
  CHECK(c.grad().to_vector() == std::vector<float>{1.f, 1.f, 0.f});
}

TEST_CASE("Var: broadcast inputs get gradients summed over the broadcast dimensions") {
  Var<float> x(Tensor<float>::from({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}), true);
  Var<float> bias(Tensor<float>::from({10.f, 20.f, 30.f}), true);
  Var<float> y = x * bias;
  dsm::sum(y).backward();
  CHECK(bias.grad().to_vector() == std::vector<float>{5.f, 7.f, 9.f});
  CHECK(x.grad().to_vector() == std::vector<float>{10.f, 20.f, 30.f, 10.f, 20.f, 30.f});
}

TEST_CASE("Var: reused values accumulate, backward twice needs retain_graph") {
  Var<double> x(Tensor<double>::from({3.0}), true);
  Var<double> y = x * x;       // 2x
  Var<double> z = y * x + y;   // x^3 + x^2 -> 3x^2 + 2x = 33
  auto s = dsm::sum(z);
  s.backward(true);
  CHECK(x.grad().item() == doctest::Approx(33.0));
  s.backward();
  CHECK(x.grad().item() == doctest::Approx(66.0));
  CHECK_THROWS_WITH_AS(s.backward(), doctest::Contains("already freed"), dsm::error);
}

TEST_CASE("Var: a chain of 100000 nodes runs forward, backward and destruction without recursion") {
  Var<float> x0(Tensor<float>::ones({16}), true);
  {
    Var<float> x = x0;
    for (int i = 0; i < 100000; ++i) x = x * 1.0001f + 0.0001f;
    dsm::sum(x).backward();
  }
  // d/dx0 of x_n = m^n with m the float nearest 1.0001
  CHECK(x0.grad()(0) == doctest::Approx(std::pow(static_cast<double>(1.0001f), 100000)).epsilon(1e-3));
}
