// Tests of attention: plain and memory-efficient kernels against PyTorch (masks, GQA, cross and
// decoding shapes), rotary embeddings, the multi-head module (self, cross, GQA + RoPE), joint
// cross-modal attention, KV-cache decoding, memory, gradcheck and errors.
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using dsm::Tensor;
using dsm::Var;
namespace F = dsm::nn::functional;

namespace {

const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("attention.txt"); }

Tensor<bool> bool_fixture(const std::string& name) {
  const auto v = fx().get<std::int64_t>(name);
  Tensor<bool> b(v.shape());
  for (std::int64_t i = 0; i < v.numel(); ++i) b.data()[i] = v.data()[i] != 0;
  return b;
}

using Attn = dsm::nn::MultiheadAttention<dsm::dynamic, double>;

void load_projections(Attn& a, const std::string& prefix) {
  a.q_proj.weight.value().copy_(fx().get(prefix + ".wq"));
  a.k_proj.weight.value().copy_(fx().get(prefix + ".wk"));
  a.v_proj.weight.value().copy_(fx().get(prefix + ".wv"));
  a.o_proj.weight.value().copy_(fx().get(prefix + ".wo"));
}

}  // namespace

TEST_CASE("attention and flash_attention equal PyTorch: GQA + causal + padding, cross, decoding, multi-block, several key chunks") {
  struct Case {
    const char* name;
    bool causal, padded;
  };
  for (const Case& c : {Case{"sdpa_gqa_causal_pad", true, true}, Case{"sdpa_cross", false, false}, Case{"sdpa_decode", true, false},
                        Case{"sdpa_long", true, true}, Case{"sdpa_chunks", true, true}}) {
    for (bool flash : {false, true}) {
      const std::string n = c.name;
      CAPTURE(n);
      CAPTURE(flash);
      const Var<double> q(fx().get(n + ".q"), true), k(fx().get(n + ".k"), true), v(fx().get(n + ".v"), true);
      F::AttentionOptions o;
      o.causal = c.causal;
      if (c.padded) o.key_padding_mask = bool_fixture(n + ".pad");
      const Var<double> out = flash ? F::flash_attention(q, k, v, o) : F::attention(q, k, v, o);
      dsm_test::check_close(out.value(), fx().get(n + ".o"), 1e-10, 1e-12);
      dsm::sum(Var<double>(out * fx().get(n + ".g"))).backward();
      dsm_test::check_close(q.grad(), fx().get(n + ".dq"), 1e-9, 1e-11);
      dsm_test::check_close(k.grad(), fx().get(n + ".dk"), 1e-9, 1e-11);
      dsm_test::check_close(v.grad(), fx().get(n + ".dv"), 1e-9, 1e-11);
    }
  }
}

TEST_CASE("flash_attention equals the plain kernel in float on random shapes, gradients included, and a query with no visible key gives zeros") {
  // 97 queries and 70 keys: two blocks each way, so the backward packs its block operands once.
  dsm::Generator gen(3);
  const Var<float> q(Tensor<float>::randn({2, 4, 97, 16}, gen), true), k(Tensor<float>::randn({2, 2, 70, 16}, gen), true),
      v(Tensor<float>::randn({2, 2, 70, 12}, gen), true);
  const Var<float> r(Tensor<float>::randn({2, 4, 97, 12}, gen));
  F::AttentionOptions o;
  o.causal = true;  // Tq > Tk: the first 27 queries see no key at all
  std::vector<std::vector<float>> grads[2];
  std::vector<float> values[2];
  for (const int flash : {0, 1}) {
    for (const Var<float>* x : {&q, &k, &v}) x->zero_grad();
    const Var<float> out = flash ? F::flash_attention(q, k, v, o) : F::attention(q, k, v, o);
    dsm::sum(out * r).backward();
    values[flash] = out.value().to_vector();
    for (const Var<float>* x : {&q, &k, &v}) grads[flash].push_back(x->grad().to_vector());
  }
  for (std::size_t i = 0; i < values[0].size(); ++i) CHECK(values[1][i] == doctest::Approx(values[0][i]).epsilon(1e-4));
  for (std::size_t i = 0; i < 27 * 12; ++i) CHECK(values[1][i] == 0.f);
  for (std::size_t g = 0; g < 3; ++g) {
    CAPTURE(g);
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < grads[0][g].size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::abs(grads[1][g][i] - grads[0][g][i])));
      scale = std::max(scale, static_cast<double>(std::abs(grads[0][g][i])));
    }
    CHECK(scale > 0.1);
    CHECK(worst < 1e-4 * scale);
  }
}

