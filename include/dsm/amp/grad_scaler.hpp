// dsm/amp/grad_scaler.hpp: dynamic loss scaling for f16 training, with the semantics of PyTorch's
// torch.cuda.amp.GradScaler.
//
//   dsm::amp::GradScaler scaler;                    // scale 2^16, x2 every 2000 clean steps, x0.5 on overflow
//   for (...) {
//     opt.zero_grad();
//     { dsm::amp::autocast ac(dsm::amp::Precision::f16); loss = model_loss(...); }
//     scaler.scale(loss).backward();                 // gradients are scaled by scale()
//     scaler.unscale(opt);                           // optional: before clipping
//     dsm::optim::clip_grad_norm(model.parameters(), 1.0);
//     scaler.step(opt);                              // skipped when any gradient is inf or NaN
//     scaler.update();                               // back off or grow the scale
//   }
//
// f16 has 5 exponent bits: small gradients underflow to zero unless the loss is scaled up before
// backward, and a scale too large overflows. The scaler keeps the scale as large as it can: a
// step whose gradients hold an inf or NaN is skipped (no parameter or optimizer state changes)
// and the scale multiplied by backoff_factor; after growth_interval clean steps in a row it is
// multiplied by growth_factor. bf16 has fp32's exponent range and trains without a scaler.
//
// The scale is an fp32 number and 1/scale is computed in double then rounded to fp32, as in
// PyTorch, so a dsm run and a PyTorch run follow the same sequence of scales bit for bit.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>

#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"

namespace dsm::amp {

/// Example: GradScalerOptions o; o.growth_interval = 1000; GradScaler scaler(o);
struct GradScalerOptions {
  double init_scale = 65536.0;      ///< 2^16
  double growth_factor = 2.0;       ///< > 1
  double backoff_factor = 0.5;      ///< in (0, 1)
  std::int64_t growth_interval = 2000;  ///< clean steps in a row before the scale grows
  bool enabled = true;              ///< false: every call passes through (scale() returns the loss)
};

class GradScaler {
 public:
  using Options = GradScalerOptions;

  explicit GradScaler(Options o = {}) : options_(o), scale_(static_cast<float>(o.init_scale)) {
    if (!(o.init_scale > 0) || !std::isfinite(static_cast<float>(o.init_scale)))
      fail<config_error>("GradScaler", "init_scale must be a positive finite fp32 number, got ", o.init_scale);
    if (!(o.growth_factor > 1.0)) fail<config_error>("GradScaler", "growth_factor must be > 1, got ", o.growth_factor);
    if (!(o.backoff_factor > 0.0 && o.backoff_factor < 1.0)) fail<config_error>("GradScaler", "backoff_factor must be in (0, 1), got ", o.backoff_factor);
    if (o.growth_interval < 1) fail<config_error>("GradScaler", "growth_interval must be at least 1, got ", o.growth_interval);
  }

  bool is_enabled() const { return options_.enabled; }
  /// The current scale (1 when disabled).
  double get_scale() const { return options_.enabled ? static_cast<double>(scale_) : 1.0; }
  /// Clean steps since the scale last changed.
  std::int64_t growth_tracker() const { return growth_tracker_; }

  /// loss * scale (the loss unchanged when disabled). Backward from the result gives scaled
  /// gradients; the balancing losses of MoE layers added into `loss` are scaled with it.
  template <class T, class B>
  Var<T, B> scale(const Var<T, B>& loss) const {
    if (!options_.enabled) return loss;
    return Var<T, B>(loss * static_cast<T>(scale_));
  }

  /// Divides the gradients of opt's parameters by the scale in place and records whether any is
  /// inf or NaN. At most once per optimizer between update()s, and not after step().
  template <class T, class B>
  void unscale(optim::Optimizer<T, B>& opt) {
    if (!options_.enabled) return;
    PerOptimizer& st = states_[&opt];
    if (st.stage == Stage::unscaled)
      fail<error>("GradScaler::unscale", "unscale() has already been called on this optimizer since the last update()");
    if (st.stage == Stage::stepped) fail<error>("GradScaler::unscale", "unscale() is being called after step(); call update() first");
    const float inv_scale = static_cast<float>(1.0 / static_cast<double>(scale_));
    bool found_inf = false;
    for (const auto& [name, p] : opt.params()) {
      if (!p.grad().defined()) continue;
      Tensor<T, B> g = p.grad();
      found_inf = unscale_and_check(g, static_cast<T>(inv_scale)) || found_inf;
    }
    st.found_inf = found_inf;
    st.stage = Stage::unscaled;
  }

