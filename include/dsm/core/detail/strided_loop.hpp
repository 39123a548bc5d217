// dsm/core/detail/strided_loop.hpp: the loop every elementwise pass runs on.
//
// A pass visits all elements of a shape for N operands, each with its own strides (0 where it is
// broadcast). The plan first merges adjacent dimensions that are contiguous for every operand
// (a contiguous tensor collapses to one dimension) and drops size-1 dimensions; the loop then
// walks "rows" (all dimensions but the last) in parallel chunks, computing each row's operand
// offsets, and hands each row to a callback that runs the innermost loop.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "../shape.hpp"

namespace dsm::detail {

template <int N>
struct LoopPlan {
  Shape shape;                   // collapsed shape, rank >= 1
  std::array<Strides, N> strides;  // per operand, same rank as shape

  std::int64_t inner() const { return shape[shape.rank() - 1]; }
  std::int64_t rows() const { return shape.numel() / (inner() ? inner() : 1); }

  /// Offsets of row `row` for every operand, and the row's multi-index (outer dims only) in idx.
  void row_offsets(std::int64_t row, std::int64_t* idx, std::int64_t* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = shape.rank() - 2; d >= 0; --d) {
      idx[d] = row % shape[d];
      row /= shape[d];
      for (int k = 0; k < N; ++k) off[k] += idx[d] * strides[k][d];
    }
  }
  /// Advances idx to the next row and updates the offsets incrementally (an odometer).
  void next_row(std::int64_t* idx, std::int64_t* off) const {
    for (int d = shape.rank() - 2; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < N; ++k) off[k] += strides[k][d];
      if (idx[d] < shape[d]) return;
      for (int k = 0; k < N; ++k) off[k] -= idx[d] * strides[k][d];
      idx[d] = 0;
    }
  }
};

/// Builds the collapsed plan. `strides[k]` must already be broadcast to `shape` (same rank).
template <int N>
LoopPlan<N> make_loop_plan(const Shape& shape, const std::array<Strides, N>& strides) {
  LoopPlan<N> p;
  // Keep only the dimensions of size != 1 (they contribute nothing to any offset).
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] == 1) continue;
    const int r = p.shape.rank();
    bool merge = r > 0;
    for (int k = 0; k < N && merge; ++k) merge = p.strides[k][r - 1] == strides[k][d] * shape[d];
    if (merge) {  // previous dim steps exactly over this one for every operand: fuse them
      p.shape[r - 1] *= shape[d];
      for (int k = 0; k < N; ++k) p.strides[k][r - 1] = strides[k][d];
    } else {
      p.shape.push_back(shape[d]);
      for (int k = 0; k < N; ++k) p.strides[k].push_back(strides[k][d]);
    }
  }
  if (p.shape.rank() == 0) {  // a scalar or all-ones shape: one row of one element
    p.shape.push_back(shape.numel());
    for (int k = 0; k < N; ++k) p.strides[k].push_back(0);
  }
  return p;
}

/// A row function behind a plain pointer: row(ctx, off, n, inner_strides).
template <int N>
using RowKernel = void (*)(const void*, const std::array<std::int64_t, N>&, std::int64_t, const std::array<std::int64_t, N>&);

/// Runs `row(ctx, off, n, inner_strides)` over every row of the plan, in parallel chunks of rows
/// sized so that each chunk holds at least `min_chunk_elems` elements; a plan of one long row is
/// split along the row instead. Compiled once per backend and operand count, not per expression:
/// only the row function is.
template <class B, int N>
void run_plan_rows(const LoopPlan<N>& p, RowKernel<N> row, const void* ctx, std::int64_t min_chunk_elems) {
  const std::int64_t rows = p.rows(), inner = p.inner();
  if (rows == 0 || inner == 0) return;
  std::array<std::int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = p.strides[k][p.shape.rank() - 1];
  const bool split_row = rows == 1;  // one long row: the chunks are pieces of it
  const std::int64_t units = split_row ? inner : rows, grain = split_row ? min_chunk_elems : min_chunk_elems / inner + 1;
  B::parallel_for(units, grain, [&](std::int64_t b, std::int64_t e) {
    std::int64_t idx[max_rank];
    std::array<std::int64_t, N> off;
    if (split_row) {
      for (int k = 0; k < N; ++k) off[k] = b * inner_strides[k];
    } else {
      p.row_offsets(b, idx, off.data());
    }
    const std::int64_t steps = split_row ? 1 : e - b, n = split_row ? e - b : inner;
    for (std::int64_t r = 0; r < steps; ++r) {
      if (r > 0) p.next_row(idx, off.data());
      row(ctx, off, n, inner_strides);
    }
  });
}

/// Runs `row_fn(off, n, inner_strides)` over every row of the plan (see run_plan_rows). The
/// expression's own code is one function, row_fn inlined into a trampoline: the row walk, the
/// chunking and the parallel region are shared by every expression with N operands (compiled per
/// expression, they were an eighth of a model TU's object code). One indirect call per row.
template <class B, int N, class RowFn>
void run_loop_plan(const LoopPlan<N>& p, RowFn&& row_fn, std::int64_t min_chunk_elems = 32768) {
  using Fn = std::remove_reference_t<RowFn>;
  const RowKernel<N> row = [](const void* ctx, const std::array<std::int64_t, N>& off, std::int64_t n, const std::array<std::int64_t, N>& st) {
    (*static_cast<const Fn*>(ctx))(off, n, st);
  };
  run_plan_rows<B, N>(p, row, static_cast<const void*>(std::addressof(row_fn)), min_chunk_elems);
}

}  // namespace dsm::detail
