// Tests of checkpoint(): gradients bit-identical to the plain call (with dropout drawing from
// several generators), several inputs and outputs, parameters captured by the function, nesting,
// autocast mode kept, memory actually freed, errors.
#include <doctest/doctest.h>

#include <vector>

#include <dsm/dsm.hpp>

#include "support/gradcheck.hpp"

using dsm::Tensor;
using dsm::Var;

namespace {
/// A two-layer MLP block with dropout from its own generator and noise from a second one.
struct Block {
  Var<float> w1, w2;
  dsm::Generator drop_gen{11}, noise_gen{12};
  double p = 0.3;
  explicit Block(dsm::Generator& init, double drop = 0.3) : p(drop) {
    w1 = Var<float>(Tensor<float>(Tensor<float>::randn({16, 16}, init) * 0.3f), true);
    w2 = Var<float>(Tensor<float>(Tensor<float>::randn({16, 16}, init) * 0.3f), true);
  }
  Var<float> operator()(const Var<float>& x) {
    Var<float> h = dsm::nn::functional::dropout(Var<float>(dsm::gelu(dsm::matmul(x, w1))), p, true, drop_gen);
    const Tensor<float> noise(Tensor<float>::randn(h.shape(), noise_gen) * 0.01f);
    Var<float> hn = Var<float>(h + noise);
    return Var<float>(x + dsm::matmul(hn, w2));
  }
};

struct Grads {
  std::vector<float> x, w1, w2;
  double loss = 0;
};

/// Runs three blocks in a row (optionally checkpointed), then a loss; returns every gradient.
Grads run_chain(bool checkpointed, double p = 0.3) {
  dsm::Generator init(3);
  std::vector<Block> blocks;
  for (int i = 0; i < 3; ++i) blocks.emplace_back(init, p);
  Var<float> x0(Tensor<float>::randn({8, 16}, init), true);
  Var<float> x = x0;
  for (auto& b : blocks) x = checkpointed ? dsm::checkpoint([&b](const Var<float>& in) { return b(in); }, x) : b(x);
  Var<float> loss = dsm::sum(Var<float>(x * x));
  loss.backward();
  Grads g;
  g.loss = loss.item();
  g.x = x0.grad().to_vector();
  for (auto& b : blocks) {
    for (float v : b.w1.grad().to_vector()) g.w1.push_back(v);
    for (float v : b.w2.grad().to_vector()) g.w2.push_back(v);
  }
  return g;
}
}  // namespace

TEST_CASE("checkpoint: gradients are bit-identical to the plain call, with dropout and noise from two generators") {
  const Grads plain = run_chain(false), ckpt = run_chain(true);
  CHECK(plain.loss == ckpt.loss);
  REQUIRE(plain.x.size() == ckpt.x.size());
  CHECK(plain.x == ckpt.x);
  CHECK(plain.w1 == ckpt.w1);
  CHECK(plain.w2 == ckpt.w2);
  // Dropout really was on (bit-identity without it would not show the generators rewound).
  CHECK(run_chain(false, 0.0).loss != plain.loss);
}

TEST_CASE("checkpoint gradcheck: two inputs, a captured parameter, two outputs, nesting") {
  const auto a = dsm_test::grad_randn({3, 4}, 1), b = dsm_test::grad_randn({4, 2}, 2), w = dsm_test::grad_randn({2, 2}, 3);
  auto loss = [](const dsm_test::GradInputs& in) {
    const Var<double>& w = in[2];
    auto f = [&w](const Var<double>& x, const Var<double>& y) {
      Var<double> h = dsm::checkpoint([&w](const Var<double>& p) { return Var<double>(dsm::tanh(dsm::matmul(p, w))); }, dsm::matmul(x, y));
      return std::vector<Var<double>>{h, dsm::sum(Var<double>(h * h))};
    };
    std::vector<Var<double>> out = dsm::checkpoint(f, in[0], in[1]);
    return Var<double>(dsm::sum(Var<double>(out[0] * 0.5)) + out[1]);
  };
  DSM_GRADCHECK(loss, a, b, w);
}

TEST_CASE("checkpoint: the generators continue as if the function ran once, and checkpoint_recomputing() tells the runs apart") {
  dsm::Generator init(3);
  Block a(init);
  Var<float> x(Tensor<float>::randn({4, 16}, init), true);
  std::vector<bool> recomputing;  // checkpoint_recomputing() as seen by each run of the function
  Var<float> y = dsm::checkpoint(
      [&](const Var<float>& in) {
        recomputing.push_back(dsm::checkpoint_recomputing());
        return a(in);
      },
      x);
  const auto drop_after_forward = a.drop_gen.state().offset, noise_after_forward = a.noise_gen.state().offset;
  dsm::sum(y).backward();  // recomputes: rewinds and restores both generators
  CHECK(recomputing == std::vector<bool>{false, true});
  CHECK_FALSE(dsm::checkpoint_recomputing());
  CHECK(a.drop_gen.state().offset == drop_after_forward);
  CHECK(a.noise_gen.state().offset == noise_after_forward);
  CHECK(drop_after_forward > 0);
}

