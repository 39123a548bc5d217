// Layers and losses against PyTorch (tests/reference/gen_nn.py) and gradcheck.
#include <doctest/doctest.h>

#include <algorithm>

#include <dsm/dsm.hpp>

#include "support/gradcheck.hpp"

#include "support/fixtures.hpp"

namespace nn = dsm::nn;
namespace F = dsm::nn::functional;
using dsm::Tensor;
using V = dsm::Var<double>;
using Inputs = std::vector<V>;
using dsm_test::check_close;

namespace {
constexpr auto randn = dsm_test::grad_randn;
const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("nn.txt"); }
V leaf(const std::string& name) { return V(fx().get(name), true); }
}  // namespace

TEST_CASE("cross_entropy's float gradient equals the double one, rows split over threads, ignored rows zero") {
  // 200 rows of 300 classes: the backward deals rows to threads in chunks (from 54 rows each) and
  // takes the vectorized float exp; the double product is the reference.
  dsm::Generator g{21};
  const Tensor<float> logits = Tensor<float>::randn({200, 300}, g) * 3.0f;
  auto target = Tensor<std::int64_t>::randint(0, 300, {200}, g);
  for (std::int64_t i = 0; i < 200; i += 7) target.data()[i] = -100;  // ignored rows
  const int saved = dsm::get_num_threads();
  for (int threads : {1, 2})
    for (const F::CrossEntropyOptions opt : {F::CrossEntropyOptions{}, F::CrossEntropyOptions{.label_smoothing = 0.1},
                                             F::CrossEntropyOptions{.reduction = nn::Reduction::none}}) {
      CAPTURE(threads);
      dsm::set_num_threads(threads);
      dsm::Var<float> xf(Tensor<float>(logits), true);
      V xd(logits.to<double>(), true);
      auto lf = F::cross_entropy(xf, target, opt);
      auto ld = F::cross_entropy(xd, target, opt);
      if (opt.reduction == nn::Reduction::none) {
        dsm::sum(lf).backward();
        dsm::sum(ld).backward();
      } else {
        lf.backward();
        ld.backward();
      }
      check_close(xf.grad(), xd.grad(), 1e-5, 1e-7);
      const auto grad = xf.grad().to_vector();
      for (std::int64_t i = 0; i < 200; i += 7)
        CHECK(std::all_of(grad.begin() + i * 300, grad.begin() + (i + 1) * 300, [](float v) { return v == 0.0f; }));
    }
  dsm::set_num_threads(saved);
  // bf16 logits with a confident target (p = 0.99899): its gradient p - 1 is computed before the
  // rounding to bf16, which would make p 1 and the gradient 0.
  dsm::Var<dsm::bf16> xb(Tensor<float>::from({8.f, 0.f, 0.f, 0.f}).reshape({1, 4}).to<dsm::bf16>(), true);
  F::cross_entropy(xb, Tensor<std::int64_t>::from({0})).backward();
  const double p = std::exp(8.0) / (std::exp(8.0) + 3.0);
  const double g0 = xb.grad().to<float>().to_vector()[0];
  CHECK(std::abs(g0 - (p - 1)) < 0.02 * (1 - p));  // within 2% (bf16 keeps 8 bits)
}

TEST_CASE("Linear equals torch's F.linear, values and gradients") {
  nn::Linear<{.in_features = 4, .out_features = 5}, double> lin;
  lin.weight.value().copy_(fx().get("linear.w"));
  lin.bias.value().copy_(fx().get("linear.b"));
  V x = leaf("linear.x");
  V y = lin(x);
  check_close(y.value(), fx().get("linear.y"), 1e-12);
  y.backward(fx().get("linear.g"));
  check_close(x.grad(), fx().get("linear.dx"), 1e-12);
  check_close(lin.weight.grad(), fx().get("linear.dw"), 1e-12);
  check_close(lin.bias.grad(), fx().get("linear.db"), 1e-12);
}

