// dsm/ops/detail/reduce_kernel.hpp: one reduction engine for sum, mean, max, argmax, logsumexp...
//
// A reducer describes a monoid over a State: init(), add(state, value, index), merge(a, b) with a
// before b, finish(state, count). The engine views the input as [kept..., reduced...], then runs
// either a row kernel (reduced elements contiguous per output) or a column kernel (reduced
// dimensions outermost, kept ones contiguous: accumulate whole rows of outputs at a time).
// Work is split into fixed-size chunks merged in order, so results do not depend on the number
// of threads.
#pragma once

#include <algorithm>
#include <vector>

#include "../../core/tensor.hpp"

namespace dsm::detail {

/// Dimension mask from a list (empty = all dimensions), with wrapping and duplicate checks.
inline std::uint32_t reduce_mask(const char* op, const Shape& dims, int rank) {
  if (dims.rank() == 0) return rank == 0 ? 0u : (1u << rank) - 1u;
  std::uint32_t mask = 0;
  for (int i = 0; i < dims.rank(); ++i) {
    const int d = wrap_dim(op, dims[i], rank);
    if (rank == 0) continue;
    if (mask & (1u << d)) fail<shape_error>(op, "dimension ", d, " appears more than once in ", dims);
    mask |= 1u << d;
  }
  return mask;
}

/// Output shape of a reduction over `mask`.
inline Shape reduced_shape(const Shape& in, std::uint32_t mask, bool keepdim) {
  Shape out;
  for (int d = 0; d < in.rank(); ++d) {
    if (!(mask & (1u << d))) out.push_back(in[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

constexpr std::int64_t reduce_chunk = 16384;  // elements per independently reduced chunk

template <class R, class Out, class T, class B>
Tensor<Out, B> reduce(const char* op, const R& red, const Tensor<T, B>& x, const Shape& dims, bool keepdim) {
  using State = typename R::State;
  const std::uint32_t mask = reduce_mask(op, dims, x.rank());
  Shape perm, kept_shape;
  std::int64_t count = 1;
  for (int d = 0; d < x.rank(); ++d)
    if (!(mask & (1u << d))) perm.push_back(d), kept_shape.push_back(x.size(d));
  for (int d = 0; d < x.rank(); ++d)
    if (mask & (1u << d)) perm.push_back(d), count *= x.size(d);
  const std::int64_t outer = kept_shape.numel();
  if (count == 0 && !R::allows_empty)
    fail<shape_error>(op, "cannot reduce over an empty dimension of a tensor of shape ", x.shape());

  Tensor<Out, B> out(reduced_shape(x.shape(), mask, keepdim));
  Out* o = out.data();
  const Tensor<T, B> xp = x.permute(perm);

  // Column kernel: the reduced dims are the outer ones and the kept ones are contiguous.
  const int nk = kept_shape.rank();
  bool kept_contig = nk > 0, red_outer = true;
  {
    std::int64_t expect = 1;
    for (int i = nk - 1; i >= 0; --i) {
      if (xp.shape()[i] != 1 && xp.strides()[i] != expect) kept_contig = false;
      expect *= xp.shape()[i];
    }
    // reduced dims must sit above the kept block, in row-major order
    for (int i = xp.rank() - 1; i >= nk; --i) {
      if (xp.shape()[i] != 1 && xp.strides()[i] != expect) red_outer = false;
      expect *= xp.shape()[i];
    }
  }
  if (kept_contig && red_outer && outer > 1 && x.is_contiguous()) {
    const T* base = x.data();
    B::parallel_for(outer, 256, [&](std::int64_t b, std::int64_t e) {
      std::vector<State> st(static_cast<std::size_t>(e - b), red.init());
      for (std::int64_t r = 0; r < count; ++r) {
        const T* row = base + r * outer;
        for (std::int64_t j = b; j < e; ++j) red.add(st[static_cast<std::size_t>(j - b)], static_cast<compute_t<T>>(row[j]), r);
      }
      for (std::int64_t j = b; j < e; ++j) o[j] = red.finish(st[static_cast<std::size_t>(j - b)], count);
    });
    return out;
  }

  // Row kernel: one contiguous row of `count` elements per output.
  const Tensor<T, B> rows = xp.contiguous();
  const T* base = rows.data();
  auto reduce_range = [&](const T* p, std::int64_t begin, std::int64_t end) {
    State s = red.init();
    for (std::int64_t i = begin; i < end; ++i) red.add(s, static_cast<compute_t<T>>(p[i]), i);
    return s;
  };
  if (outer == 1 && count > 2 * reduce_chunk) {
    // One long row: reduce fixed chunks in parallel, merge them in order.
    const std::int64_t nchunks = (count + reduce_chunk - 1) / reduce_chunk;
    std::vector<State> partial(static_cast<std::size_t>(nchunks));
    B::parallel_for(nchunks, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c)
        partial[static_cast<std::size_t>(c)] = reduce_range(base, c * reduce_chunk, std::min(count, (c + 1) * reduce_chunk));
    });
    State s = partial[0];
    for (std::size_t c = 1; c < partial.size(); ++c) s = red.merge(s, partial[c]);
    o[0] = red.finish(s, count);
    return out;
  }
  B::parallel_for(outer, std::max<std::int64_t>(1, reduce_chunk / std::max<std::int64_t>(count, 1)), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t j = b; j < e; ++j) o[j] = red.finish(reduce_range(base + j * count, 0, count), count);
  });
  return out;
}

}  // namespace dsm::detail