TEST_CASE("flash_attention gives the same bits at 1 to 5 threads, gradients included") {
  // Threads take whole (batch, kv head) pairs, so each head's blocks are summed in one order
  // whatever the thread count: 6 pairs on 1 to 5 threads, GQA (two query heads per kv head),
  // causal with key padding, two blocks each way.
  dsm::Generator gen(8);
  const Var<float> q(Tensor<float>::randn({3, 4, 90, 16}, gen), true), k(Tensor<float>::randn({3, 2, 90, 16}, gen), true),
      v(Tensor<float>::randn({3, 2, 90, 8}, gen), true);
  const Var<float> r(Tensor<float>::randn({3, 4, 90, 8}, gen));
  Tensor<bool> pad = Tensor<bool>::zeros({3, 90});
  for (std::int64_t t = 70; t < 90; ++t) pad(1, t) = true;
  F::AttentionOptions o;
  o.causal = true;
  o.key_padding_mask = pad;
  const int saved = dsm::get_num_threads();
  std::vector<std::vector<float>> want;
  for (int threads = 1; threads <= 5; ++threads) {
    CAPTURE(threads);
    dsm::set_num_threads(threads);
    for (const Var<float>* x : {&q, &k, &v}) x->zero_grad();
    const Var<float> out = F::flash_attention(q, k, v, o);
    dsm::sum(out * r).backward();
    const std::vector<std::vector<float>> got = {out.value().to_vector(), q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
    if (threads == 1) want = got;
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == want[i]);
  }
  dsm::set_num_threads(saved);
}

TEST_CASE("flash_attention and rotary read split heads where they lie and answer in their layout") {
  // Heads split from a projection's [B, T, H * D] output are time-major [B, H, T, D] views. The
  // kernels must give exactly what they give on contiguous copies, and outputs and gradients must
  // come back time-major, so that merging the heads is a view.
  dsm::Generator gen(11);
  const Var<float> xq(Tensor<float>::randn({2, 97, 4 * 16}, gen), true), xk(Tensor<float>::randn({2, 70, 2 * 16}, gen), true),
      xv(Tensor<float>::randn({2, 70, 2 * 12}, gen), true);
  const auto heads = [](const Var<float>& x, std::int64_t n) { return x.view({x.size(0), x.size(1), n, x.size(2) / n}).transpose(1, 2); };
  const Var<float> q = heads(xq, 4), k = heads(xk, 2), v = heads(xv, 2);
  const Var<float> qc(q.value().contiguous(), true), kc(k.value().contiguous(), true), vc(v.value().contiguous(), true);
  REQUIRE_FALSE(q.value().is_contiguous());
  const Var<float> r(Tensor<float>::randn({2, 4, 97, 12}, gen));
  F::AttentionOptions o;
  o.causal = true;
  const Var<float> out = F::flash_attention(F::rotary(q, 2), F::rotary(k, 2), v, o);
  const Var<float> ref = F::flash_attention(F::rotary(qc, 2), F::rotary(kc, 2), vc, o);
  CHECK(out.value().transpose(1, 2).is_contiguous());  // time-major, like q
  CHECK(ref.value().is_contiguous());
  CHECK(out.value().contiguous().to_vector() == ref.value().to_vector());
  CHECK(F::rotary(q, 2).value().transpose(1, 2).is_contiguous());
  dsm::sum(out * r).backward();
  dsm::sum(ref * r).backward();
  // The leaves' gradients are [B, T, H * D]; the reference's, [B, H, T, D].
  const auto as_time_major = [](const Tensor<float>& g) { return g.transpose(1, 2).contiguous().to_vector(); };
  CHECK(xq.grad().to_vector() == as_time_major(qc.grad()));
  CHECK(xk.grad().to_vector() == as_time_major(kc.grad()));
  CHECK(xv.grad().to_vector() == as_time_major(vc.grad()));
  // A last dimension that is not contiguous ([B, H, D, T] storage) is read through a copy.
  const Var<float> kt(kc.value().transpose(2, 3).contiguous().transpose(2, 3));
  REQUIRE(kt.value().stride(3) != 1);
  CHECK(F::flash_attention(qc, kt, vc, o).value().to_vector() == F::flash_attention(qc, kc, vc, o).value().to_vector());
}

