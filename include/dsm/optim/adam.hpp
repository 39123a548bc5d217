// dsm/optim/adam.hpp: Adam and AdamW with torch.optim's exact update.
//   Adam:   g += wd * p                    (L2 penalty in the gradient)
//   AdamW:  p *= 1 - lr * wd               (decoupled weight decay)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  (amsgrad: v_max = max(v_max, v), used below)
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
//   dsm::optim::AdamW opt(model.named_parameters(), {.lr = 3e-4, .weight_decay = 0.1});
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "optimizer.hpp"

namespace dsm::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};

template <bool Decoupled, FloatingScalar T = float, class B = cpu>
class AdamBase : public Optimizer<T, B> {
  using Base = Optimizer<T, B>;

 public:
  AdamBase(typename Base::NamedParams params, AdamOptions o) : Base(std::move(params), o.lr), o_(o) {
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
      fail<config_error>(name(), "betas must be in [0, 1), got ", o.beta1, " and ", o.beta2);
    if (!(o.eps >= 0 && o.weight_decay >= 0)) fail<config_error>(name(), "eps and weight_decay must be non-negative, got ", o.eps, " and ", o.weight_decay);
  }
  AdamBase(const std::vector<typename Base::Param>& params, AdamOptions o) : AdamBase(Base::number(params), o) {}

  static constexpr const char* name() { return Decoupled ? "AdamW" : "Adam"; }

  void step() override {
    no_grad guard;
    const std::int64_t t = ++this->step_;
    const double lr = this->lr_, b1 = o_.beta1, b2 = o_.beta2, wd = o_.weight_decay;
    const double bias1 = 1 - std::pow(b1, static_cast<double>(t));
    const double bias2_sqrt = std::sqrt(1 - std::pow(b2, static_cast<double>(t)));
    const double step_size = lr / bias1;
    for (auto& [pname, p] : this->params_) {
      const Tensor<T, B>& g = p.grad();
      if (!g.defined()) continue;
      Tensor<T, B> value = p.value();
      Tensor<T, B>& m = this->state(pname, "exp_avg", p.shape());
      Tensor<T, B>& v = this->state(pname, "exp_avg_sq", p.shape());
      if constexpr (B::host_accessible) {
        if (!o_.amsgrad && g.is_contiguous() && value.is_contiguous() && m.is_contiguous() && v.is_contiguous()) {
          fused_update(p.numel(), g.data(), value.data(), m.data(), v.data(), lr, wd, step_size, bias2_sqrt);
          continue;
        }
      }
      if constexpr (Decoupled) {
        if (wd != 0) value *= 1 - lr * wd;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
      } else {
        m = b1 * m + (1 - b1) * (g + wd * value);
        v = b2 * v + (1 - b2) * square(g + wd * value);
      }
      if (o_.amsgrad) {
        Tensor<T, B>& vmax = this->state(pname, "max_exp_avg_sq", p.shape());
        vmax = maximum(vmax, v);
        value -= step_size * m / (sqrt(vmax) / bias2_sqrt + o_.eps);
      } else {
        value -= step_size * m / (sqrt(v) / bias2_sqrt + o_.eps);
      }
    }
  }
  const AdamOptions& options() const { return o_; }

 private:
  /// The update above in one pass over contiguous memory (the expressions take three: m, v, p),
  /// with the same operations in the same order.
  void fused_update(std::int64_t n, const T* g, T* p, T* m, T* v, double lr, double wd, double step_size, double bias2_sqrt) const {
    const T b1 = T(o_.beta1), b2 = T(o_.beta2), c1 = T(1 - o_.beta1), c2 = T(1 - o_.beta2), decay = T(1 - lr * wd), wdt = T(wd);
    const T step = T(step_size), denom = T(bias2_sqrt), eps = T(o_.eps);
#if defined(__AVX__)
    if constexpr (std::is_same_v<T, float>) {
      // std::sqrt may set errno, which keeps compilers from vectorizing the loop (it ran one
      // element at a time, ~10% of a W5 step); the vector instructions have no such path. Every
      // element goes through this same code (a short tail through a padded copy), so the result
      // does not depend on where the thread chunks end.
      const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vc1 = _mm256_set1_ps(c1), vc2 = _mm256_set1_ps(c2);
      const __m256 vdecay = _mm256_set1_ps(decay), vwd = _mm256_set1_ps(wdt), vstep = _mm256_set1_ps(step), vden = _mm256_set1_ps(denom),
                   veps = _mm256_set1_ps(eps);
      const bool decays = wd != 0;
      auto update8 = [&](const float* g8, float* p8, float* m8, float* v8) {
        __m256 grad = _mm256_loadu_ps(g8), param = _mm256_loadu_ps(p8);
        if constexpr (Decoupled) {
          if (decays) param = _mm256_mul_ps(param, vdecay);
        } else {
          grad = _mm256_add_ps(grad, _mm256_mul_ps(vwd, param));
        }
        const __m256 mom = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m8)), _mm256_mul_ps(vc1, grad));
        const __m256 var = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v8)), _mm256_mul_ps(_mm256_mul_ps(vc2, grad), grad));
        const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(var), vden), veps);
        _mm256_storeu_ps(m8, mom);
        _mm256_storeu_ps(v8, var);
        _mm256_storeu_ps(p8, _mm256_sub_ps(param, _mm256_div_ps(_mm256_mul_ps(vstep, mom), den)));
      };
      cpu::parallel_for(n, 1 << 15, [&](std::int64_t b, std::int64_t e) {
        std::int64_t i = b;
        for (; i + 8 <= e; i += 8) update8(g + i, p + i, m + i, v + i);
        if (i == e) return;
        alignas(32) float tg[8] = {}, tp[8] = {}, tm[8] = {}, tv[8] = {};
        const std::int64_t rest = e - i;
        std::copy_n(g + i, rest, tg), std::copy_n(p + i, rest, tp), std::copy_n(m + i, rest, tm), std::copy_n(v + i, rest, tv);
        update8(tg, tp, tm, tv);
        std::copy_n(tp, rest, p + i), std::copy_n(tm, rest, m + i), std::copy_n(tv, rest, v + i);
      });
      return;
    }
#endif
    cpu::parallel_for(n, 1 << 15, [&](std::int64_t b, std::int64_t e) {
      DSM_SIMD for (std::int64_t i = b; i < e; ++i) {
        T grad = g[i];
        if constexpr (Decoupled) {
          if (wd != 0) p[i] *= decay;
        } else {
          grad = grad + wdt * p[i];
        }
        m[i] = b1 * m[i] + c1 * grad;
        v[i] = b2 * v[i] + c2 * grad * grad;
        p[i] -= step * m[i] / (std::sqrt(v[i]) / denom + eps);
      }
    });
  }

  AdamOptions o_;
};

template <FloatingScalar T = float, class B = cpu>
using Adam = AdamBase<false, T, B>;
template <FloatingScalar T = float, class B = cpu>
using AdamW = AdamBase<true, T, B>;

}  // namespace dsm::optim