TEST_CASE("LayerNorm and RMSNorm equal PyTorch, values and gradients") {
  nn::LayerNorm<{.dim = 6}, double> ln;
  ln.weight.value().copy_(fx().get("layer_norm.w"));
  ln.bias.value().copy_(fx().get("layer_norm.b"));
  V x = leaf("layer_norm.x");
  V y = ln(x);
  check_close(y.value(), fx().get("layer_norm.y"), 1e-10);
  y.backward(fx().get("layer_norm.g"));
  check_close(x.grad(), fx().get("layer_norm.dx"), 1e-9, 1e-12);
  check_close(ln.weight.grad(), fx().get("layer_norm.dw"), 1e-10);
  check_close(ln.bias.grad(), fx().get("layer_norm.db"), 1e-10);

  nn::RMSNorm<dsm::dynamic, double> rms({.dim = 6});
  rms.weight.value().copy_(fx().get("layer_norm.w"));
  V x2 = leaf("layer_norm.x");
  V y2 = rms(x2);
  check_close(y2.value(), fx().get("rms_norm.y"), 1e-10);
  y2.backward(fx().get("layer_norm.g"));
  check_close(x2.grad(), fx().get("rms_norm.dx"), 1e-9, 1e-12);
  check_close(rms.weight.grad(), fx().get("rms_norm.dw"), 1e-10);
}

TEST_CASE("rms_norm's row kernel in float: against loops in double, chunked weight gradient, same at 1 and 2 threads") {
  // 300 rows: the weight gradient is summed in 9 chunks of 34 rows (the last one short).
  dsm::Generator gen{31};
  const std::int64_t rows = 300, n = 24;
  const Tensor<float> x = Tensor<float>::randn({3, rows / 3, n}, gen), w = Tensor<float>::randn({n}, gen), g = Tensor<float>::randn({3, rows / 3, n}, gen);
  const double eps = 1e-6;
  for (const bool weighted : {true, false}) {
    CAPTURE(weighted);
    std::vector<double> y_ref(static_cast<std::size_t>(rows * n)), dx_ref(y_ref.size()), dw_ref(static_cast<std::size_t>(n), 0.0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float *xr = x.data() + r * n, *gr = g.data() + r * n;
      double ss = 0, dot = 0;
      for (std::int64_t c = 0; c < n; ++c) ss += double(xr[c]) * xr[c];
      const double rr = 1.0 / std::sqrt(ss / n + eps);
      for (std::int64_t c = 0; c < n; ++c) {
        const double wc = weighted ? w.data()[c] : 1.0;
        y_ref[static_cast<std::size_t>(r * n + c)] = xr[c] * rr * wc;
        dot += gr[c] * wc * xr[c];
        dw_ref[static_cast<std::size_t>(c)] += gr[c] * xr[c] * rr;
      }
      for (std::int64_t c = 0; c < n; ++c)
        dx_ref[static_cast<std::size_t>(r * n + c)] = rr * (gr[c] * (weighted ? w.data()[c] : 1.0) - xr[c] * rr * rr * dot / n);
    }
    std::vector<float> first[3];
    const int saved = dsm::get_num_threads();
    for (const int threads : {1, 2}) {
      CAPTURE(threads);
      dsm::set_num_threads(threads);
      const dsm::Var<float> xv(x.clone(), true), wv(w.clone(), weighted);
      const dsm::Var<float> y = F::rms_norm(xv, weighted ? wv : dsm::Var<float>(), eps);
      y.backward(g);
      const std::vector<float> got[3] = {y.value().to_vector(), xv.grad().to_vector(), weighted ? wv.grad().to_vector() : std::vector<float>{}};
      const std::vector<double>* want[3] = {&y_ref, &dx_ref, &dw_ref};
      for (int k = 0; k < (weighted ? 3 : 2); ++k)
        for (std::size_t i = 0; i < got[k].size(); ++i) CHECK(got[k][i] == doctest::Approx((*want[k])[i]).epsilon(1e-4).scale(1.0));
      if (threads == 1) {
        for (int k = 0; k < 3; ++k) first[k] = got[k];
      } else {
        for (int k = 0; k < 3; ++k) CHECK(got[k] == first[k]);  // bit-identical
      }
    }
    dsm::set_num_threads(saved);
  }
  // A strided input (a transposed view) is read through a contiguous copy: the same values.
  const Tensor<float> xt = Tensor<float>::randn({n, 40}, gen);
  CHECK(F::rms_norm(dsm::Var<float>(xt.t()), dsm::Var<float>(w)).value().to_vector() ==
        F::rms_norm(dsm::Var<float>(xt.t().contiguous()), dsm::Var<float>(w)).value().to_vector());
}

