// bench/w3_common.hpp: the W3 workload (../shared/WORKLOADS.md), shared by the dsm and LibTorch sides.
#pragma once

#include <cstdint>

namespace w3 {
constexpr std::int64_t tokens = 4096, d_model = 512, n_experts = 8, top_k = 2, hidden = 1024;
constexpr double aux_loss_coef = 0.01;
/// FLOPs of the expert GEMMs per token: forward k * 3 GEMMs of 2 * d * h; backward twice that.
constexpr double forward_flops_per_token = top_k * 3 * 2.0 * d_model * hidden;
constexpr double train_flops_per_token = 3 * forward_flops_per_token;
}  // namespace w3
