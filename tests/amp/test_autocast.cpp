// Tests of autocast: GEMMs under it equal GEMMs over bf16/f16 copies of the operands (forward and
// backward, threaded and batched), what stays fp32, a bf16 training run close to fp32, and f16
// overflow caught by the scaler with no parameter touched.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <dsm/dsm.hpp>

using dsm::Tensor;
using dsm::Var;
using dsm::amp::autocast;
using dsm::amp::Precision;

namespace {
/// x rounded to bf16 or f16 and widened back: the operand a low-precision GEMM sees.
Tensor<float> rounded(const Tensor<float>& x, Precision p) {
  return p == Precision::bf16 ? x.to<dsm::bf16>().to<float>() : x.to<dsm::f16>().to<float>();
}
/// The fp32-accumulated product of bf16 or f16 copies of a and b (b transposed first when asked):
/// for bf16 on the AVX512-BF16 kernel where the CPU has one, as a bf16 matmul runs.
Tensor<float> low_precision_product(const Tensor<float>& a, const Tensor<float>& b, Precision p, bool transpose_b = false) {
  if (p == Precision::bf16) {
    const auto b16 = b.to<dsm::bf16>();
    return dsm::detail::matmul_acc(a.to<dsm::bf16>(), transpose_b ? b16.t() : b16);
  }
  return dsm::matmul(rounded(a, p), transpose_b ? rounded(b, p).t() : rounded(b, p));
}
}  // namespace

TEST_CASE("autocast: matmul equals a GEMM over rounded copies of the operands, bit for bit") {
  const bool saved = dsm::detail::gemm_bf16::enabled().load();
  for (const bool dot_kernel : {true, false}) {  // the AVX512-BF16 kernel on (where the CPU has one) and off
    CAPTURE(dot_kernel);
    dsm::cpu::set_bf16_dot_kernel(dot_kernel);
    dsm::Generator gen(1);
    for (Precision p : {Precision::bf16, Precision::f16}) {
      CAPTURE(static_cast<int>(p));
      // Sizes that cross the packing blocks (k > 384, n > panel width), a transposed operand, and a
      // batched product (one GEMM per worker thread: workers must inherit the mode).
      const Tensor<float> a = Tensor<float>::randn({67, 413}, gen), b = Tensor<float>::randn({29, 413}, gen);
      const Tensor<float> qa = Tensor<float>::randn({6, 9, 40}, gen), qb = Tensor<float>::randn({6, 40, 17}, gen);
      Tensor<float> c, cb;
      {
        autocast ac(p);
        CHECK(dsm::amp::is_autocast_enabled());
        c = dsm::matmul(a, b.t());
        cb = dsm::matmul(qa, qb);
      }
      CHECK_FALSE(dsm::amp::is_autocast_enabled());
      CHECK(c.to_vector() == low_precision_product(a, b, p, true).to_vector());
      CHECK(cb.to_vector() == low_precision_product(qa, qb, p).to_vector());
      // ... and differs from the fp32 product (the rounding really happened).
      CHECK(c.to_vector() != dsm::matmul(a, b.t()).to_vector());
    }
  }
  dsm::cpu::set_bf16_dot_kernel(saved);
  // A nested scope turns it off.
  dsm::Generator gen(3);
  const Tensor<float> a = Tensor<float>::randn({5, 7}, gen), b = Tensor<float>::randn({7, 3}, gen);
  autocast on(Precision::bf16);
  autocast off(Precision::bf16, false);
  CHECK(dsm::matmul(a, b).to_vector() == dsm::detail::matmul_acc(a, b).to_vector());
}

TEST_CASE("autocast: a linear layer's backward rounds as its forward did, even outside the scope") {
  dsm::Generator gen(2);
  const Tensor<float> xv = Tensor<float>::randn({12, 24}, gen), wv = Tensor<float>::randn({10, 24}, gen), gv = Tensor<float>::randn({12, 10}, gen);
  Var<float> x(xv.clone(), true), w(wv.clone(), true);
  Var<float> y;
  {
    autocast ac(Precision::bf16);
    y = dsm::linear(x, w);
  }
  y.backward(gv);
  const auto bf = Precision::bf16;
  CHECK(y.value().to_vector() == low_precision_product(xv, wv, bf, true).to_vector());
  CHECK(w.grad().to_vector() == low_precision_product(gv.t(), xv, bf).to_vector());  // dW = g^T x over rounded operands
  CHECK(x.grad().to_vector() == low_precision_product(gv, wv, bf).to_vector());      // dx = g W
}

