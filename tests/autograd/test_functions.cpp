// gradcheck of every differentiable operation on Vars (central differences in double).
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/gradcheck.hpp"

using dsm::Shape;
using dsm::Tensor;
using V = dsm::Var<double>;
using Inputs = std::vector<V>;

namespace {
constexpr auto randn = dsm_test::grad_randn;
/// Values away from 0 (for log, sqrt, division) and from ties (for max, relu kinks).
V positive(const Shape& s, std::uint64_t seed) {
  dsm::Generator gen(seed);
  return V(Tensor<double>(Tensor<double>::rand(s, gen) + 0.5), true);
}
}  // namespace

TEST_CASE("gradcheck: unary functions in fused nodes") {
  auto x = randn({3, 4}, 1), p = positive({3, 4}, 2);
  DSM_GRADCHECK([](const Inputs& in) { return V(exp(in[0]) + tanh(in[0]) * sigmoid(in[0])); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return V(silu(in[0]) - gelu(in[0]) + gelu_tanh(in[0])); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return V(softplus(in[0]) + leaky_relu(in[0], 0.2) + square(in[0]) - in[0]); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return V(log(in[0]) + sqrt(in[0]) + rsqrt(in[0]) + reciprocal(in[0])); }, p);
  DSM_GRADCHECK([](const Inputs& in) { return V(log1p(in[0]) + expm1(in[0]) + abs(in[0] - 1.0) + clamp(in[0], 0.7, 1.2)); }, p);
  DSM_GRADCHECK([](const Inputs& in) { return V(relu(in[0]) * 3.0); }, x);
}

TEST_CASE("gradcheck: binary functions, broadcasting and where") {
  auto a = randn({2, 3, 4}, 3), b = randn({3, 1}, 4), p = positive({4}, 5);
  DSM_GRADCHECK([](const Inputs& in) { return V(in[0] * in[1] + in[0] / (in[2] + 1.0) - in[1]); }, a, b, p);
  DSM_GRADCHECK([](const Inputs& in) { return V(pow(in[2], in[0]) + maximum(in[0], in[1]) + minimum(in[1], in[0])); }, a, b, p);
  DSM_GRADCHECK([](const Inputs& in) { return V(where(in[0] > 0.0, in[0] * in[1], in[1] - 2.0)); }, a, b);
  DSM_GRADCHECK([](const Inputs& in) { return V(2.0 / in[0] + 1.0 - in[0]); }, p);
}

TEST_CASE("gradcheck: casts inside a fused node reach leaves of another type") {
  dsm::Generator gen(6);
  dsm::Var<float> xf(Tensor<float>::randn({5}, gen), true);
  V xd = randn({5}, 7);
  V y = xd * dsm::cast<double>(xf * 2.f);
  dsm::sum(y).backward();
  for (int i = 0; i < 5; ++i) CHECK(xf.grad()(i) == doctest::Approx(2.0 * xd.value()(i)).epsilon(1e-6));
}

TEST_CASE("gradcheck: matmul, bmm and linear") {
  DSM_GRADCHECK([](const Inputs& in) { return dsm::matmul(in[0], in[1]); }, randn({3, 4}, 1), randn({4, 5}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::matmul(in[0], in[1]); }, randn({4}, 1), randn({4}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::matmul(in[0], in[1]); }, randn({3, 4}, 1), randn({4}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::matmul(in[0], in[1]); }, randn({4}, 1), randn({2, 4, 3}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::matmul(in[0], in[1]); }, randn({2, 1, 3, 4}, 1), randn({3, 4, 2}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::matmul(in[0], in[1].t()); }, randn({3, 4}, 1), randn({5, 4}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::bmm(in[0], in[1]); }, randn({2, 3, 4}, 1), randn({2, 4, 5}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::linear(in[0], in[1], in[2]); }, randn({2, 3, 4}, 1), randn({5, 4}, 2), randn({5}, 3));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::linear(in[0], in[1]); }, randn({4}, 1), randn({5, 4}, 2));
}

TEST_CASE("gradcheck: reductions") {
  auto x = randn({3, 4, 5}, 11);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::sum(in[0]); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::sum(in[0], {0, 2}); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::sum(in[0] * in[0], 1, true); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::mean(in[0], {1}); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::mean(in[0]); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::max(in[0], 2); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::min(in[0], {0, 1}, true); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::max(in[0]); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::logsumexp(in[0], -1); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::var(in[0], Shape{1}); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::var(in[0], Shape{0, 2}, true, 0); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::std_dev(in[0], Shape{2}); }, x);
}

TEST_CASE("max gives tied maxima equal shares of the gradient") {
  dsm::Var<float> x(Tensor<float>::from({1.f, 3.f, 3.f, 2.f}), true);
  dsm::max(x).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{0.f, 0.5f, 0.5f, 0.f});
}

