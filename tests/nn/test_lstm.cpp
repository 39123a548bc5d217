// Tests of the LSTM layer and cell: values, final states and every gradient against
// torch.nn.LSTM (stacked, bidirectional, batch-first and time-first, initial states, variable
// lengths), the fused layer against the unrolled cell, the float path (packed per-step GEMMs)
// against double, no_grad and input-without-gradient paths, padding semantics, gradcheck and errors.
#include <doctest/doctest.h>

#include <map>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using dsm::Tensor;
using dsm::Var;
namespace F = dsm::nn::functional;

namespace {

const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("lstm.txt"); }

using DynLSTM = dsm::nn::LSTM<dsm::dynamic, double>;

struct Case {
  const char* name;
  std::int64_t input, hidden, layers;
  bool bidirectional, batch_first, lengths, state;
};

void check_case(const Case& c) {
  CAPTURE(c.name);
  const std::string p = std::string(c.name) + ".";
  DynLSTM lstm({.input_size = c.input, .hidden_size = c.hidden, .num_layers = c.layers, .bidirectional = c.bidirectional, .batch_first = c.batch_first});
  for (auto& [name, v] : lstm.named_parameters<double>()) v.value().copy_(fx().get(p + name));
  Var<double> x(fx().get(p + "x"), true);
  std::vector<std::int64_t> lengths;
  if (c.lengths) lengths = fx().get<std::int64_t>(p + "lengths").to_vector();
  dsm::nn::LSTMState<double> state;
  if (c.state) state = {Var<double>(fx().get(p + "h0"), true), Var<double>(fx().get(p + "c0"), true)};
  const auto r = lstm(x, lengths, state);
  dsm_test::check_close(r.output.value(), fx().get(p + "out"));
  dsm_test::check_close(r.h_n.value(), fx().get(p + "h_n"));
  dsm_test::check_close(r.c_n.value(), fx().get(p + "c_n"));
  const Var<double> loss = dsm::sum(r.output * Var<double>(fx().get(p + "r_out"))) + dsm::sum(r.h_n * Var<double>(fx().get(p + "r_h"))) +
                           dsm::sum(r.c_n * Var<double>(fx().get(p + "r_c")));
  loss.backward();
  dsm_test::check_close(x.grad(), fx().get(p + "grad.x"));
  for (auto& [name, v] : lstm.named_parameters<double>()) {
    CAPTURE(name);
    dsm_test::check_close(v.grad(), fx().get(p + "grad." + name));
  }
  if (c.state) {
    dsm_test::check_close(state.h.grad(), fx().get(p + "grad.h0"));
    dsm_test::check_close(state.c.grad(), fx().get(p + "grad.c0"));
  }
}

}  // namespace

TEST_CASE("LSTM equals torch.nn.LSTM: values, final states and gradients") {
  check_case({"stacked", 4, 3, 2, false, true, false, true});
  check_case({"bi_lengths", 4, 3, 1, true, true, true, false});
  check_case({"bi_stacked_time_first", 3, 2, 2, true, false, true, true});
}

