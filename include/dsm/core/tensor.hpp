// dsm/core/tensor.hpp: Tensor<T, B>, a strided view of shared storage on backend B.
//
// A tensor is a handle: copying it shares the data (like torch.Tensor). Views (reshape, transpose,
// permute, slice, select, expand, squeeze...) share storage and cost no copy; contiguous() copies
// only when the layout requires it, clone() always copies.
//
//   auto x = dsm::Tensor<float>::arange(0.f, 6.f).reshape({2, 3});   // [[0,1,2],[3,4,5]]
//   auto c = x.transpose(0, 1);          // [3, 2] view, no copy
//   c(0, 1) = 10.f;                      // writes x(1, 0)
//   auto y = c.contiguous();             // copy into row-major layout
//   dsm::Tensor<float> z = x * 2.f + 1.f;   // expressions: see dsm/expr
//
// Assigning a Tensor to a Tensor rebinds the handle; assigning an expression (`out = a + b`,
// `out += a`) writes into out's elements. To copy data between tensors use copy_().
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <vector>

#include "concepts.hpp"
#include "detail/strided_loop.hpp"
#include "detail/transpose8x8.hpp"
#include "error.hpp"
#include "random.hpp"
#include "shape.hpp"
#include "storage.hpp"

namespace dsm {

struct cpu;  // the default backend, defined in dsm/backend/cpu.hpp

namespace detail {
/// High 64 bits of a 64x64-bit product, portably (used to map random words onto [0, range)).
DSM_HOST_DEVICE inline std::uint64_t mulhi64(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32, b_lo = b & 0xffffffffu, b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
  const std::uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffu) + lo_hi;
  return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

/// Strides for viewing (shape, strides) as `to` without copying, or nullopt when impossible
/// (the dimensions being merged or split are not laid out contiguously relative to each other).
inline std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& to) {
  Strides out = Shape::filled(to.rank(), 1);
  if (shape.numel() == 0 || shape.rank() == 0) return contiguous_strides(to);
  int view_d = to.rank() - 1;
  std::int64_t chunk_stride = strides[shape.rank() - 1];
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (int d = shape.rank() - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    // A chunk ends where the next-outer dimension does not continue this one contiguously.
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || to[view_d] == 1)) {
        out[view_d] = view_numel * chunk_stride;
        view_numel *= to[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_stride = strides[d - 1];
        tensor_numel = view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}
}  // namespace detail

template <Scalar T, class B = cpu>
class Tensor {
 public:
  using value_type = T;
  using backend_type = B;
  static constexpr bool is_expression = true;

  /// An undefined tensor (no storage); defined() is false.
  Tensor() = default;
  /// Uninitialized contiguous tensor of `shape`.
  explicit Tensor(const Shape& shape) : Tensor(std::make_shared<Storage<B>>(checked_bytes(shape)), shape, contiguous_strides(shape), 0) {}
  /// A view of `storage` (used by views and ops; offset and strides in elements).
  Tensor(std::shared_ptr<Storage<B>> storage, const Shape& shape, const Strides& strides, std::int64_t offset)
      : storage_(std::move(storage)), shape_(shape), strides_(strides), offset_(offset) {}
  /// Evaluates an expression into a new contiguous tensor (defined in dsm/expr/assign.hpp).
  template <Expression E>
  Tensor(const E& expr);  // NOLINT: implicit on purpose, `Tensor<float> y = a * b;`

  Tensor(const Tensor&) = default;
  Tensor(Tensor&&) noexcept = default;
  /// Rebinds this handle to `other`'s storage (no data is copied; see copy_()).
  Tensor& operator=(const Tensor&) = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  // ---- expression assignment: defined in dsm/expr/assign.hpp -----------------------------
  /// Writes the expression's values into this tensor's elements (broadcast to its shape).
  /// (A Tensor argument picks the handle-rebinding copy assignment above instead.)
  template <Expression E>
  Tensor& operator=(const E& expr);
  template <class E> Tensor& operator+=(const E& rhs);
  template <class E> Tensor& operator-=(const E& rhs);
  template <class E> Tensor& operator*=(const E& rhs);
  template <class E> Tensor& operator/=(const E& rhs);

