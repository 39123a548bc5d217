// Expression templates: every functor's value and derivative against PyTorch (values and autograd
// gradients from tests/reference/gen_ops.py), broadcasting, strided inputs, in-place forms,
// aliasing, casts and errors.
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Shape;
using dsm::Tensor;
using TD = Tensor<double>;
using TF = Tensor<float>;

namespace {
const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("elementwise.txt"); }

/// Evaluates functor F's value and derivative over x and compares them with PyTorch's.
template <class F>
void check_unary(const char* name, const F& f, const TD& x, double rtol = 1e-12) {
  CAPTURE(name);
  TD y = dsm::UnaryNode<F, const TD&>{f, x};
  dsm_test::check_close(y, fx().get(std::string(name) + ".y"), rtol, 1e-14);
  TD dx(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) dx(i) = f.d(x(i), y(i));
  dsm_test::check_close(dx, fx().get(std::string(name) + ".dx"), rtol, 1e-14);
}
template <class F>
void check_binary(const char* name, const F& f) {
  CAPTURE(name);
  const TD a = fx().get(std::string(name) + ".a"), b = fx().get(std::string(name) + ".b");
  TD y = dsm::BinaryNode<F, const TD&, const TD&>{f, a, b};
  dsm_test::check_close(y, fx().get(std::string(name) + ".y"), 1e-12, 1e-14);
  TD da(a.shape()), db(a.shape());
  for (std::int64_t i = 0; i < a.numel(); ++i) da(i) = f.dl(a(i), b(i)), db(i) = f.dr(a(i), b(i));
  dsm_test::check_close(da, fx().get(std::string(name) + ".da"), 1e-12, 1e-14);
  dsm_test::check_close(db, fx().get(std::string(name) + ".db"), 1e-12, 1e-14);
}
}  // namespace

TEST_CASE("unary functors: values and derivatives equal PyTorch's") {
  const TD x = fx().get("x"), pos = fx().get("pos");
  namespace fn = dsm::fn;
  check_unary("neg", fn::Neg{}, x);
  check_unary("exp", fn::Exp{}, x);
  check_unary("log", fn::Log{}, pos);
  check_unary("log1p", fn::Log1p{}, pos);
  check_unary("expm1", fn::Expm1{}, x);
  check_unary("sqrt", fn::Sqrt{}, pos);
  check_unary("rsqrt", fn::Rsqrt{}, pos);
  check_unary("abs", fn::Abs{}, x);
  check_unary("sign", fn::Sign{}, x);
  check_unary("square", fn::Square{}, x);
  check_unary("reciprocal", fn::Reciprocal{}, pos);
  check_unary("tanh", fn::Tanh{}, x);
  check_unary("sigmoid", fn::Sigmoid{}, x);
  check_unary("relu", fn::Relu{}, x);
  check_unary("silu", fn::Silu{}, x);
  check_unary("gelu", fn::Gelu{}, x);
  check_unary("gelu_tanh", fn::GeluTanh{}, x);
  check_unary("leaky_relu", fn::LeakyRelu{0.1}, x);
  check_unary("softplus", fn::Softplus{2.0, 3.0}, x);
  check_unary("clamp", fn::Clamp{-1.0, 2.0}, x);
}

TEST_CASE("binary functors: values and partial derivatives equal PyTorch's") {
  check_binary("pow", dsm::fn::Pow{});
  check_binary("maximum", dsm::fn::Maximum{});
  check_binary("minimum", dsm::fn::Minimum{});
  check_binary("div", dsm::fn::Div{});
  check_binary("mul", dsm::fn::Mul{});
}

TEST_CASE("derivative edge cases: pow at a zero base, where, predicates") {
  const dsm::fn::Pow pw;
  CHECK(pw.dr(0.0, 2.0) == 0.0);  // PyTorch's convention, not 0 * log(0)
  CHECK(pw.dl(0.0, 2.0) == 0.0);
  CHECK(std::isinf(pw.dr(0.0, -1.0)));
  const dsm::fn::Where w;
  CHECK(w.da<double>(true) == 1.0);
  CHECK(w.db<double>(true) == 0.0);
  CHECK(w.db<float>(false) == 1.f);
  static_assert(!dsm::fn::Gt::differentiable && !dsm::fn::LogicalNot::differentiable);
}

TEST_CASE("a broadcast expression tree equals PyTorch in one pass") {
  const TD p = fx().get("bcast.p"), q = fx().get("bcast.q");  // [4, 1, 3] and [5, 1]
  TD y = dsm::relu(p * q + 0.5) - dsm::where(p > q, p, q);
  dsm_test::check_close(y, fx().get("bcast.y"), 1e-14, 1e-14);
}

TEST_CASE("named functions build the same trees as the functors") {
  const TF x = TF::from({-2.f, -0.5f, 0.f, 0.5f, 3.f});
  auto check = [&](const TF& got, auto f) {
    for (std::int64_t i = 0; i < x.numel(); ++i) CHECK(got(i) == doctest::Approx(f(x(i))).epsilon(1e-6));
  };
  check(dsm::eval(dsm::leaky_relu(x, 0.2)), [](float v) { return v > 0 ? v : 0.2f * v; });
  check(dsm::eval(dsm::clamp(x, -1.0, 1.0)), [](float v) { return std::clamp(v, -1.f, 1.f); });
  check(dsm::eval(dsm::pow(x, 2.f)), [](float v) { return v * v; });
  check(dsm::eval(dsm::maximum(x, 0.25f)), [](float v) { return std::max(v, 0.25f); });
  check(dsm::eval(dsm::minimum(0.25f, x)), [](float v) { return std::min(v, 0.25f); });
  check(dsm::eval(2.f - x / 4.f), [](float v) { return 2.f - v / 4.f; });
  check(dsm::eval(-dsm::silu(x)), [](float v) { return -v / (1 + std::exp(-v)); });
  check(dsm::eval(dsm::softplus(x)), [](float v) { return std::log1p(std::exp(v)); });
  dsm::Tensor<bool> m = (x >= 0.f) && !(x == 3.f);
  CHECK(m.to_vector() == std::vector<bool>{false, false, true, true, false});
  CHECK_THROWS_WITH_AS((void)dsm::clamp(x, 1.0, -1.0), "clamp: lower bound 1 exceeds upper bound -1", dsm::config_error);
}

