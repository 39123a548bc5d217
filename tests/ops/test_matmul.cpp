#include <doctest/doctest.h>

#include <array>
#include <cmath>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Shape;
using TD = dsm::Tensor<double>;
using TF = dsm::Tensor<float>;

namespace {
const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("ops.txt"); }
}  // namespace

TEST_CASE("matmul equals PyTorch: 2-D, transposed views, batched broadcast, vectors") {
  const TD a = fx().get("mm.a"), b = fx().get("mm.b");
  dsm_test::check_close(dsm::matmul(a, b), fx().get("mm.c"), 1e-12, 1e-12);
  dsm_test::check_close(dsm::matmul(a.t(), a), fx().get("mm.atb"), 1e-12, 1e-12);  // transpose flag, no copy
  dsm_test::check_close(dsm::matmul(fx().get("bmm.a"), fx().get("bmm.b")), fx().get("bmm.c"), 1e-12, 1e-12);
  const TD v = fx().get("mv.v");
  dsm_test::check_close(dsm::matmul(a, v), fx().get("mv.av"), 1e-12, 1e-12);
  dsm_test::check_close(dsm::matmul(v, b), fx().get("mv.vb"), 1e-12, 1e-12);
  dsm_test::check_close(dsm::matmul(v, v), fx().get("mv.vv"), 1e-12, 1e-12);
  CHECK(dsm::matmul(v, v).rank() == 0);
}

TEST_CASE("matmul reads any strided layout, copying only when it must") {
  const TD a = fx().get("mm.a"), b = fx().get("mm.b");
  const TD want = dsm::matmul(a, b);
  // A column slice (non-unit strides on both axes) and a broadcast row operand.
  const TD wide = TD::zeros({5, 14});
  wide.slice(1, 0, 14, 2).copy_(a);
  dsm_test::check_close(dsm::matmul(wide.slice(1, 0, 14, 2), b), want, 1e-12, 1e-12);
  const TD row = a.narrow(0, 0, 1).expand({5, 7});
  const TD rowc = row.contiguous();
  dsm_test::check_close(dsm::matmul(row, b), dsm::matmul(rowc, b), 0, 0);
}

TEST_CASE("linear equals PyTorch's F.linear, bmm and bf16 matmul agree") {
  dsm_test::check_close(dsm::linear(fx().get("linear.x"), fx().get("linear.w"), fx().get("linear.b")), fx().get("linear.y"), 1e-12, 1e-12);
  const TF a = fx().get<float>("mm.a"), b = fx().get<float>("mm.b");
  auto h = dsm::matmul(a.to<dsm::bf16>(), b.to<dsm::bf16>());
  dsm_test::check_close(h.to<double>(), fx().get("mm.c"), 0.03, 0.05);
  auto ba = TF::randn({3, 4, 5}), bb = TF::randn({3, 5, 2});
  auto c = dsm::bmm(ba, bb);
  for (std::int64_t i = 0; i < 3; ++i) dsm_test::check_close(c.select(0, i), dsm::matmul(ba.select(0, i), bb.select(0, i)), 1e-6, 1e-6);
}

TEST_CASE("a batched product with a shared right operand is one GEMM and equals the product of each batch") {
  // [3, 2, 7, 9] x [9, 5]: the 42 rows are evenly spaced across batches, so the product runs as
  // one [42, 9] x [9, 5] GEMM. The same values come from every layout that cannot be folded: a
  // row slice (batches 8 rows apart, 7 used), transposed matrices, a right operand that differs
  // per batch, and one broadcast over a single batch dimension.
  dsm::Generator g{12};
  const TF a = TF::randn({3, 2, 7, 9}, g), w = TF::randn({9, 5}, g);
  const TD want_all = dsm::matmul(a.to<double>(), w.to<double>());
  auto check_batches = [&](const TF& c, const TD& want) {
    REQUIRE(c.shape() == want.shape());
    double worst = 0;
    const auto cv = c.to<double>().to_vector(), wv = want.to_vector();
    for (std::size_t i = 0; i < cv.size(); ++i) worst = std::max(worst, std::abs(cv[i] - wv[i]));
    CHECK(worst < 1e-5);
  };
  const TF folded = dsm::matmul(a, w);
  check_batches(folded, want_all);
  const auto a16 = a.to<dsm::bf16>(), w16 = w.to<dsm::bf16>();
  const auto folded16 = dsm::matmul(a16, w16);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 2; ++j) {
      const TD slice = want_all.select(0, i).select(0, j);  // batch (i, j) alone, in double
      check_batches(folded.select(0, i).select(0, j), slice);
      // bf16 operands: the folded product rounds as the batch's own 2-D product does.
      dsm_test::check_close(folded16.select(0, i).select(0, j).to<double>(), dsm::matmul(a16.select(0, i).select(0, j), w16).to<double>(), 1e-2, 1e-2);
    }
  const TF padded = TF::randn({3, 2, 8, 9}, g);
  padded.narrow(2, 0, 7).copy_(a);
  check_batches(dsm::matmul(padded.narrow(2, 0, 7), w), want_all);  // batches 8 rows apart
  const TF at = a.transpose(-1, -2).contiguous().transpose(-1, -2);  // a transposed view of each batch
  check_batches(dsm::matmul(at, w), want_all);
  check_batches(dsm::matmul(a, w.t().contiguous().t()), want_all);
  const TF w_per_batch = w.expand({3, 2, 9, 5}).contiguous();
  check_batches(dsm::matmul(a, w_per_batch), want_all);
  const TF w_rows = TF::randn({1, 2, 9, 5}, g);  // shared over dimension 0 only
  check_batches(dsm::matmul(a, w_rows), dsm::matmul(a.to<double>(), w_rows.to<double>()));
  // Rows of one: [4, 1, 9] x [9, 5].
  const TF rows1 = TF::randn({4, 1, 9}, g);
  check_batches(dsm::matmul(rows1, w), dsm::matmul(rows1.to<double>(), w.to<double>()));
}

