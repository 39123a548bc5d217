// dsm/ops/matmul.hpp: matrix products through the backend's GEMM.
//
//   auto c = dsm::matmul(a, b);            // [M, K] x [K, N] -> [M, N]
//   auto d = dsm::matmul(q, k.transpose(-2, -1));   // batched; the transpose is a flag, not a copy
//   auto y = dsm::linear(x, w, bias);      // x [..., in], w [out, in] -> [..., out]
//
// matmul follows torch.matmul: 1-D operands are promoted to matrices and the added dimension
// removed again; leading (batch) dimensions broadcast. A 2-D operand whose rows or columns are
// contiguous goes to GEMM as is (transposed views become the transpose flag); any other layout is
// copied once. A right operand shared by every batch (x [B, T, in] times a weight) makes one GEMM
// of all the rows when they are evenly spaced; otherwise each batch is a GEMM of its own. bf16
// and f16 inputs are widened to float while the GEMM packs them, accumulate in float and are
// rounded once at the end (an AMX/AVX-512-BF16 kernel is planned).
#pragma once

#include <vector>

#include "../core/tensor.hpp"
#include "../expr/assign.hpp"

namespace dsm {
namespace detail {

/// How a 2-D view is handed to GEMM: pointer, leading dimension and transpose flag.
struct GemmOperand {
  std::int64_t ld;
  bool trans;
};
/// Returns the GEMM description of a matrix view with (rows, cols) strides, or nothing when
/// neither dimension is contiguous.
inline std::optional<GemmOperand> gemm_layout(std::int64_t rows, std::int64_t cols, std::int64_t s0, std::int64_t s1) {
  // Rows must not overlap (an expanded dimension of stride 0 is copied instead).
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= cols)) return GemmOperand{std::max<std::int64_t>(rows == 1 ? cols : s0, 1), false};
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= rows)) return GemmOperand{std::max<std::int64_t>(cols == 1 ? rows : s1, 1), true};
  return std::nullopt;
}