TEST_CASE("attention gradcheck: plain and flash, GQA with causal and padding masks, rotary") {
  F::AttentionOptions o;
  o.causal = true;
  o.key_padding_mask = Tensor<bool>::zeros({2, 5});
  o.key_padding_mask.data()[9] = true;
  for (bool flash : {false, true}) {
    DSM_GRADCHECK([&](const auto& in) { return flash ? F::flash_attention(in[0], in[1], in[2], o) : F::attention(in[0], in[1], in[2], o); },
                  dsm_test::grad_randn({2, 4, 4, 3}, 1), dsm_test::grad_randn({2, 2, 5, 3}, 2), dsm_test::grad_randn({2, 2, 5, 2}, 3));
  }
  DSM_GRADCHECK([](const auto& in) { return F::rotary(in[0], 5, 100.0); }, dsm_test::grad_randn({2, 3, 6}, 4));
}

TEST_CASE("rotary embeddings equal HuggingFace's rotate-half RoPE") {
  const Var<double> x(fx().get("rope.x"), true);
  const Var<double> y = F::rotary(x, 3);
  dsm_test::check_close(y.value(), fx().get("rope.y"), 1e-12, 1e-13);
  dsm::sum(Var<double>(y * fx().get("rope.g"))).backward();
  dsm_test::check_close(x.grad(), fx().get("rope.dx"), 1e-12, 1e-13);
  // The cos / sin table is kept between calls with the same positions and sizes: calls with
  // other offsets, lengths, widths and theta in between must not read a stale one.
  const auto first = y.value().to_vector();
  const auto other_offset = F::rotary(x, 4).value().to_vector();
  CHECK(other_offset != first);
  const Var<double> longer(dsm::Tensor<double>::randn({2, 9, x.size(-1)}));
  const Var<double> wider(dsm::Tensor<double>::randn({2, x.size(-2), x.size(-1) + 2}));
  const auto y_longer = F::rotary(longer, 3).value();
  (void)F::rotary(wider, 3);
  (void)F::rotary(x, 3, 500.0);
  CHECK(F::rotary(x, 3).value().to_vector() == first);
  // Shifting the sequence by one position is rotating from offset 4 instead of 3.
  const Var<double> shifted(longer.value().narrow(1, 1, 8).contiguous());
  dsm_test::check_close(F::rotary(shifted, 4).value(), y_longer.narrow(1, 1, 8), 1e-12, 1e-12);
}

