// tests/support/gradcheck.hpp: shorthands for gradchecking in doctest.
#pragma once

#include <doctest/doctest.h>

#include <vector>

#include <dsm/dsm.hpp>

namespace dsm_test {
using GradVar = dsm::Var<double>;
using GradInputs = std::vector<GradVar>;

/// A double leaf requiring a gradient, N(0, 1) from `seed`.
inline GradVar grad_randn(const dsm::Shape& s, std::uint64_t seed) {
  dsm::Generator gen(seed);
  return GradVar(dsm::Tensor<double>::randn(s, gen), true);
}
}  // namespace dsm_test

/// Checks f's backward on the listed inputs against finite differences, reporting the first miss.
#define DSM_GRADCHECK(F, ...)                                                    \
  do {                                                                           \
    const auto dsm_gradcheck_r = dsm::gradcheck(F, dsm_test::GradInputs{__VA_ARGS__}); \
    CHECK_MESSAGE(dsm_gradcheck_r.ok, dsm_gradcheck_r.message);                  \
  } while (0)