TEST_CASE("strided and broadcast inputs, in place forms") {
  auto a = TF::arange(0.f, 12.f).reshape({3, 4});
  auto b = TF::arange(0.f, 12.f).reshape({4, 3}).t();  // a transposed (non-contiguous) view
  TF y = a * b + 1.f;
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 4; ++j) CHECK(y(i, j) == a(i, j) * b(i, j) + 1.f);
  auto out = TF::zeros({2, 3, 4});
  out += a;              // broadcast over the leading dimension
  out *= 2.f;
  out -= TF::ones({4});  // broadcast a row
  out /= 2.f;
  CHECK(out(1, 2, 3) == (2.f * a(2, 3) - 1.f) / 2.f);
  // Writing into a strided view touches only that view.
  auto full = TF::zeros({4, 4});
  full.slice(1, 0, 4, 2) = TF::ones({4, 2}) * 5.f;
  CHECK(full.to_vector()[0] == 5.f);
  CHECK(full.to_vector()[1] == 0.f);
  CHECK(full.to_vector()[2] == 5.f);
  CHECK_THROWS_WITH_AS(full = TF::ones({3}) + 1.f, "assign: expression of shape [3] cannot be written to a tensor of shape [4, 4]", dsm::shape_error);
  auto expanded = TF::zeros({1, 4}).expand({3, 4});
  CHECK_THROWS_WITH_AS(expanded = TF::ones({3, 4}) * 1.f, "assign: cannot write into an expanded view (dimension 0 has stride 0)", dsm::shape_error);
  CHECK_THROWS_WITH_AS(TF(a + TF::ones({3})), "add: shapes [3, 4] and [3] cannot be broadcast together", dsm::shape_error);
}

TEST_CASE("aliasing: an input overlapping the output is evaluated first") {
  auto x = TF::arange(0.f, 9.f).reshape({3, 3});
  auto want = x.t().contiguous();
  x = x.t() + 0.f;  // reads x transposed while writing x
  CHECK(x.to_vector() == want.to_vector());
  auto v = TF::arange(0.f, 5.f);
  v.narrow(0, 1, 4) = v.narrow(0, 0, 4) * 1.f;  // shifted self-assignment
  CHECK(v.to_vector() == std::vector<float>{0, 0, 1, 2, 3});
  auto w = TF::arange(0.f, 4.f);
  w = w * w;  // same view: safe in place
  CHECK(w.to_vector() == std::vector<float>{0, 1, 4, 9});
}

TEST_CASE("expressions over bf16 compute in float and round once") {
  auto a = Tensor<dsm::bf16>::full({8}, dsm::bf16(1.f));
  auto b = Tensor<dsm::bf16>::full({8}, dsm::bf16(0.00390625f));  // 2^-8
  Tensor<dsm::bf16> y = a + b + b;  // 1 + 2^-7: exact only if the sum is not rounded in between
  CHECK(static_cast<float>(y(3)) == 1.0078125f);
  Tensor<float> f = dsm::cast<float>(y) * 2.f;
  CHECK(f(0) == 2.015625f);
  Tensor<dsm::bf16> r = dsm::cast<dsm::bf16>(TF::from({0.1f}));
  CHECK(r(0).bits == dsm::bf16(0.1f).bits);
  Tensor<std::int32_t> i = dsm::cast<std::int32_t>(TF::from({2.7f, -2.7f}));
  CHECK(i.to_vector() == std::vector<std::int32_t>{2, -2});
}

TEST_CASE("large contiguous and strided evaluations agree with a plain loop") {
  dsm::Generator g{11};
  auto a = TF::randn({257, 1031}, g), b = TF::randn({257, 1031}, g), c = TF::randn({1031}, g);
  TF y = dsm::relu(a * b + c);
  TF z = dsm::relu(a.t() * b.t() + c.unsqueeze(1));  // strided path over the transposed views
  const auto av = a.to_vector(), bv = b.to_vector(), cv = c.to_vector(), yv = y.to_vector();
  for (std::size_t i = 0; i < yv.size(); i += 97) CHECK(yv[i] == std::max(0.f, av[i] * bv[i] + cv[i % 1031]));
  CHECK(z.t().contiguous().to_vector() == yv);
}

namespace {
/// A second host backend (the CPU one under another name) to see which backend a tree reports.
struct other_host : dsm::cpu {
  static constexpr const char* name = "other_host";
};
}  // namespace

TEST_CASE("an expression reports the backend of its tensors wherever the scalars sit") {
  using TO = Tensor<float, other_host>;
  const TO x = TO::ones({2});
  static_assert(std::is_same_v<decltype(2.f * (x + 1.f))::backend_type, other_host>);
  static_assert(std::is_same_v<decltype(dsm::where(x > 0.f, 1.f, x * 2.f))::backend_type, other_host>);
  static_assert(std::is_same_v<decltype(dsm::where(x > 0.f, x, 0.f))::backend_type, other_host>);
  auto e = dsm::eval(2.f * (x + 1.f));
  static_assert(std::is_same_v<decltype(e), TO>);
  CHECK(e.to_vector() == std::vector<float>{4.f, 4.f});
}
