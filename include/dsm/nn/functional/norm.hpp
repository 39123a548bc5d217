// dsm/nn/functional/norm.hpp: layer_norm and rms_norm over the last dimension, each one graph
// node with a hand-derived backward (a few fused passes instead of a chain of small nodes).
//
// layer_norm: y = (x - mean) * rstd * w + b,       rstd = 1 / sqrt(var + eps) (biased var)
// rms_norm:   y = x * rrms * w,                     rrms = 1 / sqrt(mean(x^2) + eps)
// With xhat the normalized input and gh = g * w, the input gradient is
//   layer_norm: rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
//   rms_norm:   rrms * (gh - xhat * mean(gh * xhat))
// On the CPU in float or double both run row by row: one pass over each row forward and one
// backward (the weight and bias gradients summed in fixed row chunks, so they are the same at any
// thread count), where the expression form reads the whole input three to five times.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../../autograd/function.hpp"
#include "../../autograd/functions/reduce.hpp"

namespace dsm::nn::functional {

namespace detail {
/// The leading dimensions of x (everything but the normalized last one).
inline Shape rows_dims(int rank) {
  Shape dims;
  for (int d = 0; d + 1 < rank; ++d) dims.push_back(d);
  return dims;
}
/// Sums an expression over the leading dimensions (none for a 1-D input).
template <class T, class B, class E>
Tensor<T, B> sum_rows(const E& e, int rank) {
  if (rank == 1) return Tensor<T, B>(e);
  return sum(e, rows_dims(rank));
}
template <class T, class B>
void check_norm_args(const char* op, const Var<T, B>& x, const Var<T, B>& w, const Var<T, B>& b) {
  if (x.rank() == 0) fail<shape_error>(op, "input must have at least one dimension");
  const Shape expect{x.size(-1)};
  if (w.defined() && !(w.shape() == expect)) fail<shape_error>(op, "weight of shape ", w.shape(), " for normalized size ", x.size(-1));
  if (b.defined() && !(b.shape() == expect)) fail<shape_error>(op, "bias of shape ", b.shape(), " for normalized size ", x.size(-1));
}

/// Calls row_fn(r, part) for every row r, the rows dealt to threads in chunks cut by the row count
/// alone; each chunk sums into its own `width` values (part, null when sums is), which are then
/// added in chunk order into sums: the same result at any thread count.
template <class T, class RowFn>
void for_rows_summing_columns(std::int64_t rows, std::int64_t width, T* sums, RowFn&& row_fn) {
  const std::int64_t chunks = std::clamp<std::int64_t>(rows / 32, 1, 256), per_chunk = (rows + chunks - 1) / chunks;
  std::vector<T> partial(sums ? static_cast<std::size_t>(chunks * width) : 0, T(0));
  cpu::parallel_for(chunks, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t chunk = c0; chunk < c1; ++chunk)
      for (std::int64_t r = chunk * per_chunk; r < std::min(rows, (chunk + 1) * per_chunk); ++r)
        row_fn(r, sums ? partial.data() + chunk * width : nullptr);
  });
  if (!sums) return;
  std::fill(sums, sums + width, T(0));
  for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
    const T* part = partial.data() + chunk * width;
    DSM_SIMD for (std::int64_t c = 0; c < width; ++c) sums[c] += part[c];
  }
}

/// Rows per thread for about 16K values each (n >= 0: an empty last dimension has no rows to run).
inline std::int64_t row_grain(std::int64_t n) { return std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(n, 1)); }

/// y = x * rr * w row by row, rrms[r] = rr = 1 / sqrt(mean(x_r^2) + eps).
template <class T>
void rms_norm_rows(const T* x, const T* w, T* y, T* rrms, std::int64_t rows, std::int64_t n, double eps) {
  cpu::parallel_for(rows, row_grain(n), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      T ss = 0;
      DSM_SIMD_REDUCE(+, ss) for (std::int64_t c = 0; c < n; ++c) ss += xr[c] * xr[c];
      const T rr = T(1) / std::sqrt(ss / static_cast<T>(n) + static_cast<T>(eps));
      rrms[r] = rr;
      DSM_SIMD for (std::int64_t c = 0; c < n; ++c) yr[c] = xr[c] * rr * w[c];
    }
  });
}

/// The backward of rms_norm_rows: dx (when not null) = rr * (g w - x rr^2 sum(g w x) / n) row by
/// row, added to dx's values when add_dx; dw (when not null) = the sum over rows of g x rr.
template <class T>
void rms_norm_rows_backward(const T* x, const T* w, const T* g, const T* rrms, T* dx, T* dw, std::int64_t rows, std::int64_t n, bool add_dx = false) {
  for_rows_summing_columns<T>(rows, n, dw, [&](std::int64_t r, T* part) {
    const T *xr = x + r * n, *gr = g + r * n;
    const T rr = rrms[r];
    if (dx) {
      T dot = 0;
      DSM_SIMD_REDUCE(+, dot) for (std::int64_t c = 0; c < n; ++c) dot += gr[c] * w[c] * xr[c];
      const T k = rr * rr * dot / static_cast<T>(n);
      T* dxr = dx + r * n;
      if (add_dx) {
        DSM_SIMD for (std::int64_t c = 0; c < n; ++c) dxr[c] += rr * (gr[c] * w[c] - xr[c] * k);
      } else {
        DSM_SIMD for (std::int64_t c = 0; c < n; ++c) dxr[c] = rr * (gr[c] * w[c] - xr[c] * k);
      }
    }
    if (part) DSM_SIMD for (std::int64_t c = 0; c < n; ++c) part[c] += gr[c] * xr[c] * rr;
  });
}

