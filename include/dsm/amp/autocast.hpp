// dsm/amp/autocast.hpp: mixed-precision scopes.
//
//   {
//     dsm::amp::autocast ac;                       // bf16 (or autocast ac(dsm::amp::Precision::f16))
//     auto out = model(ids);                       // GEMMs take bf16-rounded operands, sum in fp32
//     loss = lm_loss(out.logits, targets);         // softmax, norms, losses, routers stay fp32
//   }
//   loss.backward();                               // each GEMM's backward rounds as its forward did
//
// Inside the scope every float GEMM on this thread (matmul, bmm, linear, attention, MoE experts,
// LSTM) rounds its operands to bf16 or f16 as it packs them and accumulates the products in fp32:
// the numbers of a GEMM over bf16/f16 copies of the operands, without making the copies. The
// parameters stay fp32 (the master weights, which the optimizer updates); their low-precision
// working copies exist only inside the GEMM's packed panels. What stays fp32:
//   - elementwise work, softmax and log_softmax, RMSNorm and LayerNorm, every loss, the CRF,
//     reductions: they run on fp32 values (the CPU computes them in fp32 in any case);
//   - MoE routers (their gating GEMM opts out: routing decisions are sensitive to rounding);
//   - double tensors (autocast only lowers float work);
//   - GEMM results: the fp32 sums are kept, not rounded to bf16.
// A graph node remembers the mode its forward ran in, and backward runs it in that mode, so
// backward() may be called outside the scope (as PyTorch recommends).
//
// bf16 keeps fp32's exponent range and trains without loss scaling; f16 needs GradScaler
// (dsm/amp/grad_scaler.hpp), since its gradients underflow and its values overflow past 65504.
//
// Speed: where the CPU has AMX or AVX512-BF16 a bf16 kernel can use it; on AVX2 machines the
// rounding is done while packing and the products run on the fp32 FMA units, so autocast changes
// the numbers but not the speed there (docs/mixed-precision.md).
#pragma once

#include "../core/precision_mode.hpp"

namespace dsm::amp {

/// The low precision of an autocast scope.
enum class Precision { bf16, f16 };

/// A scope in which this thread's float GEMMs run on bf16 or f16 operands (see the header
/// comment). Scopes nest; `autocast ac(p, false)` turns autocast off inside an enclosing scope.
class [[nodiscard]] autocast {
 public:
  explicit autocast(Precision p = Precision::bf16, bool enabled = true)
      : scope_(!enabled ? GemmPrecision::fp32 : p == Precision::bf16 ? GemmPrecision::bf16 : GemmPrecision::f16) {}
  autocast(const autocast&) = delete;
  autocast& operator=(const autocast&) = delete;

 private:
  dsm::detail::GemmPrecisionScope scope_;
};

/// Whether this thread is inside an enabled autocast scope.
inline bool is_autocast_enabled() { return gemm_precision() != GemmPrecision::fp32; }

}  // namespace dsm::amp