TEST_CASE("LSTM parameters carry torch.nn.LSTM's names and shapes") {
  dsm::nn::LSTM<{.input_size = 5, .hidden_size = 4, .num_layers = 2, .bidirectional = true}> lstm;
  std::vector<std::string> names;
  for (auto& [name, v] : lstm.named_parameters<float>()) names.push_back(name);
  const std::vector<std::string> expected{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                          "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
                                          "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
                                          "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
  CHECK(names == expected);
  CHECK(lstm.weights(1, 0).w_ih.shape() == dsm::Shape{16, 8});
  CHECK(lstm.weights(0, 1).w_hh.shape() == dsm::Shape{16, 4});
  // U(+-1/sqrt(4)) as PyTorch initializes.
  for (auto& [name, v] : lstm.named_parameters<float>()) {
    CHECK(dsm::max(dsm::abs(v.value())).item() <= 0.5f);
    CHECK(dsm::max(dsm::abs(v.value())).item() > 0.3f);
  }
}

TEST_CASE("The fused LSTM layer equals the LSTMCell unrolled step by step, in both directions") {
  dsm::Generator gen(3);
  const std::int64_t nb = 2, steps = 6, in = 3, hs = 4;
  dsm::nn::LSTMCell<double> fwd(in, hs, true, gen), bwd(in, hs, true, gen);
  const Var<double> x(Tensor<double>::randn({nb, steps, in}, gen));
  const std::vector<F::LSTMDirection<double>> dirs{{fwd.weight_ih, fwd.weight_hh, fwd.bias_ih, fwd.bias_hh},
                                                   {bwd.weight_ih, bwd.weight_hh, bwd.bias_ih, bwd.bias_hh}};
  const std::vector<std::int64_t> lengths{6, 4};
  const auto r = F::lstm_layer(x, std::span(dirs), {}, lengths);
  REQUIRE(r.output.shape() == dsm::Shape{nb, steps, 2 * hs});
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    for (int d = 0; d < 2; ++d) {
      const auto& cell = d == 0 ? fwd : bwd;
      Var<double> h(Tensor<double>::zeros({1, hs})), c(Tensor<double>::zeros({1, hs}));
      for (std::int64_t s = 0; s < len; ++s) {
        const std::int64_t t = d == 0 ? s : len - 1 - s;
        std::tie(h, c) = cell(x.select(0, b).narrow(0, t, 1), h, c);
        dsm_test::check_close(r.output.value().select(0, b).select(0, t).narrow(0, d * hs, hs), h.value().select(0, 0), 1e-12, 1e-14);
      }
      dsm_test::check_close(r.h_n.value().select(0, d).select(0, b), h.value().select(0, 0), 1e-12, 1e-14);
      dsm_test::check_close(r.c_n.value().select(0, d).select(0, b), c.value().select(0, 0), 1e-12, 1e-14);
    }
    // Padded steps are zero in the output.
    for (std::int64_t t = len; t < steps; ++t) CHECK(dsm::max(dsm::abs(r.output.value().select(0, b).select(0, t))).item() == 0.0);
  }
}

TEST_CASE("Padded steps neither change the outputs of real steps nor receive gradient") {
  dsm::Generator gen(5);
  DynLSTM lstm({.input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true}, {.generator = &gen});
  const Tensor<double> base = Tensor<double>::randn({2, 5, 3}, gen);
  const std::vector<std::int64_t> lengths{5, 3};
  Var<double> x1(base.clone(), true);
  const auto r1 = lstm(x1, lengths);
  // Change the padding of sequence 1: nothing real moves.
  Tensor<double> other = base.clone();
  other.select(0, 1).narrow(0, 3, 2).copy_(Tensor<double>(Tensor<double>::randn({2, 3}, gen) * 100.0));
  const auto r2 = lstm(Var<double>(other), lengths);
  dsm_test::check_close(r2.output.value(), r1.output.value(), 0, 0);
  dsm_test::check_close(r2.h_n.value(), r1.h_n.value(), 0, 0);
  dsm::sum(r1.output * r1.output).backward();
  CHECK(dsm::max(dsm::abs(x1.grad().select(0, 1).narrow(0, 3, 2))).item() == 0.0);
  CHECK(dsm::max(dsm::abs(x1.grad().select(0, 1).narrow(0, 0, 3))).item() > 0.0);
  // A mask gives the same lengths as the list.
  Tensor<bool> mask = Tensor<bool>::full({2, 5}, true);
  mask.data()[8] = mask.data()[9] = false;
  CHECK(F::lengths_from_mask("LSTM", mask) == lengths);
}

TEST_CASE("lstm_layer gradcheck: one and two directions, lengths, initial state, both layouts") {
  for (const bool batch_first : {true, false}) {
    for (const int n_dirs : {1, 2}) {
      CAPTURE(batch_first);
      CAPTURE(n_dirs);
      const std::int64_t nb = 3, steps = 4, in = 2, hs = 3;
      std::vector<dsm_test::GradVar> ws;
      for (int d = 0; d < n_dirs; ++d) {
        ws.push_back(dsm_test::grad_randn({4 * hs, in}, 10 + d));
        ws.push_back(dsm_test::grad_randn({4 * hs, hs}, 20 + d));
        ws.push_back(dsm_test::grad_randn({4 * hs}, 30 + d));
        ws.push_back(dsm_test::grad_randn({4 * hs}, 40 + d));
      }
      const auto x = dsm_test::grad_randn(batch_first ? dsm::Shape{nb, steps, in} : dsm::Shape{steps, nb, in}, 1);
      const auto h0 = dsm_test::grad_randn({n_dirs, nb, hs}, 2), c0 = dsm_test::grad_randn({n_dirs, nb, hs}, 3);
      const std::vector<std::int64_t> lengths{4, 2, 3};
      auto f = [&](const dsm_test::GradInputs& v) {
        std::vector<F::LSTMDirection<double>> dirs;
        for (int d = 0; d < n_dirs; ++d) dirs.push_back({v[3 + 4 * d], v[4 + 4 * d], v[5 + 4 * d], v[6 + 4 * d]});
        const auto r = F::lstm_layer(v[0], std::span<const F::LSTMDirection<double>>(dirs), {.batch_first = batch_first}, lengths, v[1], v[2]);
        return dsm::sum(r.output * r.output) + dsm::sum(r.h_n * 0.7) + dsm::sum(r.c_n * r.c_n);
      };
      dsm_test::GradInputs in_vars{x, h0, c0};
      for (auto& w : ws) in_vars.push_back(w);
      const auto res = dsm::gradcheck(f, in_vars);
      CHECK_MESSAGE(res.ok, res.message);
    }
  }
}