TEST_CASE("matmul and linear name the op and the shapes on bad input") {
  CHECK_THROWS_WITH_AS(dsm::matmul(TF::zeros({32, 512}), TF::zeros({256, 64})), "matmul: inner dimensions differ: [32, 512] x [256, 64]", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::matmul(TF::zeros({2, 3, 4}), TF::zeros({5, 4, 2})), "matmul: shapes [2] and [5] cannot be broadcast together", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::matmul(TF::scalar(1.f), TF::zeros({2})), "matmul: both arguments need at least one dimension, got [] x [2]", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::linear(TF::zeros({2, 3}), TF::zeros({4, 5})), "linear: input features differ: [2, 3] x [4, 5]^T", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::linear(TF::zeros({2, 5}), TF::zeros({4, 5}), TF::zeros({3})), "linear: bias must be [4], got [3]", dsm::shape_error);
  CHECK_THROWS_AS(dsm::bmm(TF::zeros({2, 3, 4}), TF::zeros({3, 4, 5})), dsm::shape_error);
}

TEST_CASE("matmul results are bit-identical at 1 and 2 threads") {
  dsm::Generator g{8};
  auto a = TF::randn({301, 517}, g), b = TF::randn({517, 263}, g);
  auto ba = TF::randn({6, 40, 70}, g), bb = TF::randn({6, 70, 30}, g);
  const int saved = dsm::get_num_threads();
  dsm::set_num_threads(1);
  const auto c1 = dsm::matmul(a, b).to_vector(), d1 = dsm::matmul(ba, bb).to_vector();
  dsm::set_num_threads(2);
  const auto c2 = dsm::matmul(a, b).to_vector(), d2 = dsm::matmul(ba, bb).to_vector();
  dsm::set_num_threads(saved);
  CHECK(c1 == c2);
  CHECK(d1 == d2);
}

TEST_CASE("matmul with transposed operands and balanced row blocks equals the double product at 1 and 2 threads") {
  // Row counts that the 2-thread GEMM deals out in balanced blocks of whole panels (256 rows: 4
  // blocks of 10 or 11 panels; 1030 rows: 12 blocks), products of 1 and 3 rows (with a
  // transposed B they take dot products instead of packing; 1 x 1000 x 2100 on 2 threads), depths that are and are not multiples of the 8-depth packing transposes, and every
  // transpose combination (row-major A and transposed B go through the transposing packers).
  // Row counts of 6p + 2 (8, 32) end in two 4-row panels, on 2 threads in blocks of their own.
  dsm::Generator g{9};
  const int saved = dsm::get_num_threads();
  for (auto [m, k, n] : {std::array<std::int64_t, 3>{256, 384, 256}, {1030, 40, 20}, {100, 9, 70}, {13, 8, 33}, {198, 17, 48}, {1, 1000, 2100}, {3, 37, 20}, {8, 40, 33}, {32, 228, 70}}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        CAPTURE(m);
        CAPTURE(k);
        CAPTURE(n);
        CAPTURE(ta);
        CAPTURE(tb);
        const auto a = ta ? TF::randn({k, m}, g).t() : TF::randn({m, k}, g);
        const auto b = tb ? TF::randn({n, k}, g).t() : TF::randn({k, n}, g);
        const auto ad = a.to<double>(), bd = b.to<double>();
        const auto want = dsm::matmul(ad, bd).to_vector();
        dsm::set_num_threads(1);
        const auto c1 = dsm::matmul(a, b).to_vector();
        dsm::set_num_threads(2);
        const auto c2 = dsm::matmul(a, b).to_vector();
        CHECK(c1 == c2);
        double worst = 0;
        for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(c1[i] - want[i]) / (1.0 + std::abs(want[i])));
        CHECK(worst < 1e-4);  // fp32 rounding over k <= 384 terms; a misplaced element is O(1)
      }
  }
  dsm::set_num_threads(saved);
}
