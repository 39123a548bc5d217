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

TEST_CASE("Var: a value read by several linear layers and norms gets their gradients added where they are computed") {
  // x feeds three projections, an RMSNorm and a residual term: after the first gradient, linear's
  // dx product and the norm's row kernel add into x's pending gradient (beta = 1) instead of
  // handing over a tensor to add. The sum must equal the consumers' gradients taken one by one,
  // for a leaf accumulating over two backward calls too, in float and double.
  auto run = [](auto zero) {
    using T = decltype(zero);
    dsm::Generator gen(31);
    const Var<T> x(Tensor<T>::randn({2, 5, 8}, gen), true);
    const Var<T> wq(Tensor<T>::randn({6, 8}, gen)), wk(Tensor<T>::randn({3, 8}, gen)), wv(Tensor<T>::randn({3, 8}, gen)), wn(Tensor<T>::randn({8}, gen));
    const Tensor<T> rq = Tensor<T>::randn({2, 5, 6}, gen), rk = Tensor<T>::randn({2, 5, 3}, gen), rv = Tensor<T>::randn({2, 5, 3}, gen);
    const Tensor<T> rn = Tensor<T>::randn({2, 5, 8}, gen), rx = Tensor<T>::randn({2, 5, 8}, gen);
    auto term = [&](int which, const Var<T>& in) -> Var<T> {
      switch (which) {
        case 0: return dsm::sum(Var<T>(dsm::linear(in, wq) * rq));
        case 1: return dsm::sum(Var<T>(dsm::linear(in, wk) * rk));
        case 2: return dsm::sum(Var<T>(dsm::linear(in, wv) * rv));
        case 3: return dsm::sum(Var<T>(dsm::nn::functional::rms_norm(in, wn) * rn));
        default: return dsm::sum(Var<T>(in * rx));
      }
    };
    std::vector<double> want(static_cast<std::size_t>(x.numel()), 0.0);
    for (int which = 0; which < 5; ++which) {  // each consumer alone
      const Var<T> xi(x.value().clone(), true);
      term(which, xi).backward();
      for (std::int64_t i = 0; i < x.numel(); ++i) want[static_cast<std::size_t>(i)] += static_cast<double>(xi.grad().data()[i]);
    }
    // The residual term first (its gradient is the first x receives), then the rest; twice.
    for (int pass = 1; pass <= 2; ++pass) {
      Var<T> total = term(4, x);
      for (int which = 0; which < 4; ++which) total = Var<T>(total + term(which, x));
      total.backward();
      for (std::int64_t i = 0; i < x.numel(); ++i)
        CHECK(static_cast<double>(x.grad().data()[i]) == doctest::Approx(pass * want[static_cast<std::size_t>(i)]).epsilon(1e-5));
    }
  };
  run(0.0f);
  run(0.0);
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

TEST_CASE("Var: no_grad records nothing, detach cuts the graph, enable_grad nests") {
  Var<float> x(Tensor<float>::from({1.f, 2.f}), true);
  {
    dsm::no_grad guard;
    Var<float> y = x * 2.f;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    {
      dsm::enable_grad again;
      Var<float> z = x * 3.f;
      CHECK(z.requires_grad());
    }
    CHECK_FALSE(dsm::is_grad_enabled());
  }
  CHECK(dsm::is_grad_enabled());
  Var<float> d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.value().data() == x.value().data());  // shares the value
  Var<float> y = d * x;
  dsm::sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{1.f, 2.f});  // d is a constant
}

TEST_CASE("Var: explicit upstream gradient, retain_grad, accumulation across backward calls, zero_grad") {
  Var<double> x(Tensor<double>::from({1.0, 2.0, 3.0}), true);
  Var<double> h = x * x;
  h.retain_grad();
  Var<double> y = h * 2.0;
  y.backward(Tensor<double>::from({1.0, 10.0, 100.0}));
  CHECK(h.grad().to_vector() == std::vector<double>{2.0, 20.0, 200.0});
  CHECK(x.grad().to_vector() == std::vector<double>{4.0, 80.0, 1200.0});
  Var<double> z = x * 1.0;
  dsm::sum(z).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{5.0, 81.0, 1201.0});  // accumulates
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("Var: gradients of two leaves from one node do not share storage") {
  Var<float> a(Tensor<float>::from({1.f, 2.f}), true);
  Var<float> b(Tensor<float>::from({3.f, 4.f}), true);
  Var<float> s = a + b;
  dsm::sum(s).backward();
  CHECK(a.grad().storage() != b.grad().storage());
  Tensor<float> ga = a.grad();
  ga *= 3.f;  // an in-place update of one gradient (as clipping does) leaves the other alone
  CHECK(b.grad().to_vector() == std::vector<float>{1.f, 1.f});
}