/// y = (x - mu) * rs * w + b row by row, mean[r] = mu, rstd[r] = rs = 1 / sqrt(var(x_r) + eps)
/// (biased variance, from the row's deviations: two passes over a row that is in cache).
template <class T>
void layer_norm_rows(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::int64_t rows, std::int64_t n, double eps) {
  cpu::parallel_for(rows, row_grain(n), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      T sum = 0, ss = 0;
      DSM_SIMD_REDUCE(+, sum) for (std::int64_t c = 0; c < n; ++c) sum += xr[c];
      const T mu = sum / static_cast<T>(n);
      DSM_SIMD_REDUCE(+, ss) for (std::int64_t c = 0; c < n; ++c) ss += (xr[c] - mu) * (xr[c] - mu);
      const T rs = T(1) / std::sqrt(ss / static_cast<T>(n) + static_cast<T>(eps));
      mean[r] = mu;
      rstd[r] = rs;
      DSM_SIMD for (std::int64_t c = 0; c < n; ++c) yr[c] = (xr[c] - mu) * rs * w[c] + b[c];
    }
  });
}

/// The backward of layer_norm_rows: dx (when not null) = rs (g w - mean(g w) - xhat mean(g w xhat))
/// with xhat = (x - mu) rs, row by row; dwb (when not null, 2n values) = [sum of g xhat | sum of g]
/// over rows.
template <class T>
void layer_norm_rows_backward(const T* x, const T* w, const T* g, const T* mean, const T* rstd, T* dx, T* dwb, std::int64_t rows, std::int64_t n) {
  for_rows_summing_columns<T>(rows, 2 * n, dwb, [&](std::int64_t r, T* part) {
    const T *xr = x + r * n, *gr = g + r * n;
    const T mu = mean[r], rs = rstd[r];
    if (dx) {
      T m1 = 0, m2 = 0;
      DSM_SIMD_REDUCE(+, m1) for (std::int64_t c = 0; c < n; ++c) m1 += gr[c] * w[c];
      DSM_SIMD_REDUCE(+, m2) for (std::int64_t c = 0; c < n; ++c) m2 += gr[c] * w[c] * (xr[c] - mu) * rs;
      m1 /= static_cast<T>(n);
      m2 /= static_cast<T>(n);
      T* dxr = dx + r * n;
      DSM_SIMD for (std::int64_t c = 0; c < n; ++c) dxr[c] = rs * (gr[c] * w[c] - m1 - (xr[c] - mu) * rs * m2);
    }
    if (part) {
      DSM_SIMD for (std::int64_t c = 0; c < n; ++c) part[c] += gr[c] * (xr[c] - mu) * rs;
      DSM_SIMD for (std::int64_t c = 0; c < n; ++c) part[n + c] += gr[c];
    }
  });
}

/// The row kernels above run for float and double on the CPU; other types and backends take the
/// expression form.
template <class T, class B>
constexpr bool row_kernels = std::is_same_v<B, cpu> && (std::is_same_v<T, float> || std::is_same_v<T, double>);

/// A parameter's values, or n copies of `fill` for an absent one (the kernels always read one).
template <class T, class B>
Tensor<T, B> or_filled(const Var<T, B>& p, std::int64_t n, T fill) {
  return p.defined() ? p.value().contiguous() : Tensor<T, B>::full({n}, fill);
}
}  // namespace detail