TEST_CASE("layer_norm's row kernel in float: against loops in double, chunked weight and bias gradients, same at 1 and 2 threads") {
  dsm::Generator gen{32};
  const std::int64_t rows = 300, n = 20;
  const Tensor<float> x = Tensor<float>::randn({rows, n}, gen) + 1.5f, w = Tensor<float>::randn({n}, gen), b = Tensor<float>::randn({n}, gen),
                      g = Tensor<float>::randn({rows, n}, gen);
  const double eps = 1e-5;
  for (const bool affine : {true, false}) {
    CAPTURE(affine);
    std::vector<double> y_ref(static_cast<std::size_t>(rows * n)), dx_ref(y_ref.size()), dw_ref(static_cast<std::size_t>(n), 0.0), db_ref(dw_ref);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float *xr = x.data() + r * n, *gr = g.data() + r * n;
      double mu = 0, var = 0, m1 = 0, m2 = 0;
      for (std::int64_t c = 0; c < n; ++c) mu += xr[c] / double(n);
      for (std::int64_t c = 0; c < n; ++c) var += (xr[c] - mu) * (xr[c] - mu) / n;
      const double rs = 1.0 / std::sqrt(var + eps);
      const auto wc = [&](std::int64_t c) { return affine ? double(w.data()[c]) : 1.0; };
      for (std::int64_t c = 0; c < n; ++c) {
        const double xhat = (xr[c] - mu) * rs;
        y_ref[static_cast<std::size_t>(r * n + c)] = xhat * wc(c) + (affine ? b.data()[c] : 0.0);
        m1 += gr[c] * wc(c) / n;
        m2 += gr[c] * wc(c) * xhat / n;
        dw_ref[static_cast<std::size_t>(c)] += gr[c] * xhat;
        db_ref[static_cast<std::size_t>(c)] += gr[c];
      }
      for (std::int64_t c = 0; c < n; ++c)
        dx_ref[static_cast<std::size_t>(r * n + c)] = rs * (gr[c] * wc(c) - m1 - (xr[c] - mu) * rs * m2);
    }
    std::vector<float> first[4];
    const int saved = dsm::get_num_threads();
    for (const int threads : {1, 2}) {
      CAPTURE(threads);
      dsm::set_num_threads(threads);
      const dsm::Var<float> xv(x.clone(), true), wv(w.clone(), affine), bv(b.clone(), affine);
      const dsm::Var<float> y = affine ? F::layer_norm(xv, wv, bv, eps) : F::layer_norm(xv, dsm::Var<float>(), dsm::Var<float>(), eps);
      y.backward(g);
      std::vector<float> got[4] = {y.value().to_vector(), xv.grad().to_vector(), {}, {}};
      if (affine) {
        got[2] = wv.grad().to_vector();
        got[3] = bv.grad().to_vector();
      }
      const std::vector<double>* want[4] = {&y_ref, &dx_ref, &dw_ref, &db_ref};
      for (int k = 0; k < (affine ? 4 : 2); ++k)
        for (std::size_t i = 0; i < got[k].size(); ++i) CHECK(got[k][i] == doctest::Approx((*want[k])[i]).epsilon(1e-4).scale(1.0));
      for (int k = 0; k < 4; ++k) {
        if (threads == 1) first[k] = got[k];
        else CHECK(got[k] == first[k]);  // bit-identical
      }
    }
    dsm::set_num_threads(saved);
  }
}

