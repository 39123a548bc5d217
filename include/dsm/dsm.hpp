// dsm/dsm.hpp: the umbrella header. Everything that needs no optional dependency.
//
//   #include <dsm/dsm.hpp>
//   auto a = dsm::Tensor<float>::randn({1024});
//   dsm::Tensor<float> y = dsm::relu(a * 2.f + 1.f);
#pragma once

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/dtype.hpp"
#include "core/shape.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "core/print.hpp"
#include "backend/cpu.hpp"
#include "expr/functors.hpp"
#include "expr/node.hpp"
#include "expr/assign.hpp"
#include "expr/operators.hpp"
#include "ops/matmul.hpp"
#include "ops/reduce.hpp"
#include "ops/softmax.hpp"
#include "ops/sort.hpp"
#include "ops/index.hpp"
#include "ops/join.hpp"
#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "moe/moe.hpp"
#include "optim/optim.hpp"
#include "amp/amp.hpp"
#include "io/io.hpp"
#include "models/transformer.hpp"
#include "models/tagger.hpp"

// Linked with dsm::precompiled: its instantiations are declared extern (see precompiled.hpp).
#if defined(DSM_PRECOMPILED) && DSM_PRECOMPILED
#include "precompiled.hpp"
#endif