  /// Unscales (if unscale() was not called) and runs opt.step() unless a gradient is inf or NaN.
  /// Returns whether the optimizer stepped. Once per optimizer between update()s.
  template <class T, class B>
  bool step(optim::Optimizer<T, B>& opt) {
    if (!options_.enabled) {
      opt.step();
      return true;
    }
    PerOptimizer& st = states_[&opt];
    if (st.stage == Stage::stepped) fail<error>("GradScaler::step", "step() has already been called since the last update()");
    if (st.stage == Stage::ready) unscale(opt);
    const bool skip = states_[&opt].found_inf;
    if (!skip) opt.step();
    states_[&opt].stage = Stage::stepped;
    return !skip;
  }

  /// Ends the iteration: backs the scale off if any optimizer saw an inf or NaN since the last
  /// update, else counts a clean step and grows the scale every growth_interval of them.
  void update() {
    if (!options_.enabled) return;
    if (states_.empty()) fail<error>("GradScaler::update", "no inf checks were recorded before update(): call step() (or unscale()) first");
    bool found_inf = false;
    for (const auto& [opt, st] : states_) found_inf = found_inf || st.found_inf;
    if (found_inf) {
      scale_ = static_cast<float>(static_cast<double>(scale_) * options_.backoff_factor);
      growth_tracker_ = 0;
    } else if (++growth_tracker_ == options_.growth_interval) {
      const float grown = static_cast<float>(static_cast<double>(scale_) * options_.growth_factor);
      if (std::isfinite(grown)) scale_ = grown;  // an overflowing scale stays where it was
      growth_tracker_ = 0;
    }
    states_.clear();
  }
  /// Ends the iteration with a scale of the caller's choice (the tracker is left as it is).
  void update(double new_scale) {
    if (!options_.enabled) return;
    if (!(new_scale > 0) || !std::isfinite(static_cast<float>(new_scale)))
      fail<config_error>("GradScaler::update", "new_scale must be a positive finite fp32 number, got ", new_scale);
    scale_ = static_cast<float>(new_scale);
    states_.clear();
  }

  /// PyTorch's entries: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker
  /// (empty when disabled). Saved beside the model and the optimizer in a checkpoint.
  nn::StateDict state_dict() const {
    nn::StateDict d;
    if (!options_.enabled) return d;
    d.insert("scale", Tensor<float>::scalar(scale_));
    d.insert("growth_factor", Tensor<double>::scalar(options_.growth_factor));
    d.insert("backoff_factor", Tensor<double>::scalar(options_.backoff_factor));
    d.insert("growth_interval", Tensor<std::int64_t>::scalar(options_.growth_interval));
    d.insert("_growth_tracker", Tensor<std::int64_t>::scalar(growth_tracker_));
    return d;
  }
  void load_state_dict(const nn::StateDict& d) {
    if (!options_.enabled) return;
    if (d.size() == 0) fail<error>("GradScaler::load_state_dict", "the state is empty (it was saved by a disabled scaler)");
    GradScaler loaded({.init_scale = d.at("scale").to<double>().item(),
                       .growth_factor = d.at("growth_factor").to<double>().item(),
                       .backoff_factor = d.at("backoff_factor").to<double>().item(),
                       .growth_interval = d.at("growth_interval").to<std::int64_t>().item(),
                       .enabled = true});  // validates the values
    const std::int64_t tracker = d.at("_growth_tracker").to<std::int64_t>().item();
    if (tracker < 0 || tracker >= loaded.options_.growth_interval)
      fail<error>("GradScaler::load_state_dict", "_growth_tracker ", tracker, " is outside [0, growth_interval = ", loaded.options_.growth_interval, ")");
    options_ = loaded.options_;
    scale_ = loaded.scale_;
    growth_tracker_ = tracker;
    states_.clear();
  }

 private:
  enum class Stage { ready, unscaled, stepped };
  struct PerOptimizer {
    Stage stage = Stage::ready;
    bool found_inf = false;
  };

  /// g *= inv_scale in one pass; true when any element was inf or NaN.
  template <class T, class B>
  static bool unscale_and_check(Tensor<T, B>& g, T inv_scale) {
    if (!g.is_contiguous()) {
      Tensor<T, B> c = g.contiguous();
      const bool bad = unscale_and_check(c, inv_scale);
      g.copy_(c);
      return bad;
    }
    T* p = g.data();
    const std::int64_t n = g.numel();
    bool bad = false;
    for (std::int64_t i = 0; i < n; ++i) {
      bad |= !std::isfinite(p[i]);
      p[i] *= inv_scale;
    }
    return bad;
  }

  Options options_;
  float scale_;
  std::int64_t growth_tracker_ = 0;
  std::map<const void*, PerOptimizer> states_;  // this iteration's optimizers
};

}  // namespace dsm::amp
