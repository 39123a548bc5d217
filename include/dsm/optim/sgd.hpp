// dsm/optim/sgd.hpp: stochastic gradient descent with momentum, dampening, Nesterov momentum and
// (L2) weight decay, with exactly torch.optim.SGD's update:
//   d = g + wd * p;  buf = d (first step) or momentum * buf + (1 - dampening) * d;
//   d = nesterov ? d + momentum * buf : buf;  p -= lr * d
//
//   dsm::optim::SGD opt(model.named_parameters(), {.lr = 0.1, .momentum = 0.9});
//   loss.backward(); opt.step(); opt.zero_grad();
#pragma once

#include "optimizer.hpp"

namespace dsm::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

template <FloatingScalar T = float, class B = cpu>
class SGD : public Optimizer<T, B> {
  using Base = Optimizer<T, B>;

 public:
  SGD(typename Base::NamedParams params, SGDOptions o) : Base(std::move(params), o.lr), o_(o) { check(); }
  SGD(const std::vector<typename Base::Param>& params, SGDOptions o) : SGD(Base::number(params), o) {}

  void step() override {
    no_grad guard;
    ++this->step_;
    const double lr = this->lr_, wd = o_.weight_decay, mu = o_.momentum, damp = o_.dampening;
    for (auto& [name, p] : this->params_) {
      const Tensor<T, B>& g = p.grad();
      if (!g.defined()) continue;
      Tensor<T, B> value = p.value();
      if (mu == 0) {
        value -= lr * (g + wd * value);
        continue;
      }
      const bool fresh = !this->has_state(name, "momentum_buffer");
      Tensor<T, B>& buf = this->state(name, "momentum_buffer", p.shape());
      if (fresh) buf = g + wd * value;
      else buf = mu * buf + (1 - damp) * (g + wd * value);
      if (o_.nesterov) value -= lr * ((g + wd * value) + mu * buf);
      else value -= lr * buf;
    }
  }
  const SGDOptions& options() const { return o_; }

 private:
  void check() const {
    if (o_.momentum < 0 || o_.weight_decay < 0 || o_.dampening < 0 || o_.dampening > 1)
      fail<config_error>("SGD", "momentum and weight_decay must be non-negative and dampening in [0, 1], got ", o_.momentum, ", ",
                         o_.weight_decay, ", ", o_.dampening);
    if (o_.nesterov && (o_.momentum <= 0 || o_.dampening != 0))
      fail<config_error>("SGD", "Nesterov momentum requires a positive momentum and zero dampening");
  }
  SGDOptions o_;
};

}  // namespace dsm::optim