TEST_CASE("lstm_layer's output is contiguous in both layouts, and zero steps give the initial state") {
  for (const bool batch_first : {true, false}) {
    CAPTURE(batch_first);
    const std::int64_t nb = 2, in = 3, hs = 4;
    dsm::Generator gen(5);
    std::vector<F::LSTMDirection<double>> dirs;
    for (int d = 0; d < 2; ++d)
      dirs.push_back({Var<double>(Tensor<double>::randn({4 * hs, in}, gen), true), Var<double>(Tensor<double>::randn({4 * hs, hs}, gen), true), {}, {}});
    for (const std::int64_t steps : {std::int64_t{5}, std::int64_t{0}}) {
      CAPTURE(steps);
      const Var<double> x(Tensor<double>::randn(batch_first ? dsm::Shape{nb, steps, in} : dsm::Shape{steps, nb, in}, gen), true);
      const Var<double> h0(Tensor<double>::randn({2, nb, hs}, gen), true), c0(Tensor<double>::randn({2, nb, hs}, gen), true);
      const auto r = F::lstm_layer(x, std::span<const F::LSTMDirection<double>>(dirs), {.batch_first = batch_first}, {}, h0, c0);
      // A projection after the layer reshapes its output to [B*T, 2H] without a copy.
      CHECK(r.output.value().is_contiguous());
      CHECK(r.output.shape() == (batch_first ? dsm::Shape{nb, steps, 2 * hs} : dsm::Shape{steps, nb, 2 * hs}));
      if (steps == 0) {
        dsm_test::check_close(r.h_n.value(), h0.value());
        dsm_test::check_close(r.c_n.value(), c0.value());
        dsm::sum(r.h_n * 2.0 + r.c_n * 3.0).backward();
        dsm_test::check_close(h0.grad(), Tensor<double>::full({2, nb, hs}, 2.0));
        dsm_test::check_close(c0.grad(), Tensor<double>::full({2, nb, hs}, 3.0));
        CHECK(x.grad().shape() == x.shape());
      }
    }
  }
}

