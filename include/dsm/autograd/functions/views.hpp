// dsm/autograd/functions/views.hpp: the views of a Var (reshape, transpose, narrow, ...).
//
// The value is a view of the input's value (no copy). The backward maps the gradient back:
// reshapes and permutations are views of the gradient again; narrowing views write the gradient
// into a zero tensor of the input's shape; expand sums over the expanded dimensions.
#pragma once

#include "../fused.hpp"
#include "../function.hpp"

namespace dsm {

namespace autograd::detail {
/// A view whose gradient is the upstream gradient reshaped to the input's shape.
template <class T, class B>
Var<T, B> reshaping_view(const char* name, const Var<T, B>& x, Tensor<T, B> v) {
  return make_result(name, std::move(v), {edge_of(x)}, [from = x.shape()](const Tensor<T, B>& g, const std::vector<Edge>& in) {
    accumulate_input(in[0], g.reshape(from));
  });
}
/// A view selecting part of the input: the gradient lands in that part of a zero tensor.
template <class T, class B, class ViewFn>
Var<T, B> selecting_view(const char* name, const Var<T, B>& x, ViewFn view_fn) {
  return make_result(name, view_fn(x.value()), {edge_of(x)}, [from = x.shape(), view_fn](const Tensor<T, B>& g, const std::vector<Edge>& in) {
    Tensor<T, B> gx = Tensor<T, B>::zeros(from);
    view_fn(gx).copy_(g);
    accumulate_input(in[0], std::move(gx));
  });
}
}  // namespace autograd::detail

template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::view(Shape to) const { return autograd::detail::reshaping_view("view", *this, value().view(to)); }
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::reshape(Shape to) const { return autograd::detail::reshaping_view("reshape", *this, value().reshape(to)); }
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::flatten(std::int64_t start, std::int64_t end) const {
  return autograd::detail::reshaping_view("flatten", *this, value().flatten(start, end));
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::squeeze(std::int64_t dim) const { return autograd::detail::reshaping_view("squeeze", *this, value().squeeze(dim)); }
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::unsqueeze(std::int64_t dim) const { return autograd::detail::reshaping_view("unsqueeze", *this, value().unsqueeze(dim)); }

template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::transpose(std::int64_t d0, std::int64_t d1) const {
  return autograd::make_result("transpose", value().transpose(d0, d1), {autograd::edge_of(*this)},
                               [d0, d1](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 autograd::accumulate_input(in[0], g.transpose(d0, d1));
                               });
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::t() const {
  if (rank() != 2) fail<shape_error>("t", "expects a 2-D Var, got shape ", shape());
  return transpose(0, 1);
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::permute(const Shape& dims) const {
  Tensor<T, B> v = value().permute(dims);  // validates dims
  Shape inverse = dims;
  for (int i = 0; i < dims.rank(); ++i) inverse[static_cast<int>(wrap_dim("permute", dims[i], rank()))] = i;
  return autograd::make_result("permute", std::move(v), {autograd::edge_of(*this)},
                               [inverse](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 autograd::accumulate_input(in[0], g.permute(inverse));
                               });
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const {
  Tensor<T, B> v = value().narrow(dim, start, length);  // checks the arguments
  const int d = static_cast<int>(dim < 0 ? dim + rank() : dim);
  if (start < 0) start += shape()[d];
  // Only the parts outside the range are zeroed: the range itself receives the gradient (a
  // zero fill of the whole input first wrote it twice; an LSTM's output is most of its value).
  return autograd::make_result("narrow", std::move(v), {autograd::edge_of(*this)},
                               [from = shape(), d, start, length](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 Tensor<T, B> gx(from);
                                 const std::int64_t end = start + length, size = from[d];
                                 if (start > 0) gx.narrow(d, 0, start).fill_(T(0));
                                 if (end < size) gx.narrow(d, end, size - end).fill_(T(0));
                                 gx.narrow(d, start, length).copy_(g);
                                 autograd::accumulate_input(in[0], std::move(gx));
                               });
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step) const {
  return autograd::detail::selecting_view("slice", *this, [=](const Tensor<T, B>& t) { return t.slice(dim, start, end, step); });
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::select(std::int64_t dim, std::int64_t index) const {
  return autograd::detail::selecting_view("select", *this, [=](const Tensor<T, B>& t) { return t.select(dim, index); });
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::expand(Shape to) const {
  return autograd::make_result("expand", value().expand(to), {autograd::edge_of(*this)},
                               [from = shape()](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) {
                                 autograd::accumulate_input(in[0], autograd::detail::sum_to(g, from));
                               });
}
template <FloatingScalar T, class B>
Var<T, B> Var<T, B>::contiguous() const {
  if (value().is_contiguous()) return *this;
  return autograd::make_result("contiguous", value().contiguous(), {autograd::edge_of(*this)},
                               [](const Tensor<T, B>& g, const std::vector<autograd::Edge>& in) { autograd::accumulate_input(in[0], g); });
}

}  // namespace dsm
