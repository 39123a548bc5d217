// Training with dsm::optim: an MLP learns to classify points of two interleaved spirals, with
// AdamW, a cosine schedule with warm-up and gradient clipping. Built and run in CI;
// docs/optim.md walks through it.
#include <cmath>
#include <cstdio>
#include <numbers>

#include <dsm/dsm.hpp>

namespace nn = dsm::nn;

int main() {
  // Data: 2 spirals of 200 points each, labels 0 and 1.
  const std::int64_t n = 400;
  dsm::Tensor<float> x({n, 2});
  dsm::Tensor<std::int64_t> y({n});
  dsm::Generator gen(1);
  const auto noise = dsm::Tensor<float>::randn({n, 2}, gen);
  for (std::int64_t i = 0; i < n; ++i) {
    const double t = 0.25 + 3.0 * static_cast<double>(i / 2) / static_cast<double>(n / 2), sign = i % 2 ? -1.0 : 1.0;
    x(i, 0) = static_cast<float>(sign * t * std::cos(2.5 * t) + 0.05 * noise(i, 0));
    x(i, 1) = static_cast<float>(sign * t * std::sin(2.5 * t) + 0.05 * noise(i, 1));
    y(i) = i % 2;
  }

  nn::Sequential<nn::Linear<{.in_features = 2, .out_features = 64}>, nn::SiLU, nn::Linear<{.in_features = 64, .out_features = 64}>, nn::SiLU,
                 nn::Linear<{.in_features = 64, .out_features = 2}>>
      net;
  dsm::optim::AdamW opt(net.named_parameters(), {.lr = 1e-2, .weight_decay = 1e-4});
  const dsm::optim::CosineWarmup schedule{.base_lr = 1e-2, .min_lr = 1e-4, .warmup_steps = 20, .total_steps = 600};

  const dsm::Var<float> inputs(x);
  for (std::int64_t step = 0; step < 600; ++step) {
    opt.set_lr(schedule(step));
    opt.zero_grad();
    auto loss = nn::functional::cross_entropy(net(inputs), y);
    loss.backward();
    const double norm = dsm::optim::clip_grad_norm(net.parameters(), 1.0);
    opt.step();
    if (step % 100 == 0 || step == 599) std::printf("step %3lld  loss %.4f  grad norm %.3f  lr %.5f\n", static_cast<long long>(step), loss.item(), norm, opt.lr());
  }
  dsm::no_grad guard;
  const auto predicted = dsm::argmax(net(inputs).value(), 1);
  double correct = 0;
  for (std::int64_t i = 0; i < n; ++i) correct += predicted(i) == y(i);
  std::printf("training accuracy %.1f%%\n", 100.0 * correct / static_cast<double>(n));
  return correct / static_cast<double>(n) > 0.95 ? 0 : 1;
}
