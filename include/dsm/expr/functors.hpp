// dsm/expr/functors.hpp: the elementwise functions, each with its local derivatives.
//
// A unary functor gives f(x) and d(x, y) = df/dx at x, where y = f(x) is passed too so that
// functions like exp, tanh and sigmoid reuse their value. A binary functor gives f(a, b) and the
// partials dl(a, b) = df/da and dr(a, b) = df/db. Everything is DSM_HOST_DEVICE and works on the
// compute type (float for bf16/f16), so one tree runs in a CPU loop or a CUDA kernel and autograd
// can assemble the backward of a whole tree at compile time from these pieces.
#pragma once

#include <cmath>

#include "../core/config.hpp"
#include "../core/dtype.hpp"
#include "math.hpp"

namespace dsm::fn {

#define DSM_UNARY(NAME, STR, VALUE, DERIV)                                  \
  struct NAME {                                                             \
    static constexpr const char* name = STR;                               \
    template <class T>                                                      \
    DSM_HOST_DEVICE T operator()(T x) const { return VALUE; }              \
    template <class T>                                                      \
    DSM_HOST_DEVICE T d([[maybe_unused]] T x, [[maybe_unused]] T y) const { return DERIV; } \
  };

DSM_UNARY(Neg, "neg", -x, T(-1))
DSM_UNARY(Exp, "exp", math::exp(x), y)
DSM_UNARY(Log, "log", math::log(x), T(1) / x)
DSM_UNARY(Log1p, "log1p", std::log1p(x), T(1) / (T(1) + x))
DSM_UNARY(Expm1, "expm1", std::expm1(x), y + T(1))
DSM_UNARY(Sqrt, "sqrt", std::sqrt(x), T(0.5) / y)
DSM_UNARY(Rsqrt, "rsqrt", T(1) / std::sqrt(x), T(-0.5) * y * y * y)
DSM_UNARY(Abs, "abs", std::abs(x), x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)))
DSM_UNARY(Sign, "sign", x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)), T(0))
DSM_UNARY(Square, "square", x * x, T(2) * x)
DSM_UNARY(Reciprocal, "reciprocal", T(1) / x, -y * y)
DSM_UNARY(Tanh, "tanh", math::tanh(x), T(1) - y * y)
DSM_UNARY(Sigmoid, "sigmoid", math::sigmoid(x), y * (T(1) - y))
DSM_UNARY(Relu, "relu", x > T(0) ? x : T(0), x > T(0) ? T(1) : T(0))
DSM_UNARY(Silu, "silu", x * math::sigmoid(x), math::sigmoid(x) * (T(1) + x * (T(1) - math::sigmoid(x))))
// GELU, exact form: x * Phi(x) with Phi the standard normal CDF.
DSM_UNARY(Gelu, "gelu", T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440))),
          T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))) + x * T(0.39894228040143267794) * std::exp(T(-0.5) * x * x))
#undef DSM_UNARY

/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct GeluTanh {
  static constexpr const char* name = "gelu_tanh";
  template <class T>
  DSM_HOST_DEVICE static T inner(T x) { return T(0.79788456080286535588) * (x + T(0.044715) * x * x * x); }
  template <class T>
  DSM_HOST_DEVICE T operator()(T x) const { return T(0.5) * x * (T(1) + math::tanh(inner(x))); }
  template <class T>
  DSM_HOST_DEVICE T d(T x, T) const {
    const T t = math::tanh(inner(x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * x * x);
  }
};

/// max(x, 0) + slope * min(x, 0).
struct LeakyRelu {
  static constexpr const char* name = "leaky_relu";
  double slope = 0.01;
  template <class T>
  DSM_HOST_DEVICE T operator()(T x) const { return x > T(0) ? x : T(slope) * x; }
  template <class T>
  DSM_HOST_DEVICE T d(T x, T) const { return x > T(0) ? T(1) : T(slope); }
};

/// log(1 + exp(beta x)) / beta, linear above `threshold` (as torch.nn.functional.softplus).
struct Softplus {
  static constexpr const char* name = "softplus";
  double beta = 1.0, threshold = 20.0;
  template <class T>
  DSM_HOST_DEVICE T operator()(T x) const {
    const T bx = T(beta) * x;
    return bx > T(threshold) ? x : std::log1p(std::exp(bx)) / T(beta);
  }
  template <class T>
  DSM_HOST_DEVICE T d(T x, T) const {
    const T bx = T(beta) * x;
    return bx > T(threshold) ? T(1) : math::sigmoid(bx);
  }
};

/// min(max(x, lo), hi); the gradient passes where lo <= x <= hi.
struct Clamp {
  static constexpr const char* name = "clamp";
  double lo, hi;
  template <class T>
  DSM_HOST_DEVICE T operator()(T x) const { return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x); }
  template <class T>
  DSM_HOST_DEVICE T d(T x, T) const { return (x >= T(lo) && x <= T(hi)) ? T(1) : T(0); }
};