TEST_CASE("std_dev of equal values has a zero gradient, as in PyTorch, not 0 / 0") {
  // Row 0 holds equal values (std 0, a kink of sqrt); row 1 does not and keeps its gradient.
  dsm::Var<float> x(Tensor<float>::from_range(std::vector<float>{0.5f, 0.5f, 0.5f, 1.f, 2.f, 4.f}, {2, 3}), true);
  dsm::sum(dsm::std_dev(x, Shape{1})).backward();
  const auto g = x.grad().to_vector();
  CHECK(g[0] == 0.f);
  CHECK(g[1] == 0.f);
  CHECK(g[2] == 0.f);
  // d std / d x_i = (x_i - mean) / ((n - 1) std): mean 7/3, std sqrt(7/3).
  const double sd = std::sqrt(7.0 / 3.0);
  CHECK(g[3] == doctest::Approx((1.0 - 7.0 / 3.0) / (2.0 * sd)));
  CHECK(g[5] == doctest::Approx((4.0 - 7.0 / 3.0) / (2.0 * sd)));
}

TEST_CASE("gradcheck: softmax and log_softmax along every dimension") {
  auto x = randn({3, 4, 2}, 12);
  for (int d = 0; d < 3; ++d) {
    DSM_GRADCHECK([d](const Inputs& in) { return dsm::softmax(in[0], d); }, x);
    DSM_GRADCHECK([d](const Inputs& in) { return dsm::log_softmax(in[0] * 2.0, d); }, x);
  }
}

TEST_CASE("gradcheck: gather, scatter_add, index_select, index_add, embedding, masked_fill") {
  const auto idx = Tensor<std::int64_t>::from({{0, 2, 1}, {2, 2, 0}});
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::gather(in[0], 1, idx); }, randn({2, 3}, 1));
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::scatter_add(in[0], 1, idx, in[1]); }, randn({2, 4}, 1), randn({2, 3}, 2));
  const auto rows = Tensor<std::int64_t>::from({3, 0, 3, 1});
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::index_select(in[0], 0, rows); }, randn({4, 3}, 3));
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::index_select(in[0], 1, rows.narrow(0, 1, 3)); }, randn({2, 4}, 3));
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::index_add(in[0], 0, rows, in[1], 0.5); }, randn({4, 3}, 4), randn({4, 3}, 5));
  const auto ids = Tensor<std::int64_t>::from({{1, 4}, {4, 0}});
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::embedding(in[0], ids); }, randn({5, 3}, 6));
  const auto mask = Tensor<bool>::from({true, false, true});
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::masked_fill(in[0], mask, -5.0); }, randn({2, 3}, 7));
}

TEST_CASE("gradcheck: cat, stack, split, chunk") {
  DSM_GRADCHECK([](const Inputs& in) { return dsm::cat({in[0], V(in[1] * 2.0)}, 1); }, randn({2, 3}, 1), randn({2, 1}, 2));
  DSM_GRADCHECK([](const Inputs& in) { return dsm::stack({in[0], in[1]}, 2); }, randn({2, 3}, 1), randn({2, 3}, 2));
  DSM_GRADCHECK([](const Inputs& in) {
    auto parts = dsm::split(in[0], 2, 1);  // sizes 2, 2, 1
    return V(parts[0] * parts[1] + parts[2]);
  }, randn({3, 5}, 3));
  DSM_GRADCHECK([](const Inputs& in) {
    auto parts = dsm::chunk(in[0], 3, 0);
    return dsm::cat({parts[2], parts[0]}, 0);  // parts[1] unused: no gradient flows there
  }, randn({6, 2}, 4));
}

TEST_CASE("gradcheck: views") {
  auto x = randn({2, 3, 4}, 21);
  DSM_GRADCHECK([](const Inputs& in) { return V(in[0].reshape({6, 4}) * 1.0); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].view({4, 6}).flatten(); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].transpose(0, 2).contiguous(); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return V(in[0].permute({2, 0, 1}) * 2.0); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].narrow(1, 1, 2); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].slice(2, 0, 4, 2); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].select(0, 1); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].unsqueeze(1).expand({2, 5, 3, 4}); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].narrow(0, 0, 1).squeeze(0); }, x);
  DSM_GRADCHECK([](const Inputs& in) { return in[0].narrow(-1, -2, 2); }, x);  // the last two of dimension 2
}

TEST_CASE("narrow's gradient is exactly zero outside the range, whatever its memory held before") {
  for (int round = 0; round < 3; ++round) {
    { const Tensor<double> dirty = Tensor<double>::full({5, 4}, 7.0); }  // freed blocks that a gradient may reuse
    V x(Tensor<double>::full({5, 4}, 1.0), true);
    sum(x.narrow(0, 1 + round, 2) * 3.0).backward();
    const Tensor<double> g = x.grad();
    for (std::int64_t i = 0; i < 5; ++i)
      for (std::int64_t j = 0; j < 4; ++j) CHECK(g.at({i, j}) == (i >= 1 + round && i < 3 + round ? 3.0 : 0.0));
  }
}

TEST_CASE("gradcheck: topk and sort values, whose indices are plain tensors") {
  auto x = randn({3, 6}, 31);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::topk(in[0], 2, 1).values; }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::topk(in[0], 1, 0, false).values; }, x);
  DSM_GRADCHECK([](const Inputs& in) { return dsm::sort(in[0], 1, true).values; }, x);
  dsm::Var<float> s(Tensor<float>::from({0.1f, 0.7f, 0.2f}), true);
  auto [w, idx] = dsm::topk(s, 2);
  CHECK(idx.to_vector() == std::vector<std::int64_t>{1, 2});
  dsm::sum(V(dsm::cast<double>(w) * 1.0)).backward();
  CHECK(s.grad().to_vector() == std::vector<float>{0.f, 1.f, 1.f});
}
