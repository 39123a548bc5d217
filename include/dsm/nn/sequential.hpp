// dsm/nn/sequential.hpp: modules applied one after another, as a flat pack (no nesting of types).
//
//   dsm::nn::Sequential<nn::Linear<{.in_features = 4, .out_features = 8}>, nn::ReLU,
//                       nn::Linear<{.in_features = 8, .out_features = 2}>> net;
//   auto y = net(x);                   // parameters "0.weight", "0.bias", "2.weight", ...
//   net.get<0>().weight;
#pragma once

#include <string>
#include <tuple>
#include <utility>

#include "module.hpp"

namespace dsm::nn {

template <class... Ms>
class Sequential : public Module {
  static_assert(sizeof...(Ms) > 0, "Sequential needs at least one module");

 public:
  Sequential() = default;
  /// Takes the (dynamic or configured) modules by value.
  explicit Sequential(Ms... ms) : layers_(std::move(ms)...) {}

  template <class X>
  auto operator()(const X& x) {
    return std::apply([&](auto&... m) { return chain(x, m...); }, layers_);
  }
  template <std::size_t I>
  auto& get() { return std::get<I>(layers_); }

  void visit(Members& m) override {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (m.module(std::to_string(I), std::get<I>(layers_)), ...); }(std::index_sequence_for<Ms...>{});
  }

 private:
  template <class X>
  static X chain(const X& x) { return x; }
  template <class X, class M, class... Rest>
  static auto chain(const X& x, M& m, Rest&... rest) { return chain(m(x), rest...); }
  std::tuple<Ms...> layers_;
};

}  // namespace dsm::nn