  // ---- factories ------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape) { return Tensor(shape); }
  static Tensor zeros(const Shape& shape) { return full(shape, T(0)); }
  static Tensor ones(const Shape& shape) { return full(shape, T(1)); }
  static Tensor full(const Shape& shape, T value) {
    Tensor t(shape);
    t.fill_(value);
    return t;
  }
  /// A rank-0 tensor holding `value`.
  static Tensor scalar(T value) { return full(Shape{}, value); }
  /// [start, end) in steps of `step`, as torch.arange.
  static Tensor arange(T end) { return arange(T(0), end, T(1)); }
  static Tensor arange(T start, T end, T step = T(1)) {
    using C = double;
    const C s = C(compute_t<T>(start)), e = C(compute_t<T>(end)), st = C(compute_t<T>(step));
    if (st == 0) fail<config_error>("arange", "step must be nonzero");
    if ((st > 0 && e < s) || (st < 0 && e > s))
      fail<config_error>("arange", "upper bound ", e, " and step ", st, " are inconsistent with start ", s);
    const auto n = static_cast<std::int64_t>(std::ceil((e - s) / st));
    Tensor t(Shape{n});
    t.fill_indexed([=](std::int64_t i) { return convert<T>(s + st * static_cast<C>(i)); });
    return t;
  }
  /// `steps` evenly spaced values from start to end inclusive, as torch.linspace.
  static Tensor linspace(double start, double end, std::int64_t steps) requires FloatingScalar<T> {
    if (steps < 0) fail<config_error>("linspace", "number of steps must be non-negative, got ", steps);
    Tensor t(Shape{steps});
    const double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    // Fill from both ends so the last value is exactly `end` (a single step gives `start`).
    const std::int64_t half = steps > 1 ? steps / 2 : 1;
    t.fill_indexed([=](std::int64_t i) {
      return convert<T>(i < half ? start + step * static_cast<double>(i) : end - step * static_cast<double>(steps - 1 - i));
    });
    return t;
  }
  /// A 1-D tensor from a braced list: Tensor<float>::from({1, 2, 3}).
  static Tensor from(std::initializer_list<T> values) { return from_range(values, Shape{static_cast<std::int64_t>(values.size())}); }
  /// A 2-D tensor from nested braced lists; every row must have the same length.
  static Tensor from(std::initializer_list<std::initializer_list<T>> rows) {
    const auto cols = rows.size() ? static_cast<std::int64_t>(rows.begin()->size()) : 0;
    std::vector<T> flat;
    for (const auto& r : rows) {
      if (static_cast<std::int64_t>(r.size()) != cols) fail<shape_error>("Tensor::from", "rows have different lengths: ", cols, " and ", r.size());
      flat.insert(flat.end(), r.begin(), r.end());
    }
    return from_range(flat, Shape{static_cast<std::int64_t>(rows.size()), cols});
  }
  /// A tensor of `shape` (1-D of the range's length when empty) from any range of convertible values.
  template <std::ranges::input_range R>
  static Tensor from_range(R&& range, Shape shape = {}) requires B::host_accessible {
    std::vector<T> values;
    for (auto&& v : range) values.push_back(static_cast<T>(v));
    const auto n = static_cast<std::int64_t>(values.size());
    if (shape.rank() == 0 && n != 1) shape = Shape{n};
    if (shape.numel() != n) fail<shape_error>("Tensor::from_range", "shape ", shape, " needs ", shape.numel(), " values, got ", n);
    Tensor t(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  /// Borrows external memory; `release` (optional) runs when the last view is gone.
  static Tensor from_blob(T* data, const Shape& shape, std::function<void(void*)> release = {}) {
    auto st = std::make_shared<Storage<B>>(static_cast<void*>(data), static_cast<std::size_t>(shape.numel()) * sizeof(T), std::move(release));
    return Tensor(std::move(st), shape, contiguous_strides(shape), 0);
  }
  /// Uniform values in [0, 1). Element i comes from Philox block offset + i / per_block.
  static Tensor rand(const Shape& shape, Generator& gen = default_generator()) requires FloatingScalar<T> {
    constexpr std::int64_t per = std::is_same_v<T, double> ? 2 : 4;  // values per Philox block
    Tensor t(shape);
    const std::uint64_t seed = gen.seed(), base = gen.reserve(blocks_for(shape.numel(), per));
    t.fill_indexed([=](std::int64_t i) {
      const Philox4 b = philox_block(seed, base + static_cast<std::uint64_t>(i / per));
      if constexpr (std::is_same_v<T, double>) {
        const int w = static_cast<int>(i % 2) * 2;
        return uniform_double(b.w[w], b.w[w + 1]);
      } else {
        const std::uint32_t u = b.w[i % 4];
        // Keep only as many bits as T's significand so the value never rounds up to 1.
        if constexpr (std::is_same_v<T, bf16>) return T(static_cast<float>(u >> 24) * 0x1p-8f);
        else if constexpr (std::is_same_v<T, f16>) return T(static_cast<float>(u >> 21) * 0x1p-11f);
        else return uniform_float(u);
      }
    });
    return t;
  }
  /// Standard normal values (Box-Muller on Philox words).
  static Tensor randn(const Shape& shape, Generator& gen = default_generator()) requires FloatingScalar<T> {
    constexpr std::int64_t per = std::is_same_v<T, double> ? 2 : 4;
    Tensor t(shape);
    const std::uint64_t seed = gen.seed(), base = gen.reserve(blocks_for(shape.numel(), per));
    t.fill_indexed([=](std::int64_t i) {
      const Philox4 b = philox_block(seed, base + static_cast<std::uint64_t>(i / per));
      if constexpr (std::is_same_v<T, double>) {
        double z0, z1;
        box_muller(b, z0, z1);
        return i % 2 ? z1 : z0;
      } else {
        float z0, z1;
        const int pair = static_cast<int>(i % 4) / 2 * 2;
        box_muller(b.w[pair], b.w[pair + 1], z0, z1);
        return T(i % 2 ? z1 : z0);
      }
    });
    return t;
  }
  /// Integers uniform in [low, high) (as torch.randint), any numeric element type.
  static Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen = default_generator()) {
    if (high <= low) fail<config_error>("randint", "empty range [", low, ", ", high, ")");
    const auto range = static_cast<std::uint64_t>(high - low);
    Tensor t(shape);
    const std::uint64_t seed = gen.seed(), base = gen.reserve(blocks_for(shape.numel(), 2));
    t.fill_indexed([=](std::int64_t i) {
      const Philox4 b = philox_block(seed, base + static_cast<std::uint64_t>(i / 2));
      const int w = static_cast<int>(i % 2) * 2;
      const std::uint64_t x = (static_cast<std::uint64_t>(b.w[w]) << 32) | b.w[w + 1];
      return convert<T>(low + static_cast<std::int64_t>(detail::mulhi64(x, range)));
    });
    return t;
  }

  // ---- properties -----------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  int dim() const { return shape_.rank(); }
  std::int64_t numel() const { return shape_.numel(); }
  std::int64_t size(std::int64_t d) const { return shape_[wrap_dim("size", d, rank())]; }
  std::int64_t stride(std::int64_t d) const { return strides_[wrap_dim("stride", d, rank())]; }
  std::int64_t offset() const { return offset_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }
  const std::shared_ptr<Storage<B>>& storage() const { return storage_; }
  /// Pointer to the first element (element (0, ..., 0)); strides apply from there.
  T* data() const { return storage_ ? static_cast<T*>(storage_->data()) + offset_ : nullptr; }
  /// True when the elements are laid out in row-major order without gaps (always, with none: as
  /// in PyTorch, an empty view's strides do not matter).
  bool is_contiguous() const {
    if (numel() == 0) return true;
    std::int64_t expected = 1;
    for (int d = rank() - 1; d >= 0; --d) {
      if (shape_[d] == 1) continue;
      if (strides_[d] != expected) return false;
      expected *= shape_[d];
    }
    return true;
  }

  // ---- element access (host backends) --------------------------------------------------------
  /// Unchecked element reference: t(i, j, k). Requires one index per dimension.
  template <std::integral... I>
  T& operator()(I... idx) const requires B::host_accessible {
    const std::int64_t ix[] = {0, static_cast<std::int64_t>(idx)...};
    std::int64_t off = 0;
    for (int d = 0; d < static_cast<int>(sizeof...(I)); ++d) off += ix[d + 1] * strides_[d];
    return data()[off];
  }
  /// Bounds-checked element reference; negative indices count from the end.
  T& at(std::initializer_list<std::int64_t> idx) const requires B::host_accessible {
    if (static_cast<int>(idx.size()) != rank()) fail<index_error>("at", "got ", idx.size(), " indices for a tensor of shape ", shape_);
    std::int64_t off = 0;
    int d = 0;
    for (std::int64_t i : idx) {
      if (i < -shape_[d] || i >= shape_[d]) fail<index_error>("at", "index ", i, " is out of range for dimension ", d, " of size ", shape_[d]);
      off += (i < 0 ? i + shape_[d] : i) * strides_[d];
      ++d;
    }
    return data()[off];
  }
  /// The value of a one-element tensor.
  T item() const requires B::host_accessible {
    if (numel() != 1) fail<shape_error>("item", "tensor of shape ", shape_, " has ", numel(), " elements, not 1");
    return data()[0];
  }
  /// All elements in row-major order, as a std::vector (handy in tests and I/O).
  std::vector<T> to_vector() const requires B::host_accessible {
    const Tensor c = contiguous();
    return std::vector<T>(c.data(), c.data() + numel());
  }

  // ---- views (share storage) ------------------------------------------------------------------
  /// Same elements with a new shape (one entry may be -1); throws if the strides do not allow it.
  Tensor view(Shape to) const {
    to = infer_shape("view", to);
    auto st = detail::view_strides(shape_, strides_, to);
    if (!st) fail<shape_error>("view", "shape ", to, " is not compatible with the strides ", strides_, " of a ", shape_, " tensor; use reshape() to copy");
    return Tensor(storage_, to, *st, offset_);
  }
  /// As view() when possible, else a contiguous copy with the new shape.
  Tensor reshape(Shape to) const {
    to = infer_shape("reshape", to);
    if (auto st = detail::view_strides(shape_, strides_, to)) return Tensor(storage_, to, *st, offset_);
    return clone().view(to);
  }
  Tensor transpose(std::int64_t d0, std::int64_t d1) const {
    const int a = wrap_dim("transpose", d0, rank()), b = wrap_dim("transpose", d1, rank());
    Tensor t = *this;
    std::swap(t.shape_[a], t.shape_[b]);
    std::swap(t.strides_[a], t.strides_[b]);
    return t;
  }
  /// Transpose of a matrix (rank <= 2), as torch's t().
  Tensor t() const {
    if (rank() > 2) fail<shape_error>("t", "expects a tensor of rank <= 2, got ", shape_);
    return rank() == 2 ? transpose(0, 1) : *this;
  }
  Tensor permute(std::initializer_list<std::int64_t> dims) const { return permute(Shape(std::span<const std::int64_t>(dims.begin(), dims.size()))); }
  Tensor permute(const Shape& dims) const {
    if (dims.rank() != rank()) fail<shape_error>("permute", "got ", dims.rank(), " dimensions ", dims, " for a tensor of rank ", rank());
    Tensor t = *this;
    bool seen[max_rank] = {};
    for (int i = 0; i < rank(); ++i) {
      const int d = wrap_dim("permute", dims[i], rank());
      if (seen[d]) fail<shape_error>("permute", "dimension ", d, " appears twice in ", dims);
      seen[d] = true;
      t.shape_[i] = shape_[d];
      t.strides_[i] = strides_[d];
    }
    return t;
  }
  /// Elements [start, start + length) along `dim`.
  Tensor narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const {
    const int d = wrap_dim("narrow", dim, rank());
    if (start < 0) start += shape_[d];
    if (start < 0 || length < 0 || start + length > shape_[d])
      fail<index_error>("narrow", "range [", start, ", ", start + length, ") is out of bounds for dimension ", d, " of size ", shape_[d]);
    Tensor t = *this;
    t.offset_ += start * strides_[d];
    t.shape_[d] = length;
    return t;
  }
  /// Python-style slice start:end:step along `dim` (negative bounds count from the end, clamped).
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const {
    const int d = wrap_dim("slice", dim, rank());
    if (step <= 0) fail<index_error>("slice", "step must be positive, got ", step);
    const std::int64_t n = shape_[d];
    auto clampi = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
    start = clampi(start);
    end = std::max(clampi(end), start);
    Tensor t = *this;
    t.offset_ += start * strides_[d];
    t.shape_[d] = (end - start + step - 1) / step;
    t.strides_[d] *= step;
    return t;
  }
  /// The slice at `index` along `dim`, with that dimension removed.
  Tensor select(std::int64_t dim, std::int64_t index) const {
    const int d = wrap_dim("select", dim, rank());
    if (index < -shape_[d] || index >= shape_[d]) fail<index_error>("select", "index ", index, " is out of range for dimension ", d, " of size ", shape_[d]);
    if (index < 0) index += shape_[d];
    Tensor t = *this;
    t.offset_ += index * strides_[d];
    t.shape_.erase(d);
    t.strides_.erase(d);
    return t;
  }
  /// Broadcast view to `to` (size-1 dimensions repeat with stride 0; -1 keeps a size).
  Tensor expand(Shape to) const {
    if (to.rank() < rank()) fail<shape_error>("expand", "cannot expand ", shape_, " to fewer dimensions ", to);
    Tensor t = *this;
    t.shape_ = to;
    t.strides_ = Shape::filled(to.rank(), 0);
    const int lead = to.rank() - rank();
    for (int i = 0; i < to.rank(); ++i) {
      if (i < lead) {
        if (to[i] < 0) fail<shape_error>("expand", "-1 is not allowed for the new leading dimension ", i);
        continue;
      }
      const std::int64_t have = shape_[i - lead];
      if (to[i] == -1) t.shape_[i] = have;
      else if (have != to[i] && have != 1) fail<shape_error>("expand", "cannot expand ", shape_, " to ", to, ": dimension ", i, " has size ", have);
      t.strides_[i] = t.shape_[i] == have && have != 1 ? strides_[i - lead] : 0;
    }
    return t;
  }
  template <class U, class C>
  Tensor expand_as(const Tensor<U, C>& other) const { return expand(other.shape()); }
  /// Removes every dimension of size 1.
  Tensor squeeze() const {
    Tensor t = *this;
    for (int d = rank() - 1; d >= 0; --d)
      if (shape_[d] == 1) {
        t.shape_.erase(d);
        t.strides_.erase(d);
      }
    return t;
  }
  /// Removes dimension `dim` if its size is 1 (otherwise returns the same view, as PyTorch).
  Tensor squeeze(std::int64_t dim) const {
    const int d = wrap_dim("squeeze", dim, rank());
    if (rank() == 0 || shape_[d] != 1) return *this;
    Tensor t = *this;
    t.shape_.erase(d);
    t.strides_.erase(d);
    return t;
  }
  /// Inserts a dimension of size 1 at `dim` (in [-rank-1, rank]).
  Tensor unsqueeze(std::int64_t dim) const {
    const int d = wrap_dim("unsqueeze", dim, rank() + 1);
    if (rank() == max_rank) fail<shape_error>("unsqueeze", "tensor already has the maximum rank ", max_rank);
    Tensor t = *this;
    const std::int64_t st = d < rank() ? shape_[d] * strides_[d] : 1;
    t.shape_.insert(d, 1);
    t.strides_.insert(d, st);
    return t;
  }
  /// Merges dimensions [start, end] into one (a view when possible, else a copy).
  Tensor flatten(std::int64_t start = 0, std::int64_t end = -1) const {
    if (rank() == 0) return reshape({1});
    const int s = wrap_dim("flatten", start, rank()), e = wrap_dim("flatten", end, rank());
    if (s > e) fail<index_error>("flatten", "start dimension ", s, " comes after end dimension ", e);
    Shape to;
    for (int d = 0; d < s; ++d) to.push_back(shape_[d]);
    std::int64_t m = 1;
    for (int d = s; d <= e; ++d) m *= shape_[d];
    to.push_back(m);
    for (int d = e + 1; d < rank(); ++d) to.push_back(shape_[d]);
    return reshape(to);
  }

  // ---- copies -----------------------------------------------------------------------------------
  /// This tensor if already contiguous, else a contiguous copy.
  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }
  /// A contiguous copy with its own storage.
  Tensor clone() const {
    Tensor t(shape_);
    t.copy_(*this);
    return t;
  }
  /// A contiguous copy converted to element type U (rounding to nearest even for bf16/f16).
  template <Scalar U>
  Tensor<U, B> to() const {
    Tensor<U, B> t(shape_);
    t.copy_(*this);
    return t;
  }
  /// Copies (and converts) `src`, broadcast to this shape, into this tensor's elements.
  template <Scalar U>
  const Tensor& copy_(const Tensor<U, B>& src) const {
    if (!broadcasts_to(src.shape(), shape_)) fail<shape_error>("copy_", "source of shape ", src.shape(), " cannot be broadcast to ", shape_);
    if (numel() == 0) return *this;
    // Copying a tensor into an overlapping view of itself would read values already overwritten.
    if (static_cast<const void*>(src.storage().get()) == static_cast<const void*>(storage_.get()) &&
        (src.offset() != offset_ || !(src.strides() == strides_) || !(src.shape() == shape_)))
      return copy_(src.clone());
    if constexpr (std::is_same_v<B, cpu>) {
      // A transposed matrix (a .t() view) into a contiguous one. Row by row, every element read
      // touches another cache line, and at a power-of-two row length those lines share a few L1
      // sets (1.7 ns an element from a [228, 512] source); 16 x 16 tiles keep the 16 source
      // lines of a tile in L1 (0.45 ns; 32 x 32 tiles still thrash: 32 lines 2 KB apart fall in
      // two sets).
      if (rank() == 2 && is_contiguous() && src.shape() == shape_ && src.stride(0) == 1 && src.stride(1) != 1 && shape_[0] >= 16 && shape_[1] >= 16) {
        const std::int64_t rows = shape_[0], cols = shape_[1], ld = src.stride(1);
        T* dst = data();
        const U* s = src.data();
        constexpr std::int64_t tile = 16;
        B::parallel_for((rows + tile - 1) / tile, 16, [=](std::int64_t b0, std::int64_t b1) {
          for (std::int64_t i0 = b0 * tile; i0 < std::min(rows, b1 * tile); i0 += tile) {
            const std::int64_t i1 = std::min(rows, i0 + tile);
            for (std::int64_t j0 = 0; j0 < cols; j0 += tile) {
              const std::int64_t j1 = std::min(cols, j0 + tile);
#if defined(__AVX2__)
              if constexpr (std::is_same_v<T, float> && std::is_same_v<U, float>) {
                if (i1 - i0 == tile && j1 - j0 == tile) {  // four 8 x 8 register transposes (0.41-0.50 -> 0.25-0.34 ns an element)
                  for (std::int64_t bi = i0; bi < i1; bi += 8)
                    for (std::int64_t bj = j0; bj < j1; bj += 8) {
                      __m256 r[8];
                      for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(s + (bj + q) * ld + bi);
                      detail::transpose8x8(r);
                      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (bi + q) * cols + bj, r[q]);
                    }
                  continue;
                }
              }
#endif
              for (std::int64_t i = i0; i < i1; ++i) {
                T* d = dst + i * cols;
                const U* p = s + i;
                for (std::int64_t j = j0; j < j1; ++j) d[j] = convert<T>(p[j * ld]);
              }
            }
          }
        });
        return *this;
      }
    }
    const auto plan = detail::make_loop_plan<2>(shape_, {strides_, broadcast_strides(src.shape(), src.strides(), shape_)});
    T* dst = data();
    const U* s = src.data();
    detail::run_loop_plan<B>(plan, [=](const std::array<std::int64_t, 2>& off, std::int64_t n, const std::array<std::int64_t, 2>& st) {
      T* d = dst + off[0];
      const U* p = s + off[1];
      if (st[0] == 1 && st[1] == 1) {
        if constexpr (std::is_same_v<T, U>) {
          std::copy(p, p + n, d);  // a vector copy at any -O level (the loop below is scalar at -O2)
        } else {
          for (std::int64_t j = 0; j < n; ++j) d[j] = convert<T>(p[j]);
        }
      } else {
        for (std::int64_t j = 0; j < n; ++j) d[j * st[0]] = convert<T>(p[j * st[1]]);
      }
    });
    return *this;
  }
  /// Sets every element to `value`.
  const Tensor& fill_(T value) const {
    if (numel() == 0) return *this;
    const auto plan = detail::make_loop_plan<1>(shape_, {strides_});
    T* dst = data();
    detail::run_loop_plan<B>(plan, [=](const std::array<std::int64_t, 1>& off, std::int64_t n, const std::array<std::int64_t, 1>& st) {
      T* d = dst + off[0];
      for (std::int64_t j = 0; j < n; ++j) d[j * st[0]] = value;
    });
    return *this;
  }

