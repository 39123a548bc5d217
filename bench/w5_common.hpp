// bench/w5_common.hpp: the W5 workload (../shared/WORKLOADS.md): a BiLSTM-CRF tagger's training
// step and its decoding, shared by the dsm and LibTorch sides.
#pragma once

#include <cstdint>

namespace w5 {
constexpr std::int64_t vocab = 5000, embedding = 100, hidden = 128, tags = 20, batch = 32, seq = 32;
constexpr double lr = 1e-3;
}  // namespace w5