/// Layer normalization over the last dimension; weight and bias are optional (undefined Vars).
template <class T, class B>
Var<T, B> layer_norm(const Var<T, B>& x, const Var<T, B>& weight, const Var<T, B>& bias, double eps = 1e-5) {
  detail::check_norm_args("layer_norm", x, weight, bias);
  if constexpr (detail::row_kernels<T, B>) {
    const std::int64_t n = x.size(-1), rows = n > 0 ? x.numel() / n : 0;
    const Tensor<T, B> xv = x.value().contiguous(), w = detail::or_filled(weight, n, T(1)), b = detail::or_filled(bias, n, T(0));
    Tensor<T, B> y(xv.shape()), mu({rows}), rstd({rows});
    detail::layer_norm_rows(xv.data(), w.data(), b.data(), y.data(), mu.data(), rstd.data(), rows, n, eps);
    return autograd::make_result(
        "layer_norm", std::move(y), {autograd::edge_of(x), autograd::edge_of(weight), autograd::edge_of(bias)},
        [xv, w, mu, rstd, n, rows](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
          const Tensor<T, B> gv = g.contiguous();
          Tensor<T, B> dx = in[0] ? Tensor<T, B>(xv.shape()) : Tensor<T, B>(), dwb = in[1] || in[2] ? Tensor<T, B>({2 * n}) : Tensor<T, B>();
          detail::layer_norm_rows_backward(xv.data(), w.data(), gv.data(), mu.data(), rstd.data(), dx.data(), dwb.data(), rows, n);
          if (in[0]) autograd::accumulate_input(in[0], std::move(dx));
          if (in[1]) autograd::accumulate_input(in[1], dwb.narrow(0, 0, n).clone());
          if (in[2]) autograd::accumulate_input(in[2], dwb.narrow(0, n, n).clone());
        });
  } else {  // other backends and types: the expression form
    const Tensor<T, B>& xv = x.value();
    const Tensor<T, B> mu = mean(xv, -1, true);                                            // [..., 1]
    const Tensor<T, B> rstd = rsqrt(mean(square(xv - mu), -1, true) + eps);  // [..., 1]
    Tensor<T, B> y(xv.shape());
    if (weight.defined() && bias.defined()) y = (xv - mu) * rstd * weight.value() + bias.value();
    else if (weight.defined()) y = (xv - mu) * rstd * weight.value();
    else y = (xv - mu) * rstd;
    const Tensor<T, B> w = weight.defined() ? weight.value() : Tensor<T, B>::ones({x.size(-1)});
    return autograd::make_result(
        "layer_norm", std::move(y), {autograd::edge_of(x), autograd::edge_of(weight), autograd::edge_of(bias)},
        [xv, mu, rstd, w](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
          if (in[0]) {
            const Tensor<T, B> m1 = mean(g * w, -1, true);
            const Tensor<T, B> m2 = mean(g * w * (xv - mu) * rstd, -1, true);
            autograd::accumulate_input(in[0], Tensor<T, B>(rstd * (g * w - m1 - (xv - mu) * rstd * m2)));
          }
          if (in[1]) autograd::accumulate_input(in[1], detail::sum_rows<T, B>(g * (xv - mu) * rstd, xv.rank()));
          if (in[2]) autograd::accumulate_input(in[2], detail::sum_rows<T, B>(g, xv.rank()));
        });
  }
}

/// Root-mean-square normalization over the last dimension (weight optional).
template <class T, class B>
Var<T, B> rms_norm(const Var<T, B>& x, const Var<T, B>& weight, double eps = 1e-6) {
  detail::check_norm_args("rms_norm", x, weight, Var<T, B>());
  if constexpr (detail::row_kernels<T, B>) {
    const std::int64_t n = x.size(-1), rows = n > 0 ? x.numel() / n : 0;
    const Tensor<T, B> xv = x.value().contiguous(), wv = detail::or_filled(weight, n, T(1));
    Tensor<T, B> y(xv.shape()), rrms({rows});
    detail::rms_norm_rows(xv.data(), wv.data(), y.data(), rrms.data(), rows, n, eps);
    return autograd::make_result("rms_norm", std::move(y), {autograd::edge_of(x), autograd::edge_of(weight)},
                                 [xv, wv, rrms, n, rows](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                   const Tensor<T, B> gv = g.contiguous();
                                   Tensor<T, B> dw = in[1] ? Tensor<T, B>({n}) : Tensor<T, B>();
                                   auto run = [&](T* dx, bool add_dx) {
                                     detail::rms_norm_rows_backward(xv.data(), wv.data(), gv.data(), rrms.data(), dx, dw.data(), rows, n, add_dx);
                                   };
                                   // A residual stream's x already holds the gradient that skipped the block: dx adds into it.
                                   if (in[0]) autograd::accumulate_input_with<T, B>(in[0], run);
                                   else run(nullptr, false);
                                   if (in[1]) autograd::accumulate_input(in[1], std::move(dw));
                                 });
  } else {  // other backends and types: the expression form
    const Tensor<T, B>& xv = x.value();
    const Tensor<T, B> rrms = rsqrt(mean(square(xv), -1, true) + eps);  // [..., 1]
    Tensor<T, B> y(xv.shape());
    if (weight.defined()) y = xv * rrms * weight.value();
    else y = xv * rrms;
    const Tensor<T, B> w = weight.defined() ? weight.value() : Tensor<T, B>::ones({x.size(-1)});
    return autograd::make_result("rms_norm", std::move(y), {autograd::edge_of(x), autograd::edge_of(weight)},
                                 [xv, rrms, w](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                   if (in[0]) {
                                     const Tensor<T, B> m = mean(g * w * xv * rrms, -1, true);
                                     autograd::accumulate_input(in[0], Tensor<T, B>(rrms * (g * w - xv * rrms * m)));
                                   }
                                   if (in[1]) autograd::accumulate_input(in[1], detail::sum_rows<T, B>(g * xv * rrms, xv.rank()));
                                 });
  }
}

}  // namespace dsm::nn::functional
