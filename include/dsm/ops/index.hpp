// dsm/ops/index.hpp: indexing ops: gather, scatter, scatter_add, index_select, index_add,
// embedding lookup, one_hot and masked_fill, with PyTorch's semantics.
//
//   auto picked = dsm::gather(logits, 1, labels.unsqueeze(1));        // [N, 1]
//   auto h      = dsm::embedding(table, token_ids);                    // ids [B, T] -> [B, T, D]
//   auto counts = dsm::scatter_add(zeros, 0, expert_ids, ones);
//   auto y      = dsm::masked_fill(scores, pad_mask, -INFINITY);
//
// Every index is checked before anything is read or written: an out-of-range index throws
// dsm::index_error naming the op, the index and the size, and leaves all tensors untouched.
// Accumulating ops (scatter_add, index_add) run in a fixed order and are deterministic.
#pragma once

#include <cstring>
#include <algorithm>
#include <limits>

#include "../expr/assign.hpp"
#include "../expr/operators.hpp"
#include "reduce.hpp"

namespace dsm {
namespace detail {

/// Throws index_error unless every value of `index` lies in [0, size).
template <class I, class B>
void check_indices(const char* op, const Tensor<I, B>& index, std::int64_t size, int dim) {
  static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>, "indices must be an integer tensor (int32 or int64)");
  if (index.numel() == 0) return;
  std::int64_t lo = 0, hi = 0;
  if constexpr (B::host_accessible) {  // one pass over the values (and no reduction kernels to compile)
    const Tensor<I, B> dense = index.contiguous();
    const I* p = dense.data();
    const auto [mn, mx] = std::minmax_element(p, p + dense.numel());
    lo = static_cast<std::int64_t>(*mn);
    hi = static_cast<std::int64_t>(*mx);
  } else {
    lo = static_cast<std::int64_t>(min(index).item());
    hi = static_cast<std::int64_t>(max(index).item());
  }
  if (lo < 0) fail<index_error>(op, "index ", lo, " is out of bounds for dimension ", dim, " with size ", size);
  if (hi >= size) fail<index_error>(op, "index ", hi, " is out of bounds for dimension ", dim, " with size ", size);
}

/// Checks the gather/scatter rule: index has x's rank and is no larger in any dimension but `dim`
/// (and no larger than src everywhere, for scatter).
template <class T, class I, class B>
void check_gather_shapes(const char* op, const Tensor<T, B>& x, int dim, const Tensor<I, B>& index, const Shape* src) {
  if (index.rank() != x.rank()) fail<shape_error>(op, "index ", index.shape(), " must have the same rank as the input ", x.shape());
  for (int d = 0; d < x.rank(); ++d) {
    if (d != dim && index.size(d) > x.size(d))
      fail<shape_error>(op, "index ", index.shape(), " is larger than the input ", x.shape(), " in dimension ", d);
    if (src && index.size(d) > (*src)[d]) fail<shape_error>(op, "index ", index.shape(), " is larger than the source ", *src, " in dimension ", d);
  }
}

/// Visits every position of `index` with offsets into (index, a, b), where `a` is the indexed
/// tensor: its offset along `dim` is left at 0 (callers add index * stride), while `b` is read or
/// written at the index's own position. Rows are whole columns along `dim` when `columns` is set,
/// so accumulation into one column stays in one thread and in index order.
template <class B, class F>
void visit_index(const Shape& shape, int dim, const Strides& si, Strides sa, const Strides& sb, bool columns, F f) {
  sa[dim] = 0;
  Shape perm_shape = shape;
  std::array<Strides, 3> st{si, sa, sb};
  if (columns) {  // move `dim` innermost
    perm_shape.erase(dim), perm_shape.push_back(shape[dim]);
    for (auto& s : st) {
      const std::int64_t v = s[dim];
      s.erase(dim), s.push_back(v);
    }
  }
  const auto plan = make_loop_plan<3>(perm_shape, st);
  const std::int64_t chunk = columns && plan.rows() == 1 ? std::numeric_limits<std::int64_t>::max() / 2 : 32768;
  run_loop_plan<B>(plan, [&](const std::array<std::int64_t, 3>& off, std::int64_t n, const std::array<std::int64_t, 3>& s) {
    for (std::int64_t j = 0; j < n; ++j) f(off[0] + j * s[0], off[1] + j * s[1], off[2] + j * s[2]);
  }, chunk);
}

template <bool Add, class T, class I, class B>
Tensor<T, B>& scatter_into(const char* op, Tensor<T, B>& out, std::int64_t dim0, const Tensor<I, B>& index, const Tensor<T, B>& src) {
  const int dim = wrap_dim(op, dim0, out.rank());
  const Shape src_shape = src.shape();
  check_gather_shapes(op, out, dim, index, &src_shape);
  check_indices(op, index, out.size(dim), dim);
  const I* ip = index.data();
  const T* sp = src.data();
  T* op_ = out.data();
  const std::int64_t ostride = out.strides()[dim];
  visit_index<B>(index.shape(), dim, index.strides(), out.strides(), src.strides(), true, [&](std::int64_t oi, std::int64_t oo, std::int64_t os) {
    const std::int64_t k = static_cast<std::int64_t>(ip[oi]);
    T& dst = op_[oo + k * ostride];
    const T v = sp[os];
    if constexpr (Add) dst = convert<T>(static_cast<compute_t<T>>(dst) + static_cast<compute_t<T>>(v));
    else dst = v;
  });
  return out;
}
}  // namespace detail