TEST_CASE("the norms take empty inputs: no rows, or rows of zero width") {
  for (const dsm::Shape& shape : {dsm::Shape{0, 4}, dsm::Shape{3, 0}}) {
    CAPTURE(shape);
    const std::int64_t n = shape[1];
    const dsm::Var<float> x(Tensor<float>::zeros(shape), true), w(Tensor<float>::ones({n}), true), b(Tensor<float>::zeros({n}), true);
    const dsm::Var<float> y = F::rms_norm(x, w), z = F::layer_norm(x, w, b);
    CHECK(y.shape() == shape);
    CHECK(z.shape() == shape);
    dsm::sum(dsm::Var<float>(y + z)).backward();
    CHECK(x.grad().shape() == shape);
    CHECK(w.grad().shape() == dsm::Shape{n});
    const std::vector<float> dw = w.grad().to_vector();
    CHECK(std::all_of(dw.begin(), dw.end(), [](float v) { return v == 0.f; }));
  }
}

TEST_CASE("SwiGLU MLP equals PyTorch") {
  nn::MLP<{.in_features = 4, .hidden = 6, .out_features = 4, .activation = nn::Activation::swiglu, .bias = false}, double> mlp;
  mlp.fc1.weight.value().copy_(fx().get("mlp.w1"));
  mlp.fc2.weight.value().copy_(fx().get("mlp.w2"));
  V x = leaf("mlp.x");
  V y = mlp(x);
  check_close(y.value(), fx().get("mlp.y"), 1e-12);
  y.backward(fx().get("mlp.g"));
  check_close(x.grad(), fx().get("mlp.dx"), 1e-11);
  check_close(mlp.fc1.weight.grad(), fx().get("mlp.dw1"), 1e-11);
  check_close(mlp.fc2.weight.grad(), fx().get("mlp.dw2"), 1e-11);
}

TEST_CASE("gradcheck: layers and functional forms") {
  DSM_GRADCHECK([](const Inputs& in) { return F::layer_norm(in[0], in[1], in[2]); }, randn({3, 5}, 1), randn({5}, 2), randn({5}, 3));
  DSM_GRADCHECK([](const Inputs& in) { return F::layer_norm(in[0], V(), V(), 1e-3); }, randn({4}, 1));
  DSM_GRADCHECK([](const Inputs& in) { return F::rms_norm(in[0], in[1]); }, randn({2, 2, 5}, 4), randn({5}, 5));
  DSM_GRADCHECK([](const Inputs& in) { return F::swiglu(in[0]); }, randn({3, 8}, 6));
  DSM_GRADCHECK([](const Inputs& in) {
    dsm::Generator gen(9);  // the same mask at every evaluation
    return F::dropout(in[0], 0.3, true, gen);
  }, randn({4, 5}, 7));
  nn::Embedding<{.num_embeddings = 6, .dim = 3}, double> emb;
  const auto ids = Tensor<std::int64_t>::from({{5, 0}, {5, 2}});
  DSM_GRADCHECK([&](const Inputs& in) { return dsm::embedding(in[0], ids); }, emb.weight);
  nn::MLP<{.in_features = 3, .hidden = 4, .out_features = 2, .activation = nn::Activation::gelu}, double> mlp;
  DSM_GRADCHECK([&](const Inputs& in) { return mlp(in[0]); }, randn({2, 3}, 8), mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight);
}