TEST_CASE("Var: the fresh gradients of a fused node and of matmul become the leaves' gradients without a copy") {
  dsm::Generator gen(5);
  Var<float> a(Tensor<float>::randn({1000}, gen), true), b(Tensor<float>::randn({1000}, gen), true), c(Tensor<float>::randn({1000}, gen), true);
  Var<float> y = dsm::relu(a * b + c);
  const auto g = Tensor<float>::ones({1000});
  const auto before = dsm::cpu::memory_stats().allocations;
  y.backward(g);
  // y's gradient (a copy of the caller's g) and one gradient per leaf, written in one pass; a
  // copy of each leaf's gradient would make 7.
  CHECK(dsm::cpu::memory_stats().allocations - before == 4);
  const auto av = a.value().to_vector(), bv = b.value().to_vector(), cv = c.value().to_vector(), dc = c.grad().to_vector();
  for (std::size_t i = 0; i < av.size(); ++i) CHECK(dc[i] == (av[i] * bv[i] + cv[i] > 0.f ? 1.f : 0.f));
  // matmul: the output's gradient, dA = G B^T and dB = A^T G (a copy of each made 5).
  Var<float> p(Tensor<float>::randn({20, 30}, gen), true), q(Tensor<float>::randn({30, 10}, gen), true);
  Var<float> z = dsm::matmul(p, q);
  const auto gz = Tensor<float>::ones({20, 10});
  const auto before_mm = dsm::cpu::memory_stats().allocations;
  z.backward(gz);
  CHECK(dsm::cpu::memory_stats().allocations - before_mm == 3);
  CHECK(q.grad().to_vector() == dsm::matmul(p.value().t(), gz).to_vector());
}

TEST_CASE("Var: error paths") {
  Var<float> x(Tensor<float>::from({1.f, 2.f}), true);
  Var<float> c(Tensor<float>::from({1.f, 2.f}));
  Var<float> y = x * 2.f;
  CHECK_THROWS_WITH_AS(y.backward(), "backward: a gradient can be created implicitly only for a single-element output; got shape [2] (pass the upstream gradient explicitly)", dsm::shape_error);
  CHECK_THROWS_WITH_AS(y.backward(Tensor<float>::ones({3})), "backward: upstream gradient of shape [3] for an output of shape [2]", dsm::shape_error);
  Var<float> k = c * 2.f;
  CHECK_THROWS_WITH_AS(dsm::sum(k).backward(), "backward: this Var does not require a gradient: no input of its computation requires one", dsm::error);
  CHECK_THROWS_WITH_AS(y.requires_grad_(false), "requires_grad_: only leaves can change requires_grad; use detach() for a non-leaf", dsm::error);
  CHECK_THROWS_WITH_AS(Var<float>().value(), "Var: the Var is undefined (default-constructed or moved from)", dsm::error);
  CHECK_THROWS_WITH_AS(x.set_grad(Tensor<float>::ones({3})), "set_grad: gradient of shape [3] for a value of shape [2]", dsm::shape_error);
  Var<float> m(Tensor<float>::ones({2, 3}), true);
  CHECK_THROWS_AS(dsm::matmul(m, m), dsm::shape_error);
  CHECK_THROWS_AS(m.reshape({4}), dsm::shape_error);
}

TEST_CASE("Var: a backward pass frees each node's saved tensors as it goes") {
  using dsm::cpu;
  Var<float> x(Tensor<float>::randn({1 << 16}), true);
  std::size_t after_forward = 0;
  {
    Var<float> h = x;
    for (int i = 0; i < 8; ++i) h = dsm::softmax(h * 1.5f, 0);  // each softmax saves its output
    auto loss = dsm::sum(h);
    after_forward = cpu::memory_stats().current_bytes;
    loss.backward();
    // The graph is still referenced by loss and h, but its saved tensors are gone.
    CHECK(cpu::memory_stats().current_bytes < after_forward);
  }
}
