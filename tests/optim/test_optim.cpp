// Optimizers against torch.optim trajectories (tests/reference/gen_nn.py), schedules, clipping,
// and the optimizer's checkpoint form.
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

namespace optim = dsm::optim;
using dsm::Tensor;
using V = dsm::Var<double>;

namespace {
const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("optim.txt"); }

/// loss(p) = sum((p * a - c)^2) + sum(tanh(p)), the function of gen_nn.py.
V loss_of(const V& p) {
  const Tensor<double> a = fx().get("a"), c = fx().get("c");
  return dsm::sum(V(square(p * a - c) + tanh(p)));
}

template <class Opt>
void check_trajectory(const std::string& name, Opt make) {
  CAPTURE(name);
  V p(fx().get("p0"), true);
  auto opt = make(p);
  const Tensor<double> expected = fx().get(name);  // [20, 3, 4]
  for (int s = 0; s < 20; ++s) {
    opt.zero_grad();
    loss_of(p).backward();
    opt.step();
    const auto got = p.value().to_vector();
    const auto want = expected.select(0, s).contiguous().to_vector();
    for (std::size_t i = 0; i < got.size(); ++i)
      REQUIRE_MESSAGE(std::abs(got[i] - want[i]) <= 1e-6 * std::abs(want[i]) + 1e-12, "step " << s << " element " << i);
  }
}
}  // namespace

TEST_CASE("SGD, Adam and AdamW follow torch.optim over 20 steps to 1e-6 relative") {
  using S = optim::SGD<double>;
  check_trajectory("sgd", [](V p) { return S({p}, {.lr = 0.05}); });
  check_trajectory("sgd_momentum", [](V p) { return S({p}, {.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}); });
  check_trajectory("sgd_nesterov", [](V p) { return S({p}, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true}); });
  check_trajectory("adam", [](V p) { return optim::Adam<double>({p}, {.lr = 0.01, .weight_decay = 0.01}); });
  check_trajectory("adamw", [](V p) { return optim::AdamW<double>({p}, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}); });
  check_trajectory("adamw_amsgrad", [](V p) { return optim::AdamW<double>({p}, {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true}); });
}

TEST_CASE("float Adam and AdamW (vectorized update) follow torch.optim and do not depend on the thread count") {
  // 12 elements: one 8-wide block and a padded tail of 4.
  const auto run = [](auto make, const std::string& name) {
    CAPTURE(name);
    const Tensor<double> a = fx().get("a"), c = fx().get("c"), expected = fx().get(name);
    dsm::Var<float> p(fx().get("p0").to<float>(), true);
    auto opt = make(p);
    for (int s = 0; s < 20; ++s) {
      opt.zero_grad();
      const dsm::Var<float> pa = p * dsm::Var<float>(a.to<float>());
      dsm::sum(dsm::Var<float>(square(pa - c.to<float>()) + tanh(p))).backward();
      opt.step();
      const auto got = p.value().to_vector();
      const auto want = expected.select(0, s).contiguous().to_vector();
      for (std::size_t i = 0; i < got.size(); ++i)
        REQUIRE_MESSAGE(std::abs(got[i] - want[i]) <= 2e-5 * std::abs(want[i]) + 1e-6, "step " << s << " element " << i);
    }
  };
  run([](dsm::Var<float> p) { return optim::Adam<float>({p}, {.lr = 0.01, .weight_decay = 0.01}); }, "adam");
  run([](dsm::Var<float> p) { return optim::AdamW<float>({p}, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}); }, "adamw");

  // A parameter the update splits into thread chunks whose ends fall inside 8-wide blocks.
  const auto trained = [](int threads) {
    dsm::set_num_threads(threads);
    dsm::Generator g{5};
    dsm::Var<float> p(Tensor<float>::randn({100003}, g), true);
    optim::AdamW<float> opt({p}, {.lr = 0.01, .weight_decay = 0.1});
    for (int s = 0; s < 3; ++s) {
      opt.zero_grad();
      dsm::sum(dsm::Var<float>(square(p) * 0.5f)).backward();
      opt.step();
    }
    return p.value().to_vector();
  };
  const int saved = dsm::get_num_threads();
  const auto one = trained(1), two = trained(2);
  dsm::set_num_threads(saved);
  CHECK(one == two);
}

