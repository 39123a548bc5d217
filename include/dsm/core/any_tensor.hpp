// dsm/core/any_tensor.hpp: a tensor whose element type is known only at run time.
//
// State dicts and checkpoint files hold tensors of several dtypes side by side; AnyTensor keeps
// one of them (on the CPU) and converts on request:
//
//   dsm::AnyTensor t = dsm::Tensor<dsm::bf16>::zeros({2, 3});
//   t.dtype();                     // dsm::dtype::bfloat16
//   dsm::Tensor<float> f = t.to<float>();
#pragma once

#include <cstdint>
#include <variant>

#include "dtype.hpp"
#include "error.hpp"
#include "tensor.hpp"

namespace dsm {

class AnyTensor {
 public:
  using Variant = std::variant<Tensor<float>, Tensor<double>, Tensor<bf16>, Tensor<f16>, Tensor<std::int8_t>, Tensor<std::uint8_t>,
                               Tensor<std::int32_t>, Tensor<std::int64_t>, Tensor<bool>>;

  AnyTensor() = default;
  template <Scalar T>
  AnyTensor(Tensor<T> t) : v_(std::move(t)) {}  // NOLINT: implicit, any tensor is an AnyTensor

  ::dsm::dtype dtype() const {
    return std::visit([](const auto& t) { return dtype_traits<typename std::decay_t<decltype(t)>::value_type>::id; }, v_);
  }
  const Shape& shape() const {
    return std::visit([](const auto& t) -> const Shape& { return t.shape(); }, v_);
  }
  std::int64_t numel() const { return shape().numel(); }
  std::size_t element_size() const {
    return std::visit([](const auto& t) { return sizeof(typename std::decay_t<decltype(t)>::value_type); }, v_);
  }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * element_size(); }
  bool defined() const {
    return std::visit([](const auto& t) { return t.defined(); }, v_);
  }
  /// The tensor if it holds element type T; dsm::dtype_error otherwise.
  template <Scalar T>
  const Tensor<T>& get() const {
    if (const auto* t = std::get_if<Tensor<T>>(&v_)) return *t;
    fail<dtype_error>("AnyTensor::get", "holds ", dtype_name(dtype()), ", not ", dtype_traits<T>::name);
  }
  /// A contiguous copy converted to T (the tensor itself, shared, when it already is T).
  template <Scalar T>
  Tensor<T> to() const {
    return std::visit([](const auto& t) -> Tensor<T> {
      if constexpr (std::is_same_v<std::decay_t<decltype(t)>, Tensor<T>>) return t;
      else return t.template to<T>();
    }, v_);
  }
  /// A contiguous version (shared when already contiguous).
  AnyTensor contiguous() const {
    return std::visit([](const auto& t) { return AnyTensor(t.contiguous()); }, v_);
  }
  /// Raw bytes of a contiguous tensor.
  const void* data() const {
    return std::visit([](const auto& t) -> const void* { return t.data(); }, v_);
  }
  const Variant& variant() const { return v_; }
  Variant& variant() { return v_; }

 private:
  Variant v_;
};

}  // namespace dsm