TEST_CASE("MultiheadAttention equals PyTorch: GQA + RoPE causal self-attention, and cross-attention") {
  for (bool flash : {true, false}) {
    CAPTURE(flash);
    dsm::nn::MultiheadAttentionOptions opt;
    opt.memory_efficient = flash;
    Attn self({.d_model = 16, .n_heads = 4, .n_kv_heads = 2, .rope = true}, opt);
    load_projections(self, "mha_gqa_rope");
    const Var<double> x(fx().get("mha_gqa_rope.x"), true);
    const Var<double> y = self(x, {.causal = true});
    dsm_test::check_close(y.value(), fx().get("mha_gqa_rope.y"), 1e-10, 1e-12);
    dsm::sum(Var<double>(y * fx().get("mha_gqa_rope.g"))).backward();
    dsm_test::check_close(x.grad(), fx().get("mha_gqa_rope.dx"), 1e-9, 1e-11);
    dsm_test::check_close(self.q_proj.weight.grad(), fx().get("mha_gqa_rope.dwq"), 1e-9, 1e-11);
    dsm_test::check_close(self.k_proj.weight.grad(), fx().get("mha_gqa_rope.dwk"), 1e-9, 1e-11);
    dsm_test::check_close(self.v_proj.weight.grad(), fx().get("mha_gqa_rope.dwv"), 1e-9, 1e-11);
    dsm_test::check_close(self.o_proj.weight.grad(), fx().get("mha_gqa_rope.dwo"), 1e-9, 1e-11);

    Attn cross({.d_model = 16, .n_heads = 4}, opt);
    load_projections(cross, "mha_cross");
    const Var<double> xq(fx().get("mha_cross.x"), true), ctx(fx().get("mha_cross.ctx"), true);
    const Var<double> z = cross(xq, ctx);
    dsm_test::check_close(z.value(), fx().get("mha_cross.y"), 1e-10, 1e-12);
    dsm::sum(Var<double>(z * fx().get("mha_cross.g"))).backward();
    dsm_test::check_close(xq.grad(), fx().get("mha_cross.dx"), 1e-9, 1e-11);
    dsm_test::check_close(ctx.grad(), fx().get("mha_cross.dctx"), 1e-9, 1e-11);
    dsm_test::check_close(cross.k_proj.weight.grad(), fx().get("mha_cross.dwk"), 1e-9, 1e-11);
  }
}

TEST_CASE("JointAttention (cross-modal, single stream) equals PyTorch, with image padding") {
  dsm::nn::JointAttention<dsm::dynamic, double> joint({.d_model = 8, .n_heads = 2});
  joint.modality_embedding.weight.value().copy_(fx().get("joint.types"));
  joint.attention.q_proj.weight.value().copy_(fx().get("joint.wq"));
  joint.attention.k_proj.weight.value().copy_(fx().get("joint.wk"));
  joint.attention.v_proj.weight.value().copy_(fx().get("joint.wv"));
  joint.attention.o_proj.weight.value().copy_(fx().get("joint.wo"));
  const Var<double> text(fx().get("joint.text"), true), image(fx().get("joint.image"), true);
  const auto outs = joint({text, image}, {Tensor<bool>(), bool_fixture("joint.image_pad")});
  REQUIRE(outs.size() == 2);
  const Var<double> both = dsm::cat(outs, 1);
  dsm_test::check_close(both.value(), fx().get("joint.out"), 1e-10, 1e-12);
  dsm::sum(Var<double>(both * fx().get("joint.g"))).backward();
  dsm_test::check_close(text.grad(), fx().get("joint.dtext"), 1e-9, 1e-11);
  dsm_test::check_close(image.grad(), fx().get("joint.dimage"), 1e-9, 1e-11);
  dsm_test::check_close(joint.modality_embedding.weight.grad(), fx().get("joint.dtypes"), 1e-9, 1e-11);
  CHECK_THROWS_AS(joint({text, image, text}), dsm::shape_error);
}

TEST_CASE("KV-cache decoding equals full recomputation, token by token and in chunks") {
  dsm::Generator gen(12);
  dsm::nn::MultiheadAttentionOptions opt;
  opt.generator = &gen;
  Attn attn({.d_model = 24, .n_heads = 6, .n_kv_heads = 2, .rope = true}, opt);
  const Tensor<double> x = Tensor<double>::randn({2, 11, 24}, gen);
  const auto full = attn(Var<double>(x), {.causal = true}).value();
  dsm::no_grad guard;
  dsm::nn::KVCache<double> cache;
  std::vector<Tensor<double>> pieces;
  pieces.push_back(attn(Var<double>(x.narrow(1, 0, 4).contiguous()), {.causal = true}, &cache).value());  // a prompt of 4
  for (std::int64_t t = 4; t < 11; ++t) pieces.push_back(attn(Var<double>(x.narrow(1, t, 1).contiguous()), {.causal = true}, &cache).value());
  CHECK(cache.length() == 11);
  dsm_test::check_close(dsm::cat(pieces, 1), full, 1e-12, 1e-13);
  cache.reset();
  CHECK(cache.length() == 0);
  CHECK_THROWS_AS(cache.append(Tensor<double>::zeros({2, 2, 1, 4}), Tensor<double>::zeros({2, 2, 2, 4})), dsm::shape_error);
}

