// dsm/autograd/functions/linalg.hpp: matmul, bmm and linear on Vars.
//
// Gradients are GEMMs with transposed operands (transposes are GEMM flags, not copies):
// for y = a b, da = g b^T and db = a^T g, summed over batch dimensions that were broadcast.
#pragma once

#include "../../ops/matmul.hpp"
#include "../fused.hpp"
#include "../function.hpp"

namespace dsm {

/// Matrix product with torch.matmul's rules (1-D promotion, batch broadcasting).
template <class T, class B>
Var<T, B> matmul(const Var<T, B>& a, const Var<T, B>& b) {
  // Work on the promoted operands: a 1-D `a` is a row [1, k], a 1-D `b` a column [k, 1].
  const Tensor<T, B> a2 = a.rank() == 1 ? a.value().unsqueeze(0) : a.value();
  const Tensor<T, B> b2 = b.rank() == 1 ? b.value().unsqueeze(1) : b.value();
  if (a.rank() == 0 || b.rank() == 0) fail<shape_error>("matmul", "both arguments need at least one dimension, got ", a.shape(), " x ", b.shape());
  Tensor<T, B> y2 = matmul(a2, b2);
  Shape y_shape;
  for (int d = 0; d < y2.rank(); ++d)
    if (!((a.rank() == 1 && d == y2.rank() - 2) || (b.rank() == 1 && d == y2.rank() - 1))) y_shape.push_back(y2.size(d));
  const bool need_a = autograd::edge_of(a) != nullptr, need_b = autograd::edge_of(b) != nullptr;
  return autograd::make_result(
      "matmul", y2.reshape(y_shape), {autograd::edge_of(a), autograd::edge_of(b)},
      [a_shape = a.shape(), b_shape = b.shape(), y2_shape = y2.shape(), a2 = need_b ? a2 : Tensor<T, B>(),
       b2 = need_a ? b2 : Tensor<T, B>()](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
        const Tensor<T, B> g2 = g.reshape(y2_shape);
        if (in[0]) {
          // Each gradient is handed over as its only handle (the temporaries die at the ';'), so a
          // leaf keeps it as its .grad without a copy.
          const Shape a2_shape = a_shape.rank() == 1 ? Shape{1, a_shape[0]} : a_shape;
          Tensor<T, B> ga = autograd::detail::sum_to(matmul(g2, b2.transpose(-1, -2)), a2_shape).reshape(a_shape);
          autograd::accumulate_input(in[0], std::move(ga));
        }
        if (in[1]) {
          const Shape b2_shape = b_shape.rank() == 1 ? Shape{b_shape[0], 1} : b_shape;
          Tensor<T, B> gb = autograd::detail::sum_to(matmul(a2.transpose(-1, -2), g2), b2_shape).reshape(b_shape);
          autograd::accumulate_input(in[1], std::move(gb));
        }
      });
}

/// Batched product of [b, n, k] and [b, k, m].
template <class T, class B>
Var<T, B> bmm(const Var<T, B>& a, const Var<T, B>& b) {
  if (a.rank() != 3 || b.rank() != 3 || a.size(0) != b.size(0))
    fail<shape_error>("bmm", "expects [b, n, k] and [b, k, m], got ", a.shape(), " and ", b.shape());
  return matmul(a, b);
}

/// y = x w^T + bias, x [..., in], w [out, in], bias [out] (optional: pass an undefined Var).
template <class T, class B>
Var<T, B> linear(const Var<T, B>& x, const Var<T, B>& w, const Var<T, B>& bias = {}) {
  Tensor<T, B> y = linear(x.value(), w.value(), bias.defined() ? bias.value() : Tensor<T, B>());
  const bool need_x = autograd::edge_of(x) != nullptr, need_w = autograd::edge_of(w) != nullptr;
  return autograd::make_result(
      "linear", std::move(y), {autograd::edge_of(x), autograd::edge_of(w), bias.defined() ? autograd::edge_of(bias) : autograd::Edge()},
      [x_saved = need_w ? x.value() : Tensor<T, B>(), w_saved = need_x ? w.value() : Tensor<T, B>(), x_shape = x.shape()](
          const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
        const std::int64_t out = g.size(-1);
        const Tensor<T, B> g2 = g.reshape({-1, out});  // [rows, out]
        if (in[0]) {
          // dx = g w; when x already has a gradient of its own (x also fed other projections),
          // the product adds into it (beta = 1) instead of being added by a pass of its own.
          bool added = false;
          if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
            const auto ga = detail::gemm_layout(g2.size(0), g2.size(1), g2.stride(0), g2.stride(1));
            const auto wb = detail::gemm_layout(w_saved.size(0), w_saved.size(1), w_saved.stride(0), w_saved.stride(1));
            if (ga && wb) {
              const std::int64_t rows = g2.size(0), in_features = w_saved.size(1);
              autograd::accumulate_input_with<T, B>(in[0], [&](T* dst, bool add) {
                B::gemm(ga->trans, wb->trans, rows, in_features, out, T(1), g2.data(), ga->ld, w_saved.data(), wb->ld, add ? T(1) : T(0), dst, in_features);
              });
              added = true;
            }
          }
          if (!added) autograd::accumulate_input(in[0], matmul(g2, w_saved).reshape(x_shape));  // other types; operands GEMM cannot read
        }
        if (in[1]) autograd::accumulate_input(in[1], matmul(g2.t(), x_saved.reshape({-1, x_shape[x_shape.rank() - 1]})));
        if (in[2]) autograd::accumulate_input(in[2], sum(g2, Shape{0}));
      });
}

}  // namespace dsm
