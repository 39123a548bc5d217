// dsm/backend/reused_operand.hpp: a right-hand GEMM operand that multiplies many left-hand ones
// (an LSTM's weights at every time step, a key block of attention against every query block).
//
//   const detail::ReusedOperand<float, cpu> w(/*trans*/ true, k, n, w_ptr, ldw);  // W^T stored [n, k]
//   w.multiply(false, m, 1.f, a, lda, 0.f, c, ldc);                              // C = A W, many times
//   w.multiply_corner(false, m, k2, n2, 1.f, a, lda, 0.f, c, ldc);               // A W[:k2, :n2]
//
// float on the CPU packs the operand for the GEMM kernel once (cpu::pack_b), instead of once per
// product; other types and backends, and an operand built with pack = false (too few products
// to pay for packing, such as one decoding step), multiply from where it lies. The pointer must
// outlive it.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cpu.hpp"

namespace dsm::detail {

template <class T, class B>
class ReusedOperand {
 public:
  /// op(W) [k, n]: W stored [k, n] row-major with leading dimension ldw, or [n, k] when trans.
  ReusedOperand(bool trans, std::int64_t k, std::int64_t n, const T* w, std::int64_t ldw, bool pack = true)
      : w_(w), k_(k), n_(n), ldw_(ldw), trans_(trans), packed_here_(can_pack && pack) {
    if constexpr (can_pack)
      if (packed_here_) packed_ = B::pack_b(trans, k, n, w, ldw);
  }
  /// C [m, n] = alpha * op(A) [m, k] * op(W) + beta * C.
  void multiply(bool trans_a, std::int64_t m, T alpha, const T* a, std::int64_t lda, T beta, T* c, std::int64_t ldc) const {
    multiply_corner(trans_a, m, k_, n_, alpha, a, lda, beta, c, ldc);
  }
  /// The same with op(W)'s top-left [k, n] corner (k <= its depth, n <= its width): C [m, n] =
  /// alpha * op(A) [m, k] * op(W)[:k, :n] + beta * C.
  void multiply_corner(bool trans_a, std::int64_t m, std::int64_t k, std::int64_t n, T alpha, const T* a, std::int64_t lda, T beta, T* c,
                       std::int64_t ldc) const {
    if (k > k_ || n > n_) fail<shape_error>("ReusedOperand::multiply_corner", "[", k, ", ", n, "] is outside the operand's [", k_, ", ", n_, "]");
    if constexpr (can_pack)
      if (packed_here_) return B::gemm_packed_b(trans_a, m, n, k, alpha, a, lda, packed_, beta, c, ldc);
    B::gemm(trans_a, trans_, m, n, k, alpha, a, lda, w_, ldw_, beta, c, ldc);
  }

 private:
  static constexpr bool can_pack = std::is_same_v<T, float> && std::is_same_v<B, cpu>;
  const T* w_ = nullptr;
  std::int64_t k_ = 0, n_ = 0, ldw_ = 0;
  bool trans_ = false, packed_here_ = false;
  std::conditional_t<can_pack, cpu::PackedB, char> packed_{};
};

}  // namespace dsm::detail
