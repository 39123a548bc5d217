// dsm/optim/schedule.hpp: learning-rate schedules as functions of the step number, and a helper
// that applies one to an optimizer before each step.
//
//   dsm::optim::CosineWarmup sched{.base_lr = 3e-4, .min_lr = 3e-5, .warmup_steps = 100, .total_steps = 5000};
//   opt.set_lr(sched(opt.steps()));   // before opt.step()
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include "../core/error.hpp"

namespace dsm::optim {

/// The same rate at every step.
struct Constant {
  double lr = 1e-3;
  double operator()(std::int64_t) const { return lr; }
};

/// lr * gamma^(floor(step / step_size)) (torch.optim.lr_scheduler.StepLR).
struct StepDecay {
  double base_lr = 1e-3;
  std::int64_t step_size = 1000;
  double gamma = 0.1;
  double operator()(std::int64_t step) const {
    if (step_size <= 0) fail<config_error>("StepDecay", "step_size must be positive, got ", step_size);
    return base_lr * std::pow(gamma, static_cast<double>(step / step_size));
  }
};

/// Linear warm-up from 0 to base_lr over warmup_steps, then a cosine decay to min_lr at total_steps
/// (held at min_lr afterwards). At step s < warmup: base_lr * (s + 1) / warmup.
struct CosineWarmup {
  double base_lr = 1e-3;
  double min_lr = 0;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  double operator()(std::int64_t step) const {
    if (total_steps <= warmup_steps || warmup_steps < 0)
      fail<config_error>("CosineWarmup", "total_steps (", total_steps, ") must exceed warmup_steps (", warmup_steps, ")");
    if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    if (step >= total_steps) return min_lr;
    const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + std::cos(std::numbers::pi * progress));
  }
};

}  // namespace dsm::optim