/// The product in the accumulation type: double for double, float for float, bf16 and f16.
template <class T, class B, class TC = std::conditional_t<std::is_same_v<T, double>, double, float>>
Tensor<TC, B> matmul_acc(const Tensor<T, B>& a0, const Tensor<T, B>& b0) {
  // Promote 1-D operands to matrices, remembering which dimension to drop at the end.
  const bool a_vec = a0.rank() == 1, b_vec = b0.rank() == 1;
  Tensor<T, B> a = a_vec ? a0.unsqueeze(0) : a0;
  Tensor<T, B> b = b_vec ? b0.unsqueeze(1) : b0;
  const std::int64_t m = a.size(-2), k = a.size(-1), k2 = b.size(-2), n = b.size(-1);
  if (k != k2) fail<shape_error>("matmul", "inner dimensions differ: ", a0.shape(), " x ", b0.shape());

  // Broadcast the batch dimensions.
  Shape a_batch, b_batch;
  for (int d = 0; d < a.rank() - 2; ++d) a_batch.push_back(a.size(d));
  for (int d = 0; d < b.rank() - 2; ++d) b_batch.push_back(b.size(d));
  const Shape batch = broadcast_shapes("matmul", a_batch, b_batch);
  Shape full_a = batch, full_b = batch;
  full_a.push_back(m), full_a.push_back(k);
  full_b.push_back(k), full_b.push_back(n);
  a = a.expand(full_a);
  b = b.expand(full_b);

  // Operands GEMM cannot read directly are copied once.
  const int r = batch.rank();
  auto la = gemm_layout(m, k, a.strides()[r], a.strides()[r + 1]);
  if (!la) {
    a = a.contiguous();
    la = gemm_layout(m, k, a.strides()[r], a.strides()[r + 1]);
  }
  auto lb = gemm_layout(k, n, b.strides()[r], b.strides()[r + 1]);
  if (!lb) {
    b = b.contiguous();
    lb = gemm_layout(k, n, b.strides()[r], b.strides()[r + 1]);
  }

  Shape out_shape = batch;
  out_shape.push_back(m), out_shape.push_back(n);
  Tensor<TC, B> c(out_shape);
  const std::int64_t nbatch = batch.numel();
  const Strides bst = contiguous_strides(batch);
  auto one = [&, la = *la, lb = *lb](std::int64_t i) {
    std::int64_t oa = 0, ob = 0, rem = i;
    for (int d = 0; d < r; ++d) {
      const std::int64_t idx = rem / bst[d];
      rem %= bst[d];
      oa += idx * a.strides()[d];
      ob += idx * b.strides()[d];
    }
    B::gemm(la.trans, lb.trans, m, n, k, TC(1), a.data() + oa, la.ld, b.data() + ob, lb.ld, TC(0), c.data() + i * m * n, n);
  };
  // A right operand shared by every batch (a weight: x [B, T, in] times w^T) with the left rows
  // evenly spaced across the batches is ONE GEMM of nbatch * m rows: B is packed once instead of
  // once per batch, and the threads split one large product (W4's projections were 8 products of
  // 256 rows, each packing the [512, 1536] weight).
  bool fold = nbatch > 1 && !la->trans;
  for (std::int64_t d = r - 1, spacing = m * la->ld; d >= 0 && fold; spacing *= batch[static_cast<int>(d)], --d)
    fold = batch[static_cast<int>(d)] == 1 || (b.strides()[static_cast<int>(d)] == 0 && a.strides()[static_cast<int>(d)] == spacing);
  if (nbatch == 1 || fold) {  // one GEMM, threaded inside
    B::gemm(la->trans, lb->trans, nbatch * m, n, k, TC(1), a.data(), la->ld, b.data(), lb->ld, TC(0), c.data(), n);
  } else {
    // Many GEMMs: one per thread, each single-threaded (Eigen runs serially inside a parallel region).
    B::parallel_for(nbatch, 1, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) one(i);
    });
  }
  if (a_vec && b_vec) return c.view(batch);
  if (a_vec) return c.squeeze(-2);
  if (b_vec) return c.squeeze(-1);
  return c;
}
}  // namespace detail

/// torch.matmul for floating-point tensors (see the header comment for the rules).
template <FloatingScalar T, class B>
Tensor<T, B> matmul(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  if (a.rank() == 0 || b.rank() == 0) fail<shape_error>("matmul", "both arguments need at least one dimension, got ", a.shape(), " x ", b.shape());
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) return detail::matmul_acc(a, b);
  else return detail::matmul_acc(a, b).template to<T>();  // fp32 accumulation, one rounding
}

/// Batched matrix product of [batch, M, K] and [batch, K, N] tensors (no broadcasting, as torch.bmm).
template <FloatingScalar T, class B>
Tensor<T, B> bmm(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  if (a.rank() != 3 || b.rank() != 3 || a.size(0) != b.size(0))
    fail<shape_error>("bmm", "expects [batch, M, K] x [batch, K, N] with equal batch sizes, got ", a.shape(), " x ", b.shape());
  return matmul(a, b);
}

/// y = x w^T + bias, with x [..., in], w [out, in], bias [out] (optional: pass an undefined tensor).
template <FloatingScalar T, class B>
Tensor<T, B> linear(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& bias = {}) {
  if (w.rank() != 2) fail<shape_error>("linear", "weight must be [out, in], got ", w.shape());
  if (x.rank() == 0 || x.size(-1) != w.size(1)) fail<shape_error>("linear", "input features differ: ", x.shape(), " x ", w.shape(), "^T");
  Tensor<T, B> y = matmul(x, w.t());
  if (bias.defined()) {
    if (bias.rank() != 1 || bias.size(0) != w.size(0)) fail<shape_error>("linear", "bias must be [", w.size(0), "], got ", bias.shape());
    y += bias;
  }
  return y;
}

}  // namespace dsm
