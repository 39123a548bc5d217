// Tests of the MoE parts on their own: expert selection, gate weights, the dispatch plan, permute
// and un-permute, the grouped SwiGLU experts and the balancing losses.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>

#include <dsm/dsm.hpp>

#include "support/gradcheck.hpp"

using dsm::Tensor;
using dsm::Var;
using namespace dsm::moe;

namespace {
Tensor<std::int64_t> ids_of(std::initializer_list<std::initializer_list<std::int64_t>> rows) { return Tensor<std::int64_t>::from(rows); }
}  // namespace

TEST_CASE("select_experts: softmax top-k picks the largest scores, best first, ties to the lower index") {
  const auto scores = Tensor<float>::from({{0.1f, 0.5f, 0.2f, 0.2f}, {0.3f, 0.3f, 0.3f, 0.1f}});
  const auto ids = detail::select_experts(scores, RouteSpec{.top_k = 2});
  CHECK(ids.to_vector() == std::vector<std::int64_t>{1, 2, 0, 1});
}

TEST_CASE("select_experts: group-limited routing keeps the best groups, scored by max (softmax) or top-2 sum (sigmoid)") {
  // 3 groups of 2 experts: [0.9, 0.0], [0.5, 0.5], [0.6, 0.3]
  const auto sel = Tensor<double>::from({{0.9, 0.0, 0.5, 0.5, 0.6, 0.3}});
  // softmax scoring: group maxima 0.9, 0.5, 0.6 -> keep groups 0 and 2 -> experts 0 and 4
  CHECK(detail::select_experts(sel, RouteSpec{.top_k = 2, .gate = GateKind::softmax, .n_groups = 3, .topk_groups = 2}).to_vector() ==
        std::vector<std::int64_t>{0, 4});
  // sigmoid scoring: group sums 0.9, 1.0, 0.9 -> keep group 1 and then group 0 (tie to the lower)
  CHECK(detail::select_experts(sel, RouteSpec{.top_k = 2, .gate = GateKind::sigmoid, .n_groups = 3, .topk_groups = 2}).to_vector() ==
        std::vector<std::int64_t>{0, 2});
  // one group kept: both experts come from it even though expert 4 beats expert 3
  CHECK(detail::select_experts(sel, RouteSpec{.top_k = 2, .gate = GateKind::sigmoid, .n_groups = 3, .topk_groups = 1}).to_vector() ==
        std::vector<std::int64_t>{2, 3});
}

TEST_CASE("gate_weights: chosen scores, renormalized and scaled, gradcheck") {
  const auto ids = ids_of({{2, 0}, {1, 3}, {3, 2}});
  const Var<double> s(Tensor<double>::from({{0.1, 0.2, 0.3, 0.4}, {0.25, 0.25, 0.25, 0.25}, {0.7, 0.1, 0.15, 0.05}}), true);
  const auto w = gate_weights(s, ids, false, 2.0).value();
  CHECK(w.to_vector() == std::vector<double>{0.6, 0.2, 0.5, 0.5, 0.1, 0.3});
  const auto wn = gate_weights(s, ids, true, 1.0).value();
  CHECK(wn.to_vector()[0] == doctest::Approx(0.75));
  CHECK(wn.to_vector()[4] == doctest::Approx(0.25));
  for (bool normalize : {false, true}) {
    DSM_GRADCHECK([&](const auto& in) { return gate_weights(in[0], ids, normalize, 2.5); }, dsm_test::grad_randn({3, 4}, 7));
  }
  CHECK_THROWS_WITH_AS(gate_weights(s, ids_of({{4, 0}, {1, 3}, {3, 2}}), true, 1.0), doctest::Contains("gate_weights: expert id 4 out of range for 4 experts"),
                       dsm::index_error);
}

TEST_CASE("make_dispatch_plan: a stable counting sort by expert") {
  const auto ids = ids_of({{2, 0}, {0, 1}, {2, 1}, {0, 2}});
  const DispatchPlan p = make_dispatch_plan(ids, 4);
  CHECK(p.routed_per_expert == std::vector<std::int64_t>{3, 2, 3, 0});
  CHECK(p.expert_offsets == std::vector<std::int64_t>{0, 3, 5, 8, 8});
  // expert 0: tokens 0, 1, 3; expert 1: tokens 1, 2; expert 2: tokens 0, 2, 3 (token order kept)
  CHECK(p.token_of_row == std::vector<std::int64_t>{0, 1, 3, 1, 2, 0, 2, 3});
  CHECK(p.row_of_slot == std::vector<std::int64_t>{5, 0, 1, 3, 6, 4, 2, 7});
  CHECK(p.dropped() == 0);
  CHECK(p.rows_of(3) == 0);
}