TEST_CASE("autocast: MoE routers, norms and softmax stay fp32, the experts run in bf16") {
  dsm::Generator gen(3);
  dsm::moe::MoEOptions o;
  o.generator = &gen;
  dsm::moe::MoELayer<dsm::dynamic> layer({.d_model = 16, .d_ff = 24, .n_experts = 4, .top_k = 2}, o);
  layer.eval();
  const Var<float> x(Tensor<float>::randn({20, 16}, gen));
  dsm::no_grad ng;
  const auto plain = layer(x);
  const auto routed_fp32 = layer.router.route(x, {.top_k = 2});
  auto low = [&] {
    autocast ac(Precision::bf16);
    return std::make_pair(layer(x), layer.router.route(x, {.top_k = 2}));
  }();
  CHECK(low.second.logits.value().to_vector() == routed_fp32.logits.value().to_vector());  // router: fp32
  CHECK(low.first.expert_ids.to_vector() == plain.expert_ids.to_vector());
  const auto a = low.first.output.value().to_vector(), b = plain.output.value().to_vector();
  CHECK(a != b);  // experts: bf16 operands
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(3e-2).scale(1.0));

  const Var<float> s(Tensor<float>::randn({4, 9}, gen));
  dsm::nn::RMSNorm<dsm::dynamic> norm(dsm::nn::NormConfig{9});
  const auto soft = dsm::softmax(s, -1).value().to_vector(), normed = norm(s).value().to_vector();
  autocast ac(Precision::f16);
  CHECK(dsm::softmax(s, -1).value().to_vector() == soft);
  CHECK(norm(s).value().to_vector() == normed);
}

namespace {
dsm::models::TransformerConfig tiny_lm() {
  return {.vocab_size = 16, .d_model = 32, .n_layers = 2, .n_heads = 4, .d_ff = 32, .n_experts = 4, .top_k = 2, .first_dense_layers = 1};
}
/// Mean loss over the last 10 of `steps` AdamW steps on a fixed batch, in fp32 or bf16 autocast.
double train_tiny(bool bf16, int steps) {
  dsm::Generator gen(4);
  dsm::models::TransformerOptions o;
  o.generator = &gen;
  dsm::models::TransformerLM<dsm::dynamic> lm(tiny_lm(), o);
  const Tensor<std::int64_t> tokens = Tensor<std::int64_t>::randint(0, 16, {4, 17}, gen);
  const Tensor<std::int64_t> input = tokens.narrow(1, 0, 16).contiguous(), target = tokens.narrow(1, 1, 16).contiguous();
  dsm::optim::AdamW<float> opt(lm.named_parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  double tail = 0;
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    Var<float> loss;
    {
      autocast ac(Precision::bf16, bf16);
      auto out = lm(input);
      loss = dsm::models::lm_loss(out.logits, target);
    }
    loss.backward();
    opt.step();
    if (step >= steps - 10) tail += loss.item() / 10;
  }
  return tail;
}
}  // namespace

TEST_CASE("autocast: a bf16 training run of the tiny LM ends within a few percent of fp32") {
  const double fp32 = train_tiny(false, 60), bf16 = train_tiny(true, 60);
  MESSAGE("tiny LM, mean loss of steps 50-59: fp32 " << fp32 << ", bf16 autocast " << bf16);
  CHECK(fp32 < 2.0);  // it learned (ln 16 = 2.77 at the start)
  CHECK(std::abs(bf16 - fp32) / fp32 < 0.05);
}

TEST_CASE("autocast: f16 overflow is caught by the scaler, the step skipped, no parameter touched") {
  dsm::Generator gen(5);
  dsm::nn::Linear<dsm::dynamic> l1(dsm::nn::LinearConfig{8, 8}, {&gen}), l2(dsm::nn::LinearConfig{8, 1}, {&gen});
  std::vector<std::pair<std::string, Var<float>>> params;
  for (auto& [n, p] : l1.named_parameters()) params.emplace_back("l1." + n, p);
  for (auto& [n, p] : l2.named_parameters()) params.emplace_back("l2." + n, p);
  dsm::optim::Adam<float> opt(params, {.lr = 1e-2});
  dsm::amp::GradScaler scaler;  // 2^16
  const Tensor<float> x(Tensor<float>::randn({32, 8}, gen) * 100.f);
  std::vector<std::vector<float>> before;
  for (auto& [n, p] : params) before.push_back(p.value().to_vector());

  // The loss's gradient times 2^16 passes 65504: the backward GEMMs' f16 operands become inf.
  opt.zero_grad();
  Var<float> loss;
  {
    autocast ac(Precision::f16);
    loss = dsm::mean(Var<float>(dsm::square(l2(dsm::relu(l1(Var<float>(x)))))));
  }
  CHECK(std::isfinite(loss.item()));
  scaler.scale(loss).backward();
  CHECK_FALSE(scaler.step(opt));
  scaler.update();
  CHECK(scaler.get_scale() == 32768.0);
  CHECK(opt.steps() == 0);
  for (std::size_t i = 0; i < params.size(); ++i) CHECK(params[i].second.value().to_vector() == before[i]);  // untouched
  CHECK(opt.state_dict().size() == 2);  // step and lr only: no moment estimates were created

  // The scale backs off until the scaled gradients fit in f16, then the steps go through.
  int skipped = 1;
  for (int i = 0; i < 40 && !opt.steps(); ++i) {
    opt.zero_grad();
    {
      autocast ac(Precision::f16);
      loss = dsm::mean(Var<float>(dsm::square(l2(dsm::relu(l1(Var<float>(x)))))));
    }
    scaler.scale(loss).backward();
    skipped += scaler.step(opt) ? 0 : 1;
    scaler.update();
  }
  MESSAGE("f16: " << skipped << " steps skipped before the scale settled at " << scaler.get_scale());
  CHECK(opt.steps() == 1);
  CHECK(skipped >= 2);  // several backoffs: 2^16 was far too large for these gradients
  CHECK(scaler.get_scale() < 32768.0);
  CHECK(params[0].second.value().to_vector() != before[0]);
}
