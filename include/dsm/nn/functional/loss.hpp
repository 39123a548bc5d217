// dsm/nn/functional/loss.hpp: loss functions, with PyTorch's definitions and defaults.
//
//   auto loss = dsm::nn::functional::cross_entropy(logits, targets, {.label_smoothing = 0.1});
//   loss.backward();
//
// cross_entropy and nll_loss are single nodes with a direct backward (softmax minus the smoothed
// one-hot); the others are fused expressions and reductions.
#pragma once

#include <cmath>
#include <vector>

#include "../../autograd/autograd.hpp"
#include "../../expr/math.hpp"

namespace dsm::nn {

enum class Reduction { none, sum, mean };

namespace functional {

struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;  // targets equal to this contribute nothing
  double label_smoothing = 0.0;      // in [0, 1]: mixes the one-hot target with the uniform
  Reduction reduction = Reduction::mean;  // mean: over the targets not ignored
};

namespace detail {
/// Shared by cross_entropy (log_softmax inside) and nll_loss (log-probabilities given).
template <bool FromLogits, class T, class I, class B>
Var<T, B> class_loss(const char* op, const Var<T, B>& input, const Tensor<I, B>& target, const CrossEntropyOptions& o) {
  static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>, "targets must be class indices (an integer tensor)");
  if (input.rank() != 2) fail<shape_error>(op, "input must be [batch, classes], got ", input.shape());
  if (!(target.shape() == Shape{input.size(0)}))
    fail<shape_error>(op, "target of shape ", target.shape(), " for input of shape ", input.shape());
  if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1)) fail<config_error>(op, "label_smoothing must be in [0, 1], got ", o.label_smoothing);
  const std::int64_t n = input.size(0), c = input.size(1);
  const Tensor<I, B> t = target.contiguous();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::int64_t>(t.data()[i]);
    if (k != o.ignore_index && (k < 0 || k >= c)) fail<index_error>(op, "target ", k, " at position ", i, " is out of range for ", c, " classes");
  }
  const Tensor<T, B> logp = FromLogits ? log_softmax(input.value(), 1) : input.value().contiguous();
  const double eps = FromLogits ? o.label_smoothing : 0.0;
  std::vector<double> per_row(static_cast<std::size_t>(n));
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::int64_t>(t.data()[i]);
    if (k == o.ignore_index) continue;
    ++counted;
    const T* row = logp.data() + i * c;
    double smooth = 0;
    if (eps > 0)
      for (std::int64_t j = 0; j < c; ++j) smooth += static_cast<double>(row[j]);
    per_row[static_cast<std::size_t>(i)] = -(1 - eps) * static_cast<double>(row[k]) - eps / static_cast<double>(c) * smooth;
  }
  Tensor<T, B> loss;
  if (o.reduction == Reduction::none) {
    loss = Tensor<T, B>({n});
    for (std::int64_t i = 0; i < n; ++i) loss.data()[i] = convert<T>(per_row[static_cast<std::size_t>(i)]);
  } else {
    double s = 0;
    for (double v : per_row) s += v;
    // PyTorch: the mean over zero counted targets is NaN.
    loss = Tensor<T, B>::scalar(convert<T>(o.reduction == Reduction::mean ? s / static_cast<double>(counted) : s));
  }
  return autograd::make_result(op, std::move(loss), {autograd::edge_of(input)},
                               [logp, t, eps, n, c, counted, o](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 Tensor<T, B> gx({n, c});
                                 const Tensor<T, B> gc = g.contiguous();
                                 // Rows in parallel, exp vectorized (math::exp for float): one exp per
                                 // logit, scalar and serial in double, was 0.4-0.8% of a W7 step.
                                 using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
                                 B::parallel_for(n, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(c, 1)), [&](std::int64_t r0, std::int64_t r1) {
                                   for (std::int64_t i = r0; i < r1; ++i) {
                                     T* out = gx.data() + i * c;
                                     const auto k = static_cast<std::int64_t>(t.data()[i]);
                                     if (k == o.ignore_index || !FromLogits) std::fill(out, out + c, T(0));
                                     if (k == o.ignore_index) continue;
                                     double scale = static_cast<double>(o.reduction == Reduction::none ? gc.data()[i] : gc.data()[0]);
                                     if (o.reduction == Reduction::mean) scale /= static_cast<double>(counted);
                                     if constexpr (FromLogits) {  // d/dx of -sum(q log softmax x) = softmax(x) - q, q = (1 - eps) e_k + eps / c
                                       const T* lp = logp.data() + i * c;
                                       const C sc = static_cast<C>(scale), smooth = static_cast<C>(scale * eps / static_cast<double>(c));
                                       DSM_SIMD for (std::int64_t j = 0; j < c; ++j) out[j] = convert<T>(sc * math::exp_nonpositive(convert<C>(lp[j])) - smooth);
                                       // The target's p - (1 - eps) before scaling and rounding: p near 1
                                       // would cancel in a value already rounded to T (bf16: to 0).
                                       out[k] = convert<T>(sc * (math::exp_nonpositive(convert<C>(lp[k])) - static_cast<C>(1 - eps)) - smooth);
                                     } else {
                                       out[k] = convert<T>(-scale);
                                     }
                                   }
                                 });
                                 autograd::accumulate_input(in[0], std::move(gx));
                               });
}