TEST_CASE("make_dispatch_plan: capacity drops the later tokens of an over-full expert, exactly") {
  // 6 tokens, top-1; capacity factor 1.0 over 3 experts -> capacity 2
  const auto ids = ids_of({{0}, {0}, {1}, {0}, {0}, {2}});
  CHECK(expert_capacity(1.0, 6, 1, 3) == 2);
  CHECK(expert_capacity(0.0, 6, 1, 3) == -1);
  const DispatchPlan p = make_dispatch_plan(ids, 3, 2);
  CHECK(p.routed_per_expert == std::vector<std::int64_t>{4, 1, 1});
  CHECK(p.expert_offsets == std::vector<std::int64_t>{0, 2, 3, 4});
  CHECK(p.row_of_slot == std::vector<std::int64_t>{0, 1, 2, -1, -1, 3});  // tokens 3 and 4 dropped
  CHECK(p.dropped() == 2);
  // a dropped token leaves un-permute as zero: the residual carries it through
  const Var<double> x(Tensor<double>::randn({6, 3}), false);
  const auto y = unpermute_tokens(permute_tokens(x, p), Var<double>(), p).value().to_vector();
  const auto xv = x.value().to_vector();
  for (int t = 0; t < 6; ++t)
    for (int c = 0; c < 3; ++c) CHECK(y[static_cast<std::size_t>(t * 3 + c)] == ((t == 3 || t == 4) ? 0.0 : xv[static_cast<std::size_t>(t * 3 + c)]));
}

TEST_CASE("make_dispatch_plan: bad input is a clear error") {
  CHECK_THROWS_WITH_AS(make_dispatch_plan(ids_of({{0, 5}}), 4), doctest::Contains("expert id 5 at token 0 is out of range for 4 experts"), dsm::index_error);
  CHECK_THROWS_WITH_AS(make_dispatch_plan(ids_of({{0, -1}}), 4), doctest::Contains("expert id -1"), dsm::index_error);
  CHECK_THROWS_AS(make_dispatch_plan(Tensor<std::int64_t>::zeros({4}), 4), dsm::shape_error);
  CHECK_THROWS_WITH_AS(make_dispatch_plan(ids_of({{0}}), 4, -3), doctest::Contains("capacity must be -1"), dsm::config_error);
}

TEST_CASE("permute then un-permute returns the input exactly (top-1), and k copies weighted for top-k") {
  dsm::Generator gen(3);
  const Tensor<float> xv = Tensor<float>::randn({50, 7}, gen);
  const Var<float> x(xv, false);
  const auto ids1 = Tensor<std::int64_t>::randint(0, 5, {50, 1}, gen);
  const DispatchPlan p1 = make_dispatch_plan(ids1, 5);
  const Var<float> xp = permute_tokens(x, p1);
  // rows are grouped by expert
  for (std::int64_t e = 0; e < 5; ++e)
    for (std::int64_t r = p1.expert_offsets[static_cast<std::size_t>(e)]; r < p1.expert_offsets[static_cast<std::size_t>(e + 1)]; ++r)
      CHECK(ids1.to_vector()[static_cast<std::size_t>(p1.token_of_row[static_cast<std::size_t>(r)])] == e);
  CHECK(unpermute_tokens(xp, Var<float>(), p1).value().to_vector() == xv.to_vector());

  const auto ids3 = Tensor<std::int64_t>::randint(0, 5, {50, 3}, gen);
  const DispatchPlan p3 = make_dispatch_plan(ids3, 5);
  const Var<float> w(Tensor<float>::full({50, 3}, 0.5f), false);
  const auto y = unpermute_tokens(permute_tokens(x, p3), w, p3).value().to_vector();
  const auto xs = xv.to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i) CHECK(y[i] == doctest::Approx(1.5 * xs[i]));
}

TEST_CASE("permute and un-permute: gradcheck, with and without dropping") {
  const auto ids = ids_of({{1, 0}, {1, 2}, {1, 0}, {2, 1}});
  for (std::int64_t cap : {std::int64_t{-1}, std::int64_t{2}}) {
    const DispatchPlan p = make_dispatch_plan(ids, 3, cap);
    DSM_GRADCHECK([&](const auto& in) { return permute_tokens(in[0], p); }, dsm_test::grad_randn({4, 3}, 1));
    DSM_GRADCHECK([&](const auto& in) { return unpermute_tokens(in[0], in[1], p); }, dsm_test::grad_randn({p.rows(), 3}, 2),
                  dsm_test::grad_randn({4, 2}, 3));
  }
  const DispatchPlan p = make_dispatch_plan(ids, 3);
  CHECK_THROWS_WITH_AS(permute_tokens(Var<double>(Tensor<double>::zeros({5, 3})), p), doctest::Contains("the plan was made for 4 tokens, got 5"),
                       dsm::shape_error);
  CHECK_THROWS_AS(unpermute_tokens(Var<double>(Tensor<double>::zeros({7, 3})), Var<double>(), p), dsm::shape_error);
  CHECK_THROWS_AS(unpermute_tokens(Var<double>(Tensor<double>::zeros({8, 3})), Var<double>(Tensor<double>::zeros({4, 3})), p), dsm::shape_error);
}