/// out[i][j] = x[index[i][j]][j] for dim 0 (and likewise for any dim); out has index's shape.
template <class T, class I, class B>
Tensor<T, B> gather(const Tensor<T, B>& x, std::int64_t dim0, const Tensor<I, B>& index) {
  const int dim = wrap_dim("gather", dim0, x.rank());
  detail::check_gather_shapes("gather", x, dim, index, nullptr);
  detail::check_indices("gather", index, x.size(dim), dim);
  Tensor<T, B> out(index.shape());
  const I* ip = index.data();
  const T* xp = x.data();
  T* op = out.data();
  const std::int64_t xstride = x.strides()[dim];
  detail::visit_index<B>(index.shape(), dim, index.strides(), x.strides(), out.strides(), false, [&](std::int64_t oi, std::int64_t ox, std::int64_t oo) {
    op[oo] = xp[ox + static_cast<std::int64_t>(ip[oi]) * xstride];
  });
  return out;
}

/// In place: self[index[i][j]][j] = src[i][j] (dim 0). Duplicate indices: the last write wins.
template <class T, class I, class B>
Tensor<T, B>& scatter_(Tensor<T, B>& self, std::int64_t dim, const Tensor<I, B>& index, const Tensor<T, B>& src) {
  return detail::scatter_into<false>("scatter", self, dim, index, src);
}
/// In place: self[index[i][j]][j] += src[i][j] (dim 0), accumulated in index order.
template <class T, class I, class B>
Tensor<T, B>& scatter_add_(Tensor<T, B>& self, std::int64_t dim, const Tensor<I, B>& index, const Tensor<T, B>& src) {
  return detail::scatter_into<true>("scatter_add", self, dim, index, src);
}
/// Out-of-place scatter: a copy of x with src written at the indexed positions.
template <class T, class I, class B>
Tensor<T, B> scatter(const Tensor<T, B>& x, std::int64_t dim, const Tensor<I, B>& index, const Tensor<T, B>& src) {
  Tensor<T, B> out = x.clone();
  return detail::scatter_into<false>("scatter", out, dim, index, src);
}
/// Out-of-place scatter_add.
template <class T, class I, class B>
Tensor<T, B> scatter_add(const Tensor<T, B>& x, std::int64_t dim, const Tensor<I, B>& index, const Tensor<T, B>& src) {
  Tensor<T, B> out = x.clone();
  return detail::scatter_into<true>("scatter_add", out, dim, index, src);
}

/// The slices of x at the positions listed in the 1-D `index` along `dim`.
template <class T, class I, class B>
Tensor<T, B> index_select(const Tensor<T, B>& x, std::int64_t dim0, const Tensor<I, B>& index) {
  const int dim = wrap_dim("index_select", dim0, x.rank());
  if (index.rank() > 1) fail<shape_error>("index_select", "index must be 1-D, got ", index.shape());
  detail::check_indices("index_select", index, x.rank() ? x.size(dim) : 1, dim);
  const Tensor<I, B> idx = index.contiguous().reshape({-1});
  const std::int64_t n = idx.numel();
  Shape out_shape = x.shape();
  if (x.rank()) out_shape[dim] = n;
  Tensor<T, B> out(out_shape);
  if (x.rank() == 0) return out.copy_(x);
  const I* ip = idx.data();
  if (dim == 0 && x.is_contiguous()) {  // rows of contiguous memory: parallel row copies
    const std::int64_t row = n ? out.numel() / n : 0;
    const T* xp = x.data();
    T* op = out.data();
    B::parallel_for(n, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(row, 1)), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) std::memcpy(op + i * row, xp + static_cast<std::int64_t>(ip[i]) * row, static_cast<std::size_t>(row) * sizeof(T));
    });
    return out;
  }
  for (std::int64_t i = 0; i < n; ++i) out.select(dim, i).copy_(x.select(dim, static_cast<std::int64_t>(ip[i])));
  return out;
}

