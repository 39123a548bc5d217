// dsm/optim/optimizer.hpp: the base of the optimizers: parameters, per-parameter state, and its
// checkpoint form.
//
// An optimizer holds handles to the parameters (sharing their values and gradients) and, per
// parameter, named state tensors (momentum buffers, moment estimates). state_dict() lists them as
// "<parameter name>.<state name>" plus "step" and "lr", so that an optimizer saved with a model
// resumes exactly. Parameters without a gradient are skipped by step(), as in PyTorch.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../autograd/var.hpp"
#include "../nn/module.hpp"

namespace dsm::optim {

template <FloatingScalar T = float, class B = cpu>
class Optimizer {
 public:
  using Param = Var<T, B>;
  using NamedParams = std::vector<std::pair<std::string, Param>>;

  virtual ~Optimizer() = default;

  /// Applies one update to every parameter that has a gradient.
  virtual void step() = 0;

  /// Drops every parameter's gradient.
  void zero_grad() {
    for (auto& [name, p] : params_) p.zero_grad();
  }
  double lr() const { return lr_; }
  /// Sets the learning rate (schedules call this before each step).
  void set_lr(double lr) {
    if (!(lr >= 0)) fail<config_error>("set_lr", "learning rate must be non-negative, got ", lr);
    lr_ = lr;
  }
  /// Number of steps taken.
  std::int64_t steps() const { return step_; }
  const NamedParams& params() const { return params_; }

  /// The optimizer's state: "step", "lr" and "<param>.<state>" tensors (copies).
  nn::StateDict state_dict() const {
    nn::StateDict d;
    d.insert("step", Tensor<std::int64_t>::scalar(step_));
    d.insert("lr", Tensor<double>::scalar(lr_));
    for (const auto& [key, t] : state_) d.insert(key, t.clone());
    return d;
  }
  /// Restores a state saved by state_dict() of an optimizer over the same parameters.
  void load_state_dict(const nn::StateDict& d) {
    std::map<std::string, Tensor<T, B>> state;
    for (const auto& [key, t] : d) {
      if (key == "step" || key == "lr") continue;
      const auto dot = key.rfind('.');
      const Param* p = dot == std::string::npos ? nullptr : find(key.substr(0, dot));
      if (!p) fail<error>("Optimizer::load_state_dict", "entry '", key, "' names no parameter of this optimizer");
      if (!(t.shape() == p->shape()))
        fail<shape_error>("Optimizer::load_state_dict", "entry '", key, "' has shape ", t.shape(), ", the parameter has ", p->shape());
      state[key] = t.template to<T>().clone();
    }
    step_ = d.at("step").template to<std::int64_t>().item();
    lr_ = d.at("lr").template to<double>().item();
    state_ = std::move(state);
  }

 protected:
  Optimizer(NamedParams params, double lr) : params_(std::move(params)) {
    set_lr(lr);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (!params_[i].second.defined()) fail<error>("Optimizer", "parameter '", params_[i].first, "' is undefined");
      for (std::size_t j = 0; j < i; ++j)
        if (params_[i].first == params_[j].first) fail<error>("Optimizer", "two parameters are named '", params_[i].first, "'");
    }
  }
  static NamedParams number(const std::vector<Param>& ps) {
    NamedParams out;
    for (std::size_t i = 0; i < ps.size(); ++i) out.emplace_back(std::to_string(i), ps[i]);
    return out;
  }
  /// The state tensor `name` of parameter `param` (zeros on first use).
  Tensor<T, B>& state(const std::string& param, const char* name, const Shape& shape) {
    auto [it, fresh] = state_.try_emplace(param + "." + name);
    if (fresh) it->second = Tensor<T, B>::zeros(shape);
    return it->second;
  }
  bool has_state(const std::string& param, const char* name) const { return state_.count(param + "." + name) != 0; }

  NamedParams params_;
  double lr_ = 0;
  std::int64_t step_ = 0;

 private:
  const Param* find(const std::string& name) const {
    for (const auto& [n, p] : params_)
      if (n == name) return &p;
    return nullptr;
  }
  std::map<std::string, Tensor<T, B>> state_;
};

}  // namespace dsm::optim