TEST_CASE("grouped_swiglu equals each expert applied to its rows, gradcheck with an empty expert") {
  dsm::Generator gen(11);
  std::vector<FeedForward<double>> experts;
  for (int e = 0; e < 3; ++e) experts.emplace_back(4, 5, gen);
  const std::vector<std::int64_t> offsets{0, 3, 3, 7};  // expert 1 gets no rows
  const Var<double> x(Tensor<double>::randn({7, 4}, gen), true);
  const auto y = grouped_swiglu(x, offsets, std::span<const FeedForward<double>>(experts)).value();
  for (int e : {0, 2}) {
    const auto& ex = experts[static_cast<std::size_t>(e)];
    const auto rows = x.value().narrow(0, offsets[static_cast<std::size_t>(e)], offsets[static_cast<std::size_t>(e) + 1] - offsets[static_cast<std::size_t>(e)]);
    const Tensor<double> gate = dsm::linear(rows, ex.w1.value());
    const Tensor<double> act = gate * dsm::sigmoid(gate) * dsm::linear(rows, ex.w3.value());
    const Tensor<double> expect = dsm::linear(act, ex.w2.value());
    const auto got = y.narrow(0, offsets[static_cast<std::size_t>(e)], expect.size(0));
    const auto a = got.contiguous().to_vector(), b = expect.to_vector();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-12));
  }
  DSM_GRADCHECK(
      [&](const auto& in) {
        std::vector<FeedForward<double>> ex(3);
        for (int e = 0; e < 3; ++e) {
          ex[static_cast<std::size_t>(e)].w1 = in[static_cast<std::size_t>(1 + 3 * e)];
          ex[static_cast<std::size_t>(e)].w2 = in[static_cast<std::size_t>(2 + 3 * e)];
          ex[static_cast<std::size_t>(e)].w3 = in[static_cast<std::size_t>(3 + 3 * e)];
        }
        return grouped_swiglu(in[0], offsets, std::span<const FeedForward<double>>(ex));
      },
      dsm_test::grad_randn({7, 4}, 1), dsm_test::grad_randn({5, 4}, 2), dsm_test::grad_randn({4, 5}, 3), dsm_test::grad_randn({5, 4}, 4),
      dsm_test::grad_randn({5, 4}, 5), dsm_test::grad_randn({4, 5}, 6), dsm_test::grad_randn({5, 4}, 7), dsm_test::grad_randn({5, 4}, 8),
      dsm_test::grad_randn({4, 5}, 9), dsm_test::grad_randn({5, 4}, 10));
  CHECK_THROWS_WITH_AS(grouped_swiglu(x, std::vector<std::int64_t>{0, 3, 7}, std::span<const FeedForward<double>>(experts)),
                       doctest::Contains("offsets must have 4 entries from 0 to 7"), dsm::shape_error);
  CHECK_THROWS_AS(FeedForward<double>(0, 4, gen), dsm::config_error);
  CHECK_THROWS_WITH_AS(experts[0](Var<double>(Tensor<double>::zeros({2, 5}))), doctest::Contains("FeedForward: input of shape [2, 5] for d_model 4"),
                       dsm::shape_error);
}