/// In place: self.select(dim, index[i]) += alpha * src.select(dim, i), in the order of i.
template <class T, class I, class B>
Tensor<T, B>& index_add_(Tensor<T, B>& self, std::int64_t dim0, const Tensor<I, B>& index, const Tensor<T, B>& src, double alpha = 1.0) {
  const int dim = wrap_dim("index_add", dim0, self.rank());
  if (index.rank() > 1) fail<shape_error>("index_add", "index must be 1-D, got ", index.shape());
  Shape want = self.shape();
  if (self.rank()) want[dim] = index.numel();
  if (!(src.shape() == want)) fail<shape_error>("index_add", "source ", src.shape(), " must have shape ", want, " for input ", self.shape(), " and ", index.numel(), " indices");
  detail::check_indices("index_add", index, self.rank() ? self.size(dim) : 1, dim);
  const Tensor<I, B> idx = index.contiguous().reshape({-1});
  if (dim == 0 && self.rank() > 0 && self.is_contiguous() && src.is_contiguous()) {
    // Rows of contiguous memory (the embedding-gradient case): threads split the columns and
    // each adds the source rows in index order, so there is no race and the sum is deterministic.
    const std::int64_t row = self.size(0) ? self.numel() / self.size(0) : 0, n = idx.numel();
    const I* ip = idx.data();
    const T* sp = src.data();
    T* dp = self.data();
    const auto a = static_cast<compute_t<T>>(alpha);
    B::parallel_for(row, std::max<std::int64_t>(64, 16384 / std::max<std::int64_t>(n, 1)), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = 0; i < n; ++i) {
        T* d = dp + static_cast<std::int64_t>(ip[i]) * row;
        const T* q = sp + i * row;
        for (std::int64_t j = b; j < e; ++j) d[j] = convert<T>(static_cast<compute_t<T>>(d[j]) + a * static_cast<compute_t<T>>(q[j]));
      }
    });
    return self;
  }
  for (std::int64_t i = 0; i < idx.numel(); ++i) {
    Tensor<T, B> dst = self.rank() ? self.select(dim, static_cast<std::int64_t>(idx.data()[i])) : self;
    const Tensor<T, B> s = self.rank() ? src.select(dim, i) : src;
    if (alpha == 1.0) dst += s;
    else dst += s * static_cast<compute_t<T>>(alpha);
  }
  return self;
}
/// Out-of-place index_add.
template <class T, class I, class B>
Tensor<T, B> index_add(const Tensor<T, B>& x, std::int64_t dim, const Tensor<I, B>& index, const Tensor<T, B>& src, double alpha = 1.0) {
  Tensor<T, B> out = x.clone();
  return index_add_(out, dim, index, src, alpha);
}

/// Rows of `weight` [num_embeddings, dim] for each id: ids of shape S give [S..., dim].
template <class T, class I, class B>
Tensor<T, B> embedding(const Tensor<T, B>& weight, const Tensor<I, B>& ids) {
  if (weight.rank() != 2) fail<shape_error>("embedding", "weight must be [num_embeddings, dim], got ", weight.shape());
  if (ids.numel() > 0) {
    const auto lo = static_cast<std::int64_t>(min(ids).item()), hi = static_cast<std::int64_t>(max(ids).item());
    if (lo < 0 || hi >= weight.size(0))
      fail<index_error>("embedding", "index ", lo < 0 ? lo : hi, " is out of range for ", weight.size(0), " embeddings");
  }
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.size(1));
  return index_select(weight, 0, ids.reshape({-1})).view(out_shape);
}

/// One-hot encoding: ids of shape S give [S..., num_classes] with a 1 at each id
/// (num_classes = -1 takes max(ids) + 1).
template <class Out = std::int64_t, class I, class B>
Tensor<Out, B> one_hot(const Tensor<I, B>& ids, std::int64_t num_classes = -1) {
  static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>, "one_hot: ids must be an integer tensor");
  std::int64_t lo = 0, hi = -1;
  if (ids.numel()) lo = static_cast<std::int64_t>(min(ids).item()), hi = static_cast<std::int64_t>(max(ids).item());
  if (num_classes < 0) num_classes = hi + 1;
  if (lo < 0 || hi >= num_classes) fail<index_error>("one_hot", "class ", lo < 0 ? lo : hi, " is out of range for ", num_classes, " classes");
  Shape out_shape = ids.shape();
  out_shape.push_back(num_classes);
  auto out = Tensor<Out, B>::zeros(out_shape);
  const Tensor<I, B> flat = ids.contiguous().reshape({-1});
  Out* o = out.data();
  const I* ip = flat.data();
  B::parallel_for(flat.numel(), 4096, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) o[i * num_classes + static_cast<std::int64_t>(ip[i])] = Out(1);
  });
  return out;
}

/// A copy of x with `value` wherever `mask` (broadcast to x's shape) is true.
template <class T, class B>
Tensor<T, B> masked_fill(const Tensor<T, B>& x, const Tensor<bool, B>& mask, double value) {
  if (!broadcasts_to(mask.shape(), x.shape())) fail<shape_error>("masked_fill", "mask ", mask.shape(), " cannot be broadcast to ", x.shape());
  return Tensor<T, B>(where(mask, static_cast<compute_t<T>>(value), x));
}
/// In place: x[mask] = value.
template <class T, class B>
Tensor<T, B>& masked_fill_(Tensor<T, B>& x, const Tensor<bool, B>& mask, double value) {
  if (!broadcasts_to(mask.shape(), x.shape())) fail<shape_error>("masked_fill_", "mask ", mask.shape(), " cannot be broadcast to ", x.shape());
  x = where(mask, static_cast<compute_t<T>>(value), x);
  return x;
}

}  // namespace dsm
