// dsm/core/precision_mode.hpp: the per-thread precision of float GEMM operands, the state behind
// dsm::amp::autocast (dsm/amp/autocast.hpp, the public interface).
//
// It lives in core because the backends read it in their GEMMs and autograd records it in each
// graph node, so that a node's backward runs in the precision its forward ran in. Worker threads
// of dsm's parallel loops copy the calling thread's mode.
#pragma once

#include <cstdint>

namespace dsm {

/// What float GEMM operands are rounded to before their products are summed in fp32.
enum class GemmPrecision : std::uint8_t {
  fp32,  ///< no rounding (outside autocast)
  bf16,  ///< operands rounded to bfloat16
  f16,   ///< operands rounded to IEEE binary16 (values past 65504 become inf)
};

namespace detail {
inline GemmPrecision& gemm_precision_slot() {
  thread_local GemmPrecision mode = GemmPrecision::fp32;
  return mode;
}

/// Sets the calling thread's GEMM precision until the scope ends (scopes nest).
class [[nodiscard]] GemmPrecisionScope {
 public:
  explicit GemmPrecisionScope(GemmPrecision p) : previous_(gemm_precision_slot()) { gemm_precision_slot() = p; }
  ~GemmPrecisionScope() { gemm_precision_slot() = previous_; }
  GemmPrecisionScope(const GemmPrecisionScope&) = delete;
  GemmPrecisionScope& operator=(const GemmPrecisionScope&) = delete;

 private:
  GemmPrecision previous_;
};
}  // namespace detail

/// The calling thread's GEMM precision (fp32 unless inside dsm::amp::autocast).
inline GemmPrecision gemm_precision() { return detail::gemm_precision_slot(); }

}  // namespace dsm
