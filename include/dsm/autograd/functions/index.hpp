// dsm/autograd/functions/index.hpp: gather, scatter_add, index_select, index_add, embedding and
// masked_fill on Vars (indices and masks are plain tensors: they have no gradient).
//
// Each gradient is the mirror operation: gather <-> scatter_add, index_select <-> index_add, so
// that gradients of repeated indices accumulate (in index order, hence deterministically).
#pragma once

#include "../../ops/index.hpp"
#include "../fused.hpp"
#include "../function.hpp"

namespace dsm {

/// out[i][j] = x[index[i][j]][j] (for dim 0; likewise for any dim).
template <class T, class I, class B>
Var<T, B> gather(const Var<T, B>& x, std::int64_t dim, const Tensor<I, B>& index) {
  return autograd::make_result("gather", gather(x.value(), dim, index), {autograd::edge_of(x)},
                               [from = x.shape(), dim, index](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 Tensor<T, B> gx = Tensor<T, B>::zeros(from);
                                 scatter_add_(gx, dim, index, g.contiguous());
                                 autograd::accumulate_input(in[0], std::move(gx));
                               });
}

/// A copy of x with src added at the positions index names along dim.
template <class T, class I, class B>
Var<T, B> scatter_add(const Var<T, B>& x, std::int64_t dim, const Tensor<I, B>& index, const Var<T, B>& src) {
  return autograd::make_result("scatter_add", scatter_add(x.value(), dim, index, src.value()), {autograd::edge_of(x), autograd::edge_of(src)},
                               [dim, index](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 autograd::accumulate_input(in[0], g);
                                 if (in[1]) autograd::accumulate_input(in[1], gather(g, dim, index));
                               });
}

/// The slices of x at `index` (1-D) along dim.
template <class T, class I, class B>
Var<T, B> index_select(const Var<T, B>& x, std::int64_t dim, const Tensor<I, B>& index) {
  return autograd::make_result("index_select", index_select(x.value(), dim, index), {autograd::edge_of(x)},
                               [from = x.shape(), dim, index](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 Tensor<T, B> gx = Tensor<T, B>::zeros(from);
                                 index_add_(gx, dim, index, g);
                                 autograd::accumulate_input(in[0], std::move(gx));
                               });
}

/// A copy of x with alpha * src's slices added at `index` along dim.
template <class T, class I, class B>
Var<T, B> index_add(const Var<T, B>& x, std::int64_t dim, const Tensor<I, B>& index, const Var<T, B>& src, double alpha = 1.0) {
  return autograd::make_result("index_add", index_add(x.value(), dim, index, src.value(), alpha), {autograd::edge_of(x), autograd::edge_of(src)},
                               [dim, index, alpha](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 autograd::accumulate_input(in[0], g);
                                 if (in[1]) {
                                   Tensor<T, B> gs = index_select(g, dim, index);
                                   if (alpha != 1.0) gs *= alpha;
                                   autograd::accumulate_input(in[1], std::move(gs));
                                 }
                               });
}

/// Rows of weight [num_embeddings, dim] for each id; the gradient of repeated ids accumulates.
template <class T, class I, class B>
Var<T, B> embedding(const Var<T, B>& weight, const Tensor<I, B>& ids) {
  return autograd::make_result("embedding", embedding(weight.value(), ids), {autograd::edge_of(weight)},
                               [from = weight.shape(), ids](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 Tensor<T, B> gw = Tensor<T, B>::zeros(from);
                                 index_add_(gw, 0, ids.reshape({-1}), g.reshape({-1, from[1]}));
                                 autograd::accumulate_input(in[0], std::move(gw));
                               });
}

/// A copy of x with `value` where mask holds; no gradient flows to the filled positions.
template <class T, class B>
Var<T, B> masked_fill(const Var<T, B>& x, const Tensor<bool, B>& mask, double value) {
  return autograd::make_result("masked_fill", masked_fill(x.value(), mask, value), {autograd::edge_of(x)},
                               [mask](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 Tensor<T, B> gx(g.shape());
                                 gx = where(mask, 0.f, g);
                                 autograd::accumulate_input(in[0], std::move(gx));
                               });
}

}  // namespace dsm