 private:
  static std::size_t checked_bytes(const Shape& shape) {
    for (int d = 0; d < shape.rank(); ++d)
      if (shape[d] < 0) fail<shape_error>("Tensor", "negative dimension ", shape[d], " in shape ", shape);
    return static_cast<std::size_t>(shape.numel()) * sizeof(T);
  }
  static std::uint64_t blocks_for(std::int64_t n, std::int64_t per) { return static_cast<std::uint64_t>((n + per - 1) / per); }

  /// Resolves one -1 entry of a target shape and checks the element count.
  Shape infer_shape(const char* op, Shape to) const {
    int infer = -1;
    std::int64_t known = 1;
    for (int d = 0; d < to.rank(); ++d) {
      if (to[d] == -1) {
        if (infer >= 0) fail<shape_error>(op, "only one dimension can be -1 in ", to);
        infer = d;
      } else if (to[d] < 0) {
        fail<shape_error>(op, "invalid dimension ", to[d], " in ", to);
      } else {
        known *= to[d];
      }
    }
    if (infer >= 0) {
      if (known == 0 || numel() % known != 0) fail<shape_error>(op, "shape ", to, " is invalid for input of size ", numel());
      to[infer] = numel() / known;
    }
    if (to.numel() != numel()) fail<shape_error>(op, "shape ", to, " is invalid for input of size ", numel());
    return to;
  }