TEST_CASE("grouped_swiglu on two threads runs experts side by side: bit-identical to one thread, a skewed expert split, an empty one") {
  // 100 rows: expert 0 holds 40 (more than half a thread's share at 2 threads, so its GEMMs are
  // split over both threads); the others run one thread each, largest first; expert 2 is empty.
  const std::vector<std::int64_t> offsets{0, 40, 49, 49, 62, 69, 80, 88, 100};
  const int saved = dsm::get_num_threads();
  dsm::set_num_threads(1);
  const auto serial = dsm::moe::detail::schedule_experts<dsm::cpu>(offsets);
  CHECK(serial.whole == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(serial.tasks.empty());
  dsm::set_num_threads(2);
  const auto two = dsm::moe::detail::schedule_experts<dsm::cpu>(offsets);
  CHECK(two.whole == std::vector<std::int64_t>{0});
  CHECK(two.tasks == std::vector<std::int64_t>{3, 7, 5, 1, 6, 4, 2});  // by row count, descending
  dsm::Generator gen(12);
  std::vector<FeedForward<float>> experts;
  for (int e = 0; e < 8; ++e) experts.emplace_back(16, 24, gen);
  const Tensor<float> x0 = Tensor<float>::randn({100, 16}, gen), g = Tensor<float>::randn({100, 16}, gen);
  std::vector<std::vector<float>> results[2];
  for (const int threads : {1, 2}) {
    dsm::set_num_threads(threads);
    for (auto& ex : experts) ex.zero_grad();
    const Var<float> x(x0.clone(), true);
    const Var<float> y = grouped_swiglu(x, offsets, std::span<const FeedForward<float>>(experts));
    y.backward(g);
    auto& r = results[threads - 1];
    r.push_back(y.value().to_vector());
    r.push_back(x.grad().to_vector());
    for (const auto& ex : experts)
      for (const auto* w : {&ex.w1, &ex.w2, &ex.w3}) r.push_back(w->grad().to_vector());
  }
  dsm::set_num_threads(saved);
  REQUIRE(results[0].size() == results[1].size());
  for (std::size_t i = 0; i < results[0].size(); ++i) {
    CAPTURE(i);
    CHECK(results[0][i] == results[1][i]);
  }
  const auto& dw1_empty = results[1][2 + 3 * 2];  // expert 2's w1 gradient: zeros
  CHECK(std::all_of(dw1_empty.begin(), dw1_empty.end(), [](float v) { return v == 0.f; }));
}

TEST_CASE("balance losses: values by hand and gradcheck") {
  // 4 tokens, 2 experts, top-1: expert 0 gets 3 tokens, expert 1 one.
  const Var<double> p(Tensor<double>::from({{0.6, 0.4}, {0.7, 0.3}, {0.8, 0.2}, {0.1, 0.9}}), true);
  // f = (0.75, 0.25), P = (0.55, 0.45): 0.1 * 2 * (0.75 * 0.55 + 0.25 * 0.45)
  CHECK(switch_balance_loss(p, {3, 1}, 4, 0.1).item() == doctest::Approx(0.2 * (0.75 * 0.55 + 0.25 * 0.45)));
  CHECK(switch_balance_loss(p, {3, 1}, 4, 0.0).item() == 0.0);
  DSM_GRADCHECK([&](const auto& in) { return switch_balance_loss(in[0], {3, 1}, 4, 0.1); }, dsm_test::grad_randn({4, 2}, 1));
  // two sequences of two tokens: ids (0, 0 | 0, 1)
  const auto ids = ids_of({{0}, {0}, {0}, {1}});
  const double seq0 = 2 * (1.0 * 0.65 + 0.0 * 0.35), seq1 = 2 * (0.5 * 0.45 + 0.5 * 0.55);
  CHECK(sequence_balance_loss(p.reshape({2, 2, 2}), ids, 0.1).item() == doctest::Approx(0.1 * (seq0 + seq1) / 2));
  DSM_GRADCHECK([&](const auto& in) { return sequence_balance_loss(in[0].reshape({2, 2, 2}), ids, 0.1); }, dsm_test::grad_randn({4, 2}, 2));
  // z-loss: mean of logsumexp^2
  const Var<double> logits(Tensor<double>::from({{0.0, 0.0}, {1.0, 2.0}}), true);
  const double l0 = std::log(2.0), l1 = 2.0 + std::log1p(std::exp(-1.0));
  CHECK(router_z_loss(logits, 0.5).item() == doctest::Approx(0.5 * (l0 * l0 + l1 * l1) / 2));
  DSM_GRADCHECK([&](const auto& in) { return router_z_loss(in[0], 0.5); }, dsm_test::grad_randn({3, 4}, 3));
  CHECK_THROWS_AS(switch_balance_loss(p, {3, 1, 0}, 4, 0.1), dsm::shape_error);
  CHECK_THROWS_AS(sequence_balance_loss(p, ids, 0.1), dsm::shape_error);
}

TEST_CASE("load statistics and the auxiliary-loss-free bias update") {
  const LoadStatistics s = load_statistics({6, 2, 0, 4}, 3);
  CHECK(s.max_vio == doctest::Approx((6.0 - 3.0) / 3.0));
  CHECK(s.dead_experts == 1);
  CHECK(s.fraction_dropped == doctest::Approx(3.0 / 12.0));
  Tensor<float> bias = Tensor<float>::zeros({4});
  update_expert_bias(bias, {6, 2, 0, 3}, 0.01);  // mean 2.75
  CHECK(bias.to_vector() == std::vector<float>{-0.01f, 0.01f, 0.01f, -0.01f});
  update_expert_bias(bias, {1, 1, 1, 1}, 0.01);  // balanced: no change
  CHECK(bias.to_vector() == std::vector<float>{-0.01f, 0.01f, 0.01f, -0.01f});
  CHECK_THROWS_AS(update_expert_bias(bias, {1, 1}, 0.01), dsm::shape_error);
}
