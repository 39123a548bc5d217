// bench/w7_common.hpp: the W7 workload (../shared/WORKLOADS.md): one training step of a byte-level
// MoE transformer LM, shared by the dsm and LibTorch sides.
#pragma once

#include <cstdint>

namespace w7 {
constexpr std::int64_t vocab = 256, d_model = 256, layers = 4, heads = 4, seq = 128, batch = 16;
constexpr std::int64_t experts = 8, top_k = 2, hidden = 512;
constexpr double lr = 1e-3, aux_loss_coef = 0.01;
}  // namespace w7
