// dsm::precompiled: the library's heavy float code compiled once instead of in every translation unit.
//
// dsm stays header-only; this is an optional build of it. The CMake target dsm::precompiled is a
// static library holding explicit instantiations of the CPU code a model spends its compile time
// on (GEMM, matmul, reductions, attention, LSTM, CRF, the MoE layer's parts, the optimizers, the
// configuration-independent parts of the models, and modules and models configured at run time),
// for float, plus the generic ops for bf16. It
// defines DSM_PRECOMPILED for its users, and then <dsm/dsm.hpp> ends by declaring those
// instantiations `extern template`: a user's TU neither instantiates nor optimizes them and links
// the library's copies instead. A training step of the W7 model compiles in about half the time.
//
//   target_link_libraries(my_app PRIVATE dsm::precompiled)   # instead of dsm::dsm
//
// The library must be compiled with the same configuration macros and the same target
// architecture as its users (the project's own build: -march=native when DSM_NATIVE is on). What
// is not listed here (double, other index types, the configuration-specialized modules themselves)
// is still instantiated in the user's TU as usual. The lists are in dsm/precompiled/*.inc.
#pragma once

#include "dsm.hpp"

#define DSM_INSTANCE extern template
#define DSM_T float
#include "precompiled/ops.inc"
#undef DSM_T
#define DSM_T bf16
#include "precompiled/ops.inc"
#undef DSM_T
#include "precompiled/nn.inc"
#include "precompiled/models.inc"
#undef DSM_INSTANCE