TEST_CASE("checkpoint: several inputs and outputs, an input without gradient, nesting") {
  dsm::Generator gen(5);
  Var<float> w(Tensor<float>::randn({6, 6}, gen), true);
  Var<float> a(Tensor<float>::randn({3, 6}, gen), true);
  Var<float> b(Tensor<float>::randn({3, 6}, gen), false);
  auto inner = [&w](const Var<float>& u) { return Var<float>(dsm::tanh(dsm::matmul(u, w))); };
  auto f = [&](const Var<float>& u, const Var<float>& v) {
    Var<float> s = dsm::checkpoint(inner, Var<float>(u + v));  // nested
    return std::vector<Var<float>>{s, dsm::sum(Var<float>(s * u))};
  };
  auto run = [&](bool ck) {
    a.zero_grad();
    w.zero_grad();
    std::vector<Var<float>> out = ck ? dsm::checkpoint(f, a, b) : f(a, b);
    REQUIRE(out.size() == 2);
    CHECK(out[0].shape() == dsm::Shape{3, 6});
    CHECK(out[1].shape() == dsm::Shape{});
    Var<float> loss = Var<float>(dsm::sum(Var<float>(out[0] * out[0])) + out[1] * 3.f);
    loss.backward();
    return std::make_pair(a.grad().to_vector(), w.grad().to_vector());
  };
  const auto plain = run(false), ck = run(true);
  // s feeds both outputs and u two places, so the gradient contributions reaching them are summed
  // in another order than in the plain graph: equal to rounding, not bit for bit.
  REQUIRE(plain.first.size() == ck.first.size());
  for (std::size_t i = 0; i < plain.first.size(); ++i) CHECK(ck.first[i] == doctest::Approx(plain.first[i]).epsilon(1e-5));
  for (std::size_t i = 0; i < plain.second.size(); ++i) CHECK(ck.second[i] == doctest::Approx(plain.second[i]).epsilon(1e-5));
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("checkpoint: parameters get gradients even when no input requires one") {
  dsm::Generator gen(6);
  Var<float> w(Tensor<float>::randn({4, 4}, gen), true);
  Var<float> x(Tensor<float>::randn({2, 4}, gen), false);
  Var<float> y = dsm::checkpoint([&w](const Var<float>& in) { return dsm::matmul(in, w); }, x);
  CHECK(y.requires_grad());
  dsm::sum(y).backward();
  REQUIRE(w.grad().defined());
  // d sum(x w) / d w[i, j] = sum over rows of x[:, i].
  const auto xv = x.value().to_vector(), gw = w.grad().to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) CHECK(gw[i * 4 + j] == doctest::Approx(xv[i] + xv[4 + i]).epsilon(1e-6));
  // Nothing requires a gradient at all: a plain value, no node.
  Var<float> c(Tensor<float>::ones({4, 4}));
  Var<float> z = dsm::checkpoint([&c](const Var<float>& in) { return dsm::matmul(in, c); }, x);
  CHECK_FALSE(z.requires_grad());
}

TEST_CASE("checkpoint: the activations inside the function are freed until backward") {
  dsm::Generator gen(7);
  Var<float> w(Tensor<float>(Tensor<float>::randn({128, 128}, gen) * 0.08f), true);
  auto heavy = [&w](const Var<float>& in) {
    Var<float> h = in;
    for (int i = 0; i < 8; ++i) h = Var<float>(dsm::tanh(dsm::matmul(h, w)));  // 8 saved activations
    return h;
  };
  auto peak_of = [&](bool ck) {
    Var<float> x(Tensor<float>::randn({256, 128}, gen), true);
    dsm::cpu::empty_cache();
    dsm::cpu::reset_peak_memory();
    const std::size_t base = dsm::cpu::memory_stats().current_bytes;
    Var<float> y = ck ? dsm::checkpoint(heavy, x) : heavy(x);
    const std::size_t held = dsm::cpu::memory_stats().current_bytes - base;
    dsm::sum(y).backward();
    return held;
  };
  const std::size_t plain = peak_of(false), ck = peak_of(true);
  MESSAGE("bytes held after forward: plain " << plain << ", checkpointed " << ck);
  const std::size_t activation = 256 * 128 * sizeof(float);
  CHECK(plain >= 8 * activation);
  CHECK(ck <= 2 * activation);
}

TEST_CASE("checkpoint: the recomputation runs in the forward's autocast mode") {
  dsm::Generator gen(8);
  Var<float> w(Tensor<float>::randn({32, 32}, gen), true);
  Var<float> x(Tensor<float>::randn({8, 32}, gen), true);
  auto f = [&w](const Var<float>& in) { return Var<float>(dsm::tanh(dsm::matmul(in, w))); };
  auto grads = [&](bool ck) {
    w.zero_grad();
    Var<float> y;
    {
      dsm::amp::autocast ac(dsm::amp::Precision::bf16);
      y = ck ? dsm::checkpoint(f, x) : f(x);
    }
    dsm::sum(y).backward();  // outside the scope
    return w.grad().to_vector();
  };
  CHECK(grads(false) == grads(true));
}

TEST_CASE("checkpoint: a function that is not deterministic in shape is reported") {
  Var<float> x(Tensor<float>::ones({2, 2}), true);
  int calls = 0;
  auto f = [&calls](const Var<float>& in) { return ++calls == 1 ? Var<float>(in * 2.f) : Var<float>(in.reshape({4}) * 2.f); };
  Var<float> y = dsm::checkpoint(f, x);
  CHECK_THROWS_WITH_AS(dsm::sum(y).backward(), doctest::Contains("f must compute the same thing twice"), dsm::shape_error);
  auto empty = [](const Var<float>&) { return std::vector<Var<float>>{}; };
  CHECK_THROWS_WITH_AS((void)dsm::checkpoint(empty, x), doctest::Contains("returned no outputs"), dsm::error);
}