TEST_CASE("losses equal PyTorch's, values and gradients") {
  const auto target = fx().get<std::int64_t>("ce.target");
  for (const auto& [name, opt] : std::vector<std::pair<std::string, F::CrossEntropyOptions>>{
           {"mean", {}}, {"sum", {.reduction = nn::Reduction::sum}}, {"smooth", {.label_smoothing = 0.1}}}) {
    CAPTURE(name);
    V logits = leaf("ce.logits");
    V loss = F::cross_entropy(logits, target, opt);
    check_close(loss.value(), fx().get("ce." + name + ".loss"), 1e-12);
    loss.backward();
    check_close(logits.grad(), fx().get("ce." + name + ".dlogits"), 1e-11, 1e-14);
  }
  V logits = leaf("ce.logits");
  V none = F::cross_entropy(logits, target, {.label_smoothing = 0.2, .reduction = nn::Reduction::none});
  check_close(none.value(), fx().get("ce.none.loss"), 1e-12);
  none.backward(fx().get("ce.none.g"));
  check_close(logits.grad(), fx().get("ce.none.dlogits"), 1e-11, 1e-14);

  V logits2 = leaf("ce.logits");
  V nll = F::nll_loss(dsm::log_softmax(logits2, 1), target);
  check_close(nll.value(), fx().get("nll.loss"), 1e-12);
  nll.backward();
  check_close(logits2.grad(), fx().get("nll.dlogits"), 1e-11, 1e-14);

  V x = leaf("bce.x");
  const V t(fx().get("bce.t"));
  V bce = F::binary_cross_entropy_with_logits(x, t);
  check_close(bce.value(), fx().get("bce.loss"), 1e-12);
  bce.backward();
  check_close(x.grad(), fx().get("bce.dx"), 1e-11);
  V x2 = leaf("bce.x");
  V mse = F::mse_loss(x2, t, nn::Reduction::sum);
  check_close(mse.value(), fx().get("mse.loss"), 1e-12);
  mse.backward();
  check_close(x2.grad(), fx().get("mse.dx"), 1e-11);

  V s = leaf("kd.s"), te = leaf("kd.t");
  V kd = F::distillation_kl(s, te, 2.0);
  check_close(kd.value(), fx().get("kd.loss"), 1e-11);
  kd.backward();
  check_close(s.grad(), fx().get("kd.ds"), 1e-10, 1e-13);
  check_close(te.grad(), fx().get("kd.dt"), 1e-10, 1e-13);
}

TEST_CASE("gradcheck: losses") {
  const auto target = Tensor<std::int64_t>::from({2, -100, 0, 3});
  DSM_GRADCHECK([&](const Inputs& in) { return F::cross_entropy(in[0], target, {.label_smoothing = 0.3}); }, randn({4, 4}, 1));
  DSM_GRADCHECK([&](const Inputs& in) { return F::cross_entropy(in[0], target, {.reduction = nn::Reduction::none}); }, randn({4, 4}, 2));
  DSM_GRADCHECK([&](const Inputs& in) { return F::binary_cross_entropy_with_logits(in[0], in[1], nn::Reduction::none); }, randn({5}, 3), randn({5}, 4));
  DSM_GRADCHECK([&](const Inputs& in) { return F::distillation_kl(in[0], in[1], 3.0); }, randn({2, 5}, 5), randn({2, 5}, 6));
  DSM_GRADCHECK([&](const Inputs& in) { return F::mse_loss(in[0], in[1]); }, randn({2, 5}, 5), randn({2, 5}, 6));
}

TEST_CASE("losses: error paths") {
  V logits = randn({3, 4}, 1);
  CHECK_THROWS_WITH_AS(F::cross_entropy(logits, Tensor<std::int64_t>::from({0, 4, 1})),
                       "cross_entropy: target 4 at position 1 is out of range for 4 classes", dsm::index_error);
  CHECK_THROWS_WITH_AS(F::cross_entropy(logits, Tensor<std::int64_t>::from({0, 1})),
                       "cross_entropy: target of shape [2] for input of shape [3, 4]", dsm::shape_error);
  CHECK_THROWS_AS(F::cross_entropy(logits, Tensor<std::int64_t>::from({0, 1, 2}), {.label_smoothing = 1.5}), dsm::config_error);
  CHECK_THROWS_AS(F::mse_loss(logits, randn({4, 3}, 2)), dsm::shape_error);
  CHECK_THROWS_WITH_AS(F::layer_norm(logits, randn({3}, 3), V()), "layer_norm: weight of shape [3] for normalized size 4", dsm::shape_error);
  CHECK_THROWS_AS(F::distillation_kl(logits, logits, 0.0), dsm::config_error);
  // All targets ignored: the mean is NaN, as in PyTorch.
  V all_ignored = F::cross_entropy(logits, Tensor<std::int64_t>::from({-100, -100, -100}));
  CHECK(std::isnan(all_ignored.item()));
}