TEST_CASE("flash_attention's peak memory grows linearly: far below the plain kernel's at T = 1024") {
  dsm::Generator gen(5);
  const Var<float> q(Tensor<float>::randn({1, 4, 1024, 32}, gen), true), k(Tensor<float>::randn({1, 4, 1024, 32}, gen), true),
      v(Tensor<float>::randn({1, 4, 1024, 32}, gen), true);
  auto peak_of = [&](bool flash) {
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
    const std::size_t base = dsm::cpu::memory_stats().current_bytes;
    dsm::cpu::reset_peak_memory();
    {
      const Var<float> o = flash ? F::flash_attention(q, k, v, {.causal = true}) : F::attention(q, k, v, {.causal = true});
      dsm::sum(o).backward();
    }
    return dsm::cpu::memory_stats().peak_bytes - base;
  };
  const std::size_t plain = peak_of(false), flash = peak_of(true);
  MESSAGE("peak bytes at T = 1024: plain " << plain << ", flash " << flash);
  CHECK(flash * 8 < plain);
}

TEST_CASE("attention errors name the problem, dropout in the plain kernel is seeded") {
  const Var<float> q(Tensor<float>::zeros({1, 3, 4, 8})), k(Tensor<float>::zeros({1, 2, 4, 8})), v(Tensor<float>::zeros({1, 2, 4, 8}));
  CHECK_THROWS_WITH_AS(F::attention(q, k, v), doctest::Contains("the 2 key/value heads must divide the 3 query heads"), dsm::shape_error);
  CHECK_THROWS_AS(F::flash_attention(Var<float>(Tensor<float>::zeros({1, 2, 4})), k, v), dsm::shape_error);
  const Var<float> q2(Tensor<float>::randn({1, 2, 4, 8}));
  F::AttentionOptions o;
  o.dropout_p = 0.5;
  CHECK_THROWS_WITH_AS(F::flash_attention(q2, k, v, o), doctest::Contains("attention dropout needs the plain attention()"), dsm::config_error);
  o.key_padding_mask = Tensor<bool>::zeros({1, 5});
  CHECK_THROWS_WITH_AS(F::attention(q2, k, v, o), doctest::Contains("key_padding_mask [1, 5] must be [1, 4]"), dsm::shape_error);
  o.key_padding_mask = Tensor<bool>();
  dsm::Generator g1(9), g2(9);
  o.generator = &g1;
  const auto a = F::attention(q2, k, v, o).value().to_vector();
  o.generator = &g2;
  CHECK(F::attention(q2, k, v, o).value().to_vector() == a);
  CHECK_THROWS_WITH_AS(Attn({.d_model = 10, .n_heads = 4}), doctest::Contains("n_heads 4 must divide d_model 10"), dsm::config_error);
  CHECK_THROWS_WITH_AS(Attn({.d_model = 12, .n_heads = 4, .n_kv_heads = 3}), doctest::Contains("n_kv_heads 3 must divide n_heads 4"), dsm::config_error);
  CHECK_THROWS_WITH_AS(Attn({.d_model = 12, .n_heads = 4, .rope = true}), doctest::Contains("rotary embeddings need an even head dimension, got 3"),
                       dsm::config_error);
  Attn attn({.d_model = 8, .n_heads = 2});
  CHECK_THROWS_WITH_AS(attn(Var<double>(Tensor<double>::zeros({2, 3, 7}))), doctest::Contains("input of shape [2, 3, 7] must be [batch, time, 8]"),
                       dsm::shape_error);
  dsm::nn::KVCache<double> cache;
  CHECK_THROWS_WITH_AS(attn(Var<double>(Tensor<double>::zeros({1, 2, 8}), true), {}, &cache), doctest::Contains("run decoding under dsm::no_grad"),
                       dsm::error);
}
