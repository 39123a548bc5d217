// dsm/autograd/functions/join.hpp: cat, stack, split and chunk on Vars.
//
// cat and stack hand each input its slice of the gradient (a view, no copy); split and chunk
// return narrowing views of the input, whose gradients add up in the input's gradient.
#pragma once

#include <vector>

#include "../../ops/join.hpp"
#include "views.hpp"

namespace dsm {

/// Concatenation along dim.
template <class T, class B>
Var<T, B> cat(const std::vector<Var<T, B>>& xs, std::int64_t dim = 0) {
  std::vector<Tensor<T, B>> values;
  std::vector<autograd::Edge> edges;
  std::vector<std::int64_t> sizes;
  for (const auto& x : xs) values.push_back(x.value()), edges.push_back(autograd::edge_of(x));
  Tensor<T, B> y = cat(values, dim);
  const int d = wrap_dim("cat", dim, y.rank());
  for (const auto& x : xs) sizes.push_back(x.size(d));
  return autograd::make_result("cat", std::move(y), std::move(edges), [sizes, d](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
    std::int64_t offset = 0;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      if (in[k]) autograd::accumulate_input(in[k], g.narrow(d, offset, sizes[k]));
      offset += sizes[k];
    }
  });
}
template <class T, class B>
Var<T, B> cat(std::initializer_list<Var<T, B>> xs, std::int64_t dim = 0) {
  return cat(std::vector<Var<T, B>>(xs), dim);
}

/// Stacks equal-shape Vars along a new dimension dim.
template <class T, class B>
Var<T, B> stack(const std::vector<Var<T, B>>& xs, std::int64_t dim = 0) {
  std::vector<Tensor<T, B>> values;
  std::vector<autograd::Edge> edges;
  for (const auto& x : xs) values.push_back(x.value()), edges.push_back(autograd::edge_of(x));
  Tensor<T, B> y = stack(values, dim);
  const int d = wrap_dim("stack", dim, y.rank());
  return autograd::make_result("stack", std::move(y), std::move(edges), [d](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
    for (std::size_t k = 0; k < in.size(); ++k)
      if (in[k]) autograd::accumulate_input(in[k], g.select(d, static_cast<std::int64_t>(k)));
  });
}
template <class T, class B>
Var<T, B> stack(std::initializer_list<Var<T, B>> xs, std::int64_t dim = 0) {
  return stack(std::vector<Var<T, B>>(xs), dim);
}

namespace autograd::detail {
template <class T, class B>
std::vector<Var<T, B>> narrow_pieces(const Var<T, B>& x, const std::vector<Tensor<T, B>>& pieces, std::int64_t dim) {
  const int d = wrap_dim("split", dim, x.rank());
  std::vector<Var<T, B>> out;
  std::int64_t offset = 0;
  for (const auto& p : pieces) {
    out.push_back(x.narrow(d, offset, p.size(d)));
    offset += p.size(d);
  }
  return out;
}
}  // namespace autograd::detail

/// Pieces of `size` along dim (the last may be smaller).
template <class T, class B>
std::vector<Var<T, B>> split(const Var<T, B>& x, std::int64_t size, std::int64_t dim = 0) {
  return autograd::detail::narrow_pieces(x, split(x.value(), size, dim), dim);
}
/// Pieces of the given sizes along dim.
template <class T, class B>
std::vector<Var<T, B>> split(const Var<T, B>& x, const std::vector<std::int64_t>& sizes, std::int64_t dim = 0) {
  return autograd::detail::narrow_pieces(x, split(x.value(), sizes, dim), dim);
}
/// `chunks` nearly equal pieces along dim.
template <class T, class B>
std::vector<Var<T, B>> chunk(const Var<T, B>& x, std::int64_t chunks, std::int64_t dim = 0) {
  return autograd::detail::narrow_pieces(x, chunk(x.value(), chunks, dim), dim);
}

}  // namespace dsm