TEST_CASE("Float LSTM (packed per-step GEMMs) follows the double one, and no_grad or an x without gradient skip work, not results") {
  // Sizes that exercise the float GEMM kernel's panel remainders: 7 rows, input 19 + hidden 13.
  using FLSTM = dsm::nn::LSTM<dsm::dynamic, float>;
  const dsm::nn::LSTMConfig cfg{.input_size = 19, .hidden_size = 13, .num_layers = 2, .bidirectional = true};
  FLSTM lf(cfg);
  DynLSTM ld(cfg);
  for (auto& [name, v] : ld.named_parameters<double>()) {
    for (auto& [fname, fv] : lf.named_parameters<float>())
      if (fname == name) v.value().copy_(fv.value().to<double>());
  }
  dsm::Generator gen(7);
  const Tensor<double> xd = Tensor<double>::randn({7, 6, 19}, gen);
  const std::vector<std::int64_t> lengths{6, 2, 5, 6, 1, 4, 3};
  const Tensor<double> rd = Tensor<double>::randn({7, 6, 26}, gen);

  Var<double> x64(xd.clone(), true);
  const auto r64 = ld(x64, lengths);
  dsm::sum(r64.output * Var<double>(rd)).backward();
  Var<float> x32(xd.to<float>(), true);
  const auto r32 = lf(x32, lengths);
  dsm::sum(r32.output * Var<float>(rd.to<float>())).backward();
  dsm_test::check_close(r32.output.value(), r64.output.value(), 1e-4, 1e-5);
  dsm_test::check_close(r32.c_n.value(), r64.c_n.value(), 1e-4, 1e-5);
  dsm_test::check_close(x32.grad(), x64.grad(), 1e-4, 1e-5);
  std::map<std::string, Tensor<float>> grads_with_dx;
  for (auto& [name, v] : lf.named_parameters<float>()) {
    CAPTURE(name);
    for (auto& [dname, dv] : ld.named_parameters<double>())
      if (dname == name) dsm_test::check_close(v.grad(), dv.grad(), 1e-4, 1e-5);
    grads_with_dx[name] = v.grad().clone();
  }

  {  // Nothing recorded: the same values, bit for bit.
    dsm::no_grad guard;
    const auto plain = lf(Var<float>(xd.to<float>()), lengths);
    CHECK_FALSE(plain.output.requires_grad());
    dsm_test::check_close(plain.output.value(), r32.output.value(), 0, 0);
    dsm_test::check_close(plain.h_n.value(), r32.h_n.value(), 0, 0);
    dsm_test::check_close(plain.c_n.value(), r32.c_n.value(), 0, 0);
  }
  // x without a gradient: the backward skips dx, the weight gradients are unchanged.
  lf.zero_grad();
  const auto r_nodx = lf(Var<float>(xd.to<float>()), lengths);
  dsm::sum(r_nodx.output * Var<float>(rd.to<float>())).backward();
  for (auto& [name, v] : lf.named_parameters<float>()) {
    CAPTURE(name);
    dsm_test::check_close(v.grad(), grads_with_dx[name], 0, 0);
  }
}

TEST_CASE("LSTM dropout between layers follows its seed and is off in eval") {
  DynLSTM a({.input_size = 3, .hidden_size = 4, .num_layers = 2}, {.dropout = 0.5, .dropout_seed = 9});
  DynLSTM b({.input_size = 3, .hidden_size = 4, .num_layers = 2}, {.dropout = 0.5, .dropout_seed = 9});
  b.load_state_dict(a.state_dict());
  dsm::Generator gen(1);
  const Var<double> x(Tensor<double>::randn({2, 5, 3}, gen));
  dsm_test::check_close(a(x).output.value(), b(x).output.value(), 0, 0);
  const auto train_out = a(x).output.value().clone();
  a.eval();
  b.eval();
  const auto eval_out = a(x).output.value();
  dsm_test::check_close(b(x).output.value(), eval_out, 0, 0);
  CHECK(dsm::max(dsm::abs(train_out - eval_out)).item() > 1e-3);
}

TEST_CASE("LSTM errors name the operation and the offending values") {
  DynLSTM lstm({.input_size = 3, .hidden_size = 4});
  const Var<double> x(Tensor<double>::zeros({2, 5, 3}));
  CHECK_THROWS_WITH_AS(lstm(Var<double>(Tensor<double>::zeros({2, 5, 4}))), "LSTM: input of shape [2, 5, 4] must be [batch, time, 3]", dsm::shape_error);
  const std::vector<std::int64_t> too_long{5, 6};
  CHECK_THROWS_WITH_AS(lstm(x, too_long), "lstm_layer: length 6 of sequence 1 is outside [0, 5]", dsm::index_error);
  const std::vector<std::int64_t> three{5, 5, 5};
  CHECK_THROWS_WITH_AS(lstm(x, three), "lstm_layer: 3 lengths for a batch of 2", dsm::shape_error);
  CHECK_THROWS_WITH_AS(lstm(x, {}, {Var<double>(Tensor<double>::zeros({1, 2, 5})), {}}), "LSTM: initial state of shape [1, 2, 5] must be [1, 2, 4]",
                       dsm::shape_error);
  CHECK_THROWS_WITH_AS(DynLSTM({.input_size = 3, .hidden_size = 0}), "LSTM: input_size and hidden_size must be positive", dsm::config_error);
  CHECK_THROWS_WITH_AS(DynLSTM({.input_size = 3, .hidden_size = 2}, {.dropout = 1.0}), "LSTM: dropout must be in [0, 1), got 1", dsm::config_error);
  Tensor<bool> gap = Tensor<bool>::full({1, 3}, true);
  gap.data()[1] = false;
  CHECK_THROWS_WITH_AS(F::lengths_from_mask("CRF", gap), "CRF: mask of sequence 0 has a gap at step 1 (masks must be prefixes)", dsm::error);
}
