// dsm/optim/clip.hpp: gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
//
//   double norm = dsm::optim::clip_grad_norm(model.parameters(), 1.0);  // the norm before clipping
#pragma once

#include <cmath>
#include <vector>

#include "../autograd/var.hpp"
#include "../ops/reduce.hpp"

namespace dsm::optim {

/// Scales all gradients by max_norm / (total + 1e-6) when that is below 1, where total is the
/// 2-norm of all gradients together (computed in double). Returns total. A non-finite total is
/// returned as is and, as in PyTorch, the gradients are scaled by a NaN factor unless
/// error_if_nonfinite asks for a dsm::error instead.
template <class T, class B>
double clip_grad_norm(const std::vector<Var<T, B>>& params, double max_norm, bool error_if_nonfinite = false) {
  if (!(max_norm > 0)) fail<config_error>("clip_grad_norm", "max_norm must be positive, got ", max_norm);
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) {
      const Tensor<double, B> g = cast<double>(p.grad());
      sq += sum(g * g).item();
    }
  const double total = std::sqrt(sq);
  if (!std::isfinite(total) && error_if_nonfinite)
    fail<error>("clip_grad_norm", "the total norm of the gradients is ", total);
  const double coef = std::min(1.0, max_norm / (total + 1e-6));
  if (coef < 1.0 || !std::isfinite(coef))
    for (const auto& p : params)
      if (p.grad().defined()) {
        Tensor<T, B> g = p.grad();
        g *= coef;
      }
  return total;
}

}  // namespace dsm::optim