template <class T, class B>
Var<T, B> reduce(const Var<T, B>& per_element, Reduction r) {
  if (r == Reduction::none) return per_element;
  return r == Reduction::sum ? sum(per_element) : mean(per_element);
}
}  // namespace detail

/// Cross-entropy of logits [batch, classes] against class indices [batch] (torch.nn.functional.cross_entropy).
template <class T, class I, class B>
Var<T, B> cross_entropy(const Var<T, B>& logits, const Tensor<I, B>& target, const CrossEntropyOptions& options = {}) {
  return detail::class_loss<true>("cross_entropy", logits, target, options);
}

/// Negative log-likelihood of log-probabilities [batch, classes] (label_smoothing is not used).
template <class T, class I, class B>
Var<T, B> nll_loss(const Var<T, B>& log_probs, const Tensor<I, B>& target, const CrossEntropyOptions& options = {}) {
  return detail::class_loss<false>("nll_loss", log_probs, target, options);
}

/// Mean squared error (a - b)^2.
template <class T, class B>
Var<T, B> mse_loss(const Var<T, B>& input, const Var<T, B>& target, Reduction reduction = Reduction::mean) {
  if (!(input.shape() == target.shape())) fail<shape_error>("mse_loss", "input ", input.shape(), " and target ", target.shape(), " differ");
  return detail::reduce(Var<T, B>(square(input - target)), reduction);
}

/// Binary cross-entropy on logits, computed stably as softplus(x) - x * y.
template <class T, class B>
Var<T, B> binary_cross_entropy_with_logits(const Var<T, B>& logits, const Var<T, B>& target, Reduction reduction = Reduction::mean) {
  if (!(logits.shape() == target.shape()))
    fail<shape_error>("binary_cross_entropy_with_logits", "logits ", logits.shape(), " and target ", target.shape(), " differ");
  return detail::reduce(Var<T, B>(softplus(logits) - logits * target), reduction);
}

/// Knowledge-distillation loss: T^2 * KL(softmax(teacher / T) || softmax(student / T)), summed over
/// classes and averaged over the batch (PyTorch's kl_div with reduction "batchmean", times T^2 so
/// that gradients keep their scale as T changes). Logits are [batch, classes].
template <class T, class B>
Var<T, B> distillation_kl(const Var<T, B>& student_logits, const Var<T, B>& teacher_logits, double temperature = 1.0) {
  if (!(student_logits.shape() == teacher_logits.shape()) || student_logits.rank() != 2)
    fail<shape_error>("distillation_kl", "student ", student_logits.shape(), " and teacher ", teacher_logits.shape(), " must be the same [batch, classes]");
  if (!(temperature > 0)) fail<config_error>("distillation_kl", "temperature must be positive, got ", temperature);
  const double inv_t = 1.0 / temperature;
  const Var<T, B> log_s = log_softmax(Var<T, B>(student_logits * inv_t), 1);
  const Var<T, B> log_t = log_softmax(Var<T, B>(teacher_logits * inv_t), 1);
  const double scale = temperature * temperature / static_cast<double>(student_logits.size(0));
  return sum(exp(log_t) * (log_t - log_s) * scale);
}

}  // namespace functional
}  // namespace dsm::nn