/// Conversion to element type U inside an expression: the value is rounded through U.
template <class U>
struct Cast {
  static constexpr const char* name = "cast";
  using to = U;
  template <class T>
  DSM_HOST_DEVICE compute_t<U> operator()(T x) const { return static_cast<compute_t<U>>(convert<U>(x)); }
  template <class T>
  DSM_HOST_DEVICE T d(T, T) const { return T(1); }
};

#define DSM_BINARY(NAME, STR, VALUE, DL, DR)                                                  \
  struct NAME {                                                                               \
    static constexpr const char* name = STR;                                                  \
    template <class T>                                                                        \
    DSM_HOST_DEVICE T operator()(T a, T b) const { return VALUE; }                            \
    template <class T>                                                                        \
    DSM_HOST_DEVICE T dl([[maybe_unused]] T a, [[maybe_unused]] T b) const { return DL; }     \
    template <class T>                                                                        \
    DSM_HOST_DEVICE T dr([[maybe_unused]] T a, [[maybe_unused]] T b) const { return DR; }     \
  };

DSM_BINARY(Add, "add", a + b, T(1), T(1))
DSM_BINARY(Sub, "sub", a - b, T(1), T(-1))
DSM_BINARY(Mul, "mul", a * b, b, a)
DSM_BINARY(Div, "div", a / b, T(1) / b, -a / (b * b))
// d/db at a = 0 is taken as 0 for b >= 0 (as PyTorch), not 0 * log(0) = NaN.
DSM_BINARY(Pow, "pow", std::pow(a, b), b * std::pow(a, b - T(1)), (a == T(0) && b >= T(0)) ? T(0) : std::pow(a, b) * std::log(a))
// NaN propagates (a != a); at ties the gradient is split equally, as PyTorch does.
DSM_BINARY(Maximum, "maximum", (a != a || a > b) ? a : b, a > b ? T(1) : (a == b ? T(0.5) : T(0)), b > a ? T(1) : (a == b ? T(0.5) : T(0)))
DSM_BINARY(Minimum, "minimum", (a != a || a < b) ? a : b, a < b ? T(1) : (a == b ? T(0.5) : T(0)), b < a ? T(1) : (a == b ? T(0.5) : T(0)))
#undef DSM_BINARY

/// Comparisons and logical operators produce bool and have no gradient.
#define DSM_PREDICATE(NAME, STR, VALUE)                                 \
  struct NAME {                                                         \
    static constexpr const char* name = STR;                           \
    static constexpr bool predicate = true;                            \
    static constexpr bool differentiable = false;                      \
    template <class T>                                                  \
    DSM_HOST_DEVICE bool operator()(T a, T b) const { return VALUE; }  \
  };
DSM_PREDICATE(Eq, "eq", a == b)
DSM_PREDICATE(Ne, "ne", a != b)
DSM_PREDICATE(Lt, "lt", a < b)
DSM_PREDICATE(Le, "le", a <= b)
DSM_PREDICATE(Gt, "gt", a > b)
DSM_PREDICATE(Ge, "ge", a >= b)
DSM_PREDICATE(LogicalAnd, "logical_and", a != T(0) && b != T(0))
DSM_PREDICATE(LogicalOr, "logical_or", a != T(0) || b != T(0))
#undef DSM_PREDICATE

struct LogicalNot {
  static constexpr const char* name = "logical_not";
  static constexpr bool predicate = true;
  static constexpr bool differentiable = false;
  template <class T>
  DSM_HOST_DEVICE bool operator()(T x) const { return !(x != T(0)); }
};

/// where(c, a, b) = c ? a : b; the gradient goes to a where c holds, to b elsewhere.
struct Where {
  static constexpr const char* name = "where";
  template <class T>
  DSM_HOST_DEVICE T operator()(bool c, T a, T b) const { return c ? a : b; }
  /// Partials with respect to a and b (the condition has none).
  template <class T>
  DSM_HOST_DEVICE T da(bool c) const { return c ? T(1) : T(0); }
  template <class T>
  DSM_HOST_DEVICE T db(bool c) const { return c ? T(0) : T(1); }
};

}  // namespace dsm::fn