TEST_CASE("optimizer state round-trips: a resumed run continues the same trajectory") {
  V p(fx().get("p0"), true);
  optim::AdamW<double> opt({p}, {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
  for (int s = 0; s < 10; ++s) {
    opt.zero_grad();
    loss_of(p).backward();
    opt.step();
  }
  const auto saved_state = opt.state_dict();
  CHECK(saved_state.contains("0.exp_avg"));
  CHECK(saved_state.contains("0.max_exp_avg_sq"));
  V q(p.value().clone(), true);
  optim::AdamW<double> resumed({q}, {.lr = 0.5, .weight_decay = 0.1, .amsgrad = true});
  resumed.load_state_dict(saved_state);
  CHECK(resumed.steps() == 10);
  CHECK(resumed.lr() == 0.01);
  for (int s = 0; s < 10; ++s) {
    for (auto* o : {static_cast<optim::Optimizer<double>*>(&opt), static_cast<optim::Optimizer<double>*>(&resumed)}) o->zero_grad();
    loss_of(p).backward();
    loss_of(q).backward();
    opt.step();
    resumed.step();
  }
  CHECK(q.value().to_vector() == p.value().to_vector());  // bit-identical continuation
  const Tensor<double> expected = fx().get("adamw_amsgrad");
  CHECK(p.value()(0, 0) == doctest::Approx(expected(19, 0, 0)).epsilon(1e-9));

  dsm::nn::StateDict bad;
  bad.insert("step", Tensor<std::int64_t>::scalar(1));
  bad.insert("lr", Tensor<double>::scalar(0.1));
  bad.insert("w.exp_avg", Tensor<double>::zeros({3, 4}));
  CHECK_THROWS_WITH_AS(resumed.load_state_dict(bad), "Optimizer::load_state_dict: entry 'w.exp_avg' names no parameter of this optimizer", dsm::error);
}

TEST_CASE("optimizers skip parameters without a gradient and name parameters as the module does") {
  dsm::nn::Linear<{.in_features = 3, .out_features = 2}> lin;
  optim::SGD<float> opt(lin.named_parameters(), {.lr = 0.1, .momentum = 0.5});
  const auto bias_before = lin.bias.value().to_vector();
  dsm::Var<float> x(Tensor<float>::ones({1, 3}));
  dsm::sum(dsm::matmul(x, lin.weight.t())).backward();  // the bias gets no gradient
  opt.step();
  CHECK(lin.bias.value().to_vector() == bias_before);
  CHECK(opt.state_dict().contains("weight.momentum_buffer"));
  CHECK_FALSE(opt.state_dict().contains("bias.momentum_buffer"));
  CHECK_THROWS_AS(optim::SGD<float>(lin.named_parameters(), {.lr = 0.1, .nesterov = true}), dsm::config_error);
  CHECK_THROWS_AS(optim::AdamW<float>(lin.named_parameters(), {.beta1 = 1.0}), dsm::config_error);
  CHECK_THROWS_AS(opt.set_lr(-1), dsm::config_error);
}

TEST_CASE("clip_grad_norm equals torch.nn.utils.clip_grad_norm_") {
  V p1(Tensor<double>::zeros({3, 4}), true), p2(Tensor<double>::zeros({5}), true);
  p1.set_grad(fx().get("clip.g1").clone());
  p2.set_grad(fx().get("clip.g2").clone());
  const double norm = optim::clip_grad_norm(std::vector<V>{p1, p2}, 1.5);
  CHECK(norm == doctest::Approx(fx().get("clip.norm").item()).epsilon(1e-12));
  dsm_test::check_close(p1.grad(), fx().get("clip.c1"), 1e-12);
  dsm_test::check_close(p2.grad(), fx().get("clip.c2"), 1e-12);
  const double again = optim::clip_grad_norm(std::vector<V>{p1, p2}, 100.0);  // below the limit: unchanged
  CHECK(again == doctest::Approx(1.5).epsilon(1e-5));
  dsm_test::check_close(p1.grad(), fx().get("clip.c1"), 1e-12);
  p2.grad()(0) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(optim::clip_grad_norm(std::vector<V>{p1, p2}, 1.0, true), dsm::error);
}

TEST_CASE("schedules: constant, step decay, cosine with linear warm-up") {
  CHECK(optim::Constant{0.1}(12345) == 0.1);
  optim::StepDecay step{.base_lr = 1.0, .step_size = 10, .gamma = 0.5};
  CHECK(step(9) == 1.0);
  CHECK(step(10) == 0.5);
  CHECK(step(25) == 0.25);
  optim::CosineWarmup cos{.base_lr = 1.0, .min_lr = 0.1, .warmup_steps = 4, .total_steps = 14};
  CHECK(cos(0) == doctest::Approx(0.25));
  CHECK(cos(3) == doctest::Approx(1.0));
  CHECK(cos(4) == doctest::Approx(1.0));
  CHECK(cos(9) == doctest::Approx(0.55));  // half way: (1 + 0.1) / 2
  CHECK(cos(14) == doctest::Approx(0.1));
  CHECK(cos(100) == doctest::Approx(0.1));
  CHECK_THROWS_AS((optim::CosineWarmup{.warmup_steps = 5, .total_steps = 5})(0), dsm::config_error);
}
