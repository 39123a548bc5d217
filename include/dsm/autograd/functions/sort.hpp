// dsm/autograd/functions/sort.hpp: topk and sort on Vars. The values are a gather of the input at
// the chosen indices, so their gradient scatters back to those positions (the MoE router's gate
// weights get their gradient this way); the indices are plain integer tensors.
#pragma once

#include "../../ops/sort.hpp"
#include "index.hpp"

namespace dsm {

template <class T, class B>
struct VarValuesIndices {
  Var<T, B> values;
  Tensor<std::int64_t, B> indices;
};

/// The k largest (or smallest) entries along dim, lower index first on ties.
template <class T, class B>
VarValuesIndices<T, B> topk(const Var<T, B>& x, std::int64_t k, std::int64_t dim = -1, bool largest = true) {
  auto r = topk(x.value(), k, dim, largest);
  return {gather(x, dim, r.indices), std::move(r.indices)};
}

/// Stable sort along dim.
template <class T, class B>
VarValuesIndices<T, B> sort(const Var<T, B>& x, std::int64_t dim = -1, bool descending = false) {
  auto r = sort(x.value(), dim, descending);
  return {gather(x, dim, r.indices), std::move(r.indices)};
}

}  // namespace dsm