  /// Writes f(i) to element i of this contiguous tensor, in parallel; f must be a pure function
  /// of i so the result does not depend on the thread count.
  template <class F>
  void fill_indexed(F f) {
    T* d = data();
    B::parallel_for(numel(), 16384, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) d[i] = static_cast<T>(f(i));
    });
  }

  std::shared_ptr<Storage<B>> storage_;
  Shape shape_;
  Strides strides_;
  std::int64_t offset_ = 0;
};

/// Free-function factories mirroring torch: dsm::zeros<float>({2, 3}).
template <Scalar T, class B = cpu> Tensor<T, B> empty(const Shape& s) { return Tensor<T, B>::empty(s); }
template <Scalar T, class B = cpu> Tensor<T, B> zeros(const Shape& s) { return Tensor<T, B>::zeros(s); }
template <Scalar T, class B = cpu> Tensor<T, B> ones(const Shape& s) { return Tensor<T, B>::ones(s); }
template <Scalar T, class B = cpu> Tensor<T, B> full(const Shape& s, T v) { return Tensor<T, B>::full(s, v); }
template <FloatingScalar T, class B = cpu> Tensor<T, B> rand(const Shape& s, Generator& g = default_generator()) { return Tensor<T, B>::rand(s, g); }
template <FloatingScalar T, class B = cpu> Tensor<T, B> randn(const Shape& s, Generator& g = default_generator()) { return Tensor<T, B>::randn(s, g); }

}  // namespace dsm
