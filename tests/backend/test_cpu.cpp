#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include <dsm/dsm.hpp>

namespace {

/// The largest error, over a spread of entries, of c = alpha * a b + offset against the product
/// in double, scaled by 1 + sqrt(depth) (the float rounding bound grows with sqrt(k)).
double gemm_error(const dsm::Tensor<float>& a, const dsm::Tensor<float>& b, double alpha, double offset, const std::vector<float>& c) {
  const std::int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  double worst = 0;
  for (std::int64_t i = 0; i < m; i += std::max<std::int64_t>(1, m / 5))
    for (std::int64_t j = 0; j < n; j += std::max<std::int64_t>(1, n / 37)) {
      double sum = 0;
      for (std::int64_t p = 0; p < k; ++p) sum += static_cast<double>(a(i, p)) * b(p, j);
      worst = std::max(worst, std::abs(alpha * sum + offset - c[static_cast<std::size_t>(i * n + j)]) / (1.0 + std::sqrt(static_cast<double>(k))));
    }
  return worst;
}

}  // namespace

TEST_CASE("parallel_for covers the range exactly once, in contiguous chunks") {
  for (std::int64_t n : {0, 1, 7, 1000, 100003}) {
    std::vector<int> hits(static_cast<std::size_t>(n), 0);
    std::atomic<int> chunks{0};
    dsm::cpu::parallel_for(n, 10, [&](std::int64_t b, std::int64_t e) {
      CHECK(b < e);
      ++chunks;
      for (std::int64_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
    });
    for (int h : hits) CHECK(h == 1);
    CHECK(chunks.load() <= std::max(1, dsm::get_num_threads()));
  }
}

TEST_CASE("parallel_tasks runs every task once, in the caller's autocast mode, and serially when nested") {
  const int saved = dsm::get_num_threads();
  dsm::set_num_threads(2);
  for (std::int64_t n : {0, 1, 5, 64}) {
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
    std::atomic<int> wrong_mode{0}, nested_elsewhere{0};
    const dsm::detail::GemmPrecisionScope mode(dsm::GemmPrecision::bf16);
    dsm::cpu::parallel_tasks(n, [&](std::int64_t i) {
      ++runs[static_cast<std::size_t>(i)];
      if (dsm::gemm_precision() != dsm::GemmPrecision::bf16) ++wrong_mode;
      const auto here = std::this_thread::get_id();
      dsm::cpu::parallel_tasks(3, [&](std::int64_t) {  // inside a task of a parallel call: on the task's own thread
        if (std::this_thread::get_id() != here) ++nested_elsewhere;
      });
    });
    for (const auto& r : runs) CHECK(r.load() == 1);
    CHECK(wrong_mode.load() == 0);
    // A single task runs on the calling thread outside any parallel region, so its own loops may
    // use every thread; from two tasks on, tasks run in a region and nested calls stay serial.
    if (n >= 2) CHECK(nested_elsewhere.load() == 0);
  }
  dsm::set_num_threads(saved);
}

TEST_CASE("set_num_threads rejects a non-positive count") {
  CHECK_THROWS_WITH_AS(dsm::set_num_threads(0), "set_num_threads: thread count must be at least 1, got 0", dsm::config_error);
}

TEST_CASE_TEMPLATE("gemm honours transpose flags, leading dimensions, alpha and beta", T, float, double) {
  const std::int64_t m = 5, n = 4, k = 3;
  auto a = dsm::Tensor<T>::randn({m, k});
  auto b = dsm::Tensor<T>::randn({k, n});
  auto naive = [&](std::int64_t i, std::int64_t j) {
    T s = 0;
    for (std::int64_t p = 0; p < k; ++p) s += a(i, p) * b(p, j);
    return s;
  };
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Stored transposed when the flag is set; padded leading dimensions (+2) exercise ld.
      auto as = ta ? dsm::Tensor<T>::zeros({k, m + 2}) : dsm::Tensor<T>::zeros({m, k + 2});
      auto bs = tb ? dsm::Tensor<T>::zeros({n, k + 2}) : dsm::Tensor<T>::zeros({k, n + 2});
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t p = 0; p < k; ++p) (ta ? as(p, i) : as(i, p)) = a(i, p);
      for (std::int64_t p = 0; p < k; ++p)
        for (std::int64_t j = 0; j < n; ++j) (tb ? bs(j, p) : bs(p, j)) = b(p, j);
      auto c = dsm::Tensor<T>::full({m, n}, T(1));
      dsm::cpu::gemm<T>(ta, tb, m, n, k, T(2), as.data(), as.size(1), bs.data(), bs.size(1), T(0.5), c.data(), n);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) CHECK(static_cast<double>(c(i, j)) == doctest::Approx(2 * naive(i, j) + 0.5).epsilon(1e-5));
    }
}

TEST_CASE("the packed fp32 GEMM is exact to rounding on sizes that cross every block edge") {
  // Sizes straddle the micro-tile (6 x 16 or 12 x 32), the A block, the depth block and the B block;
  // 32 rows end in two 4-row panels; 29 and 197 in a 5-row one, 9 in a 3-row one (partial panels
  // are packed apart from full ones).
  struct Dims {
    std::int64_t m, n, k;
  };
  dsm::Generator g{3};
  for (const Dims d : {Dims{1, 1, 1}, Dims{7, 17, 5}, Dims{13, 33, 385}, Dims{197, 45, 777}, Dims{5, 4100, 9}, Dims{32, 50, 400}, Dims{29, 16, 17},
                       Dims{9, 20, 300}, Dims{64, 64, 0}}) {
    CAPTURE(d.m);
    CAPTURE(d.n);
    CAPTURE(d.k);
    auto a = dsm::Tensor<float>::randn({d.m, d.k}, g), b = dsm::Tensor<float>::randn({d.k, d.n}, g);
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const auto as = ta ? a.t().contiguous() : a, bs = tb ? b.t().contiguous() : b;
        auto c = dsm::Tensor<float>::full({d.m, d.n}, 1.f);
        dsm::cpu::gemm<float>(ta, tb, d.m, d.n, d.k, 1.f, as.data(), std::max<std::int64_t>(as.size(1), 1), bs.data(),
                              std::max<std::int64_t>(bs.size(1), 1), -1.f, c.data(), d.n);
        // Reference in double; the error bound grows with sqrt(k) times the float epsilon.
        double worst = 0;
        std::vector<std::int64_t> rows;  // a spread of rows, and the last rows: the partial panel
        for (std::int64_t i = 0; i < d.m; i += std::max<std::int64_t>(1, d.m / 9)) rows.push_back(i);
        for (std::int64_t i = std::max<std::int64_t>(0, d.m - 5); i < d.m; ++i) rows.push_back(i);
        for (const std::int64_t i : rows)
          for (std::int64_t j = 0; j < d.n; j += std::max<std::int64_t>(1, d.n / 31)) {
            double s = -1.0;
            for (std::int64_t p = 0; p < d.k; ++p) s += static_cast<double>(a(i, p)) * b(p, j);
            worst = std::max(worst, std::abs(s - c(i, j)) / (1.0 + std::sqrt(static_cast<double>(d.k))));
          }
        CHECK(worst < 1e-5);
      }
  }
}

TEST_CASE("the fp32 GEMM matches a double product on random shapes, layouts, leading dimensions, alpha and beta") {
  // Shapes drawn to land on every edge of the blocking: 1-40 rows (full, 5-8-row, 3-4-row, 1- and
  // 2-row panels), 1-90 columns (full and half-width last B panels), 1-900 depths (one to three
  // depth blocks, depth blocks of any remainder), operands stored with room to spare.
  std::mt19937 rng(1201);
  auto draw = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  dsm::Generator g{12};
  for (int trial = 0; trial < 120; ++trial) {
    const std::int64_t m = draw(1, 40), n = draw(1, 90), k = draw(1, 900);
    const bool ta = draw(0, 1) == 1, tb = draw(0, 1) == 1;
    const float alpha = draw(0, 1) == 1 ? 1.f : -0.75f, beta = static_cast<float>(draw(0, 2)) * 0.5f;  // 0, 0.5, 1
    const std::int64_t lda = (ta ? m : k) + draw(0, 9), ldb = (tb ? k : n) + draw(0, 9), ldc = n + draw(0, 9);
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    CAPTURE(ta);
    CAPTURE(tb);
    const auto a = dsm::Tensor<float>::randn({ta ? k : m, lda}, g), b = dsm::Tensor<float>::randn({tb ? n : k, ldb}, g);
    auto c = dsm::Tensor<float>::randn({m, ldc}, g);
    const auto c0 = c.clone();
    dsm::cpu::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
    double worst = 0;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < ldc; ++j) {
        if (j >= n) {  // the padding of each row of C is never written
          CHECK(c(i, j) == c0(i, j));
          continue;
        }
        double sum = 0;
        for (std::int64_t p = 0; p < k; ++p) sum += static_cast<double>(ta ? a(p, i) : a(i, p)) * (tb ? b(j, p) : b(p, j));
        const double want = alpha * sum + beta * static_cast<double>(c0(i, j));
        worst = std::max(worst, std::abs(want - c(i, j)) / (1.0 + std::sqrt(static_cast<double>(k))));
      }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("the fp32 GEMM gives the same bits at 1 to 6 threads") {
  // Row blocks are rounded up to a multiple of the thread count, and B's panels are split between
  // threads when there are fewer row panels than threads; neither may change a sum's order.
  // Shapes [m, n, k]: 3 rows (one dot product per element with B stored transposed; else one row
  // panel, its B panels split between all threads), 4 row panels (split by columns on 5 and 6
  // threads), 34 panels in 3 to 6 row blocks, two column blocks after a 1-row panel, 167 panels.
  // Each product has the FLOPs to take 6 threads (2 MFLOP a thread).
  dsm::Generator gen(23);
  const int saved = dsm::get_num_threads();
  const std::vector<dsm::Shape> shapes = {{3, 2000, 1000}, {20, 700, 1000}, {200, 64, 1000}, {97, 4200, 70}, {1000, 40, 400}};
  for (const dsm::Shape& dims : shapes) {
    CAPTURE(dims);
    const auto a = dsm::Tensor<float>::randn({dims[0], dims[2]}, gen), b = dsm::Tensor<float>::randn({dims[2], dims[1]}, gen);
    const auto bt = b.t().contiguous();
    std::vector<float> first[2];  // at 1 thread, B row-major and stored transposed
    for (int threads = 1; threads <= 6; ++threads) {
      CAPTURE(threads);
      dsm::set_num_threads(threads);
      for (const bool tb : {false, true}) {
        auto c = dsm::Tensor<float>::ones({dims[0], dims[1]});
        dsm::cpu::gemm(false, tb, dims[0], dims[1], dims[2], 1.f, a.data(), dims[2], tb ? bt.data() : b.data(), tb ? dims[2] : dims[1], 0.25f,
                       c.data(), dims[1]);
        if (threads == 1) first[tb] = c.to_vector();
        else CHECK(c.to_vector() == first[tb]);
      }
    }
    dsm::set_num_threads(saved);
    CHECK(gemm_error(a, b, 1.0, 0.25, first[0]) < 1e-5);  // and right
  }
}

TEST_CASE("bf16 inputs are widened while packing and accumulate in float") {
  dsm::Generator g{4};
  auto a = dsm::Tensor<float>::randn({37, 300}, g).to<dsm::bf16>(), b = dsm::Tensor<float>::randn({300, 21}, g).to<dsm::bf16>();
  auto c = dsm::Tensor<float>::empty({37, 21});
  dsm::cpu::gemm<dsm::bf16>(false, false, 37, 21, 300, 1.f, a.data(), 300, b.data(), 21, 0.f, c.data(), 21);
  auto ref = dsm::matmul(a.to<double>(), b.to<double>());  // the exact products of the bf16 values
  for (std::int64_t i = 0; i < 37; ++i)
    for (std::int64_t j = 0; j < 21; ++j) CHECK(std::abs(c(i, j) - ref(i, j)) < 1e-4);
}

namespace {
/// Turns the AVX512-BF16 kernel on or off for a scope.
struct Bf16DotKernel {
  bool saved = dsm::detail::gemm_bf16::enabled().load();
  explicit Bf16DotKernel(bool on) { dsm::cpu::set_bf16_dot_kernel(on); }
  ~Bf16DotKernel() { dsm::cpu::set_bf16_dot_kernel(saved); }
};
}  // namespace

TEST_CASE("the AVX512-BF16 GEMM sums the bf16 products to fp32 rounding, in every layout and block edge") {
  if (!dsm::detail::gemm_bf16::cpu_supports()) {
    MESSAGE("this CPU has no AVX512-BF16: bf16 products run on the fp32 kernel (tested elsewhere)");
    return;
  }
  const Bf16DotKernel on(true);
  CHECK(dsm::cpu::bf16_dot_kernel_active());
  dsm::Generator gen(31);
  // [m, n, k]: single elements; odd depths (a zero-padded last pair); partial row and column
  // panels; depth blocks of 512 crossed (1000); column blocks of 4096 crossed (4200); 12-row panels
  // with 1, 5 and 9 rows left over, which take the 1-, 8- and 12-row kernels.
  const std::vector<dsm::Shape> shapes = {{1, 1, 1}, {1, 5, 3}, {13, 33, 7}, {25, 70, 385}, {29, 64, 1000}, {21, 4200, 40}, {200, 31, 64}};
  for (const dsm::Shape& dims : shapes) {
    const std::int64_t m = dims[0], n = dims[1], k = dims[2];
    const auto a = dsm::Tensor<float>::randn({m, k}, gen), b = dsm::Tensor<float>::randn({k, n}, gen);
    const auto ar = a.to<dsm::bf16>(), br = b.to<dsm::bf16>();
    const auto at = ar.t().contiguous(), bt = br.t().contiguous();
    const auto atf = a.t().contiguous(), btf = b.t().contiguous();
    const auto af = ar.to<float>(), bf = br.to<float>();  // the values the products see
    for (int layout = 0; layout < 4; ++layout) {
      const bool ta = layout & 1, tb = layout & 2;
      CAPTURE(dims);
      CAPTURE(layout);
      // float operands under bf16 autocast (rounded while packing) and bf16 ones give the same bits
      auto c = dsm::Tensor<float>::full({m, n}, 0.5f), c16 = c.clone();
      {
        const dsm::amp::autocast ac(dsm::amp::Precision::bf16);
        dsm::cpu::gemm(ta, tb, m, n, k, 0.75f, ta ? atf.data() : a.data(), ta ? m : k, tb ? btf.data() : b.data(), tb ? k : n, 0.25f, c.data(), n);
      }
      dsm::cpu::gemm<dsm::bf16>(ta, tb, m, n, k, 0.75f, ta ? at.data() : ar.data(), ta ? m : k, tb ? bt.data() : br.data(), tb ? k : n, 0.25f, c16.data(), n);
      CHECK(c.to_vector() == c16.to_vector());
      // against the double product of the bf16 values: within fp32 rounding of each sum's terms
      double worst = 0;
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; j += std::max<std::int64_t>(1, n / 50)) {
          double sum = 0, magnitude = 0;
          for (std::int64_t p = 0; p < k; ++p) {
            const double t = static_cast<double>(af(i, p)) * bf(p, j);
            sum += t;
            magnitude += std::abs(t);
          }
          const double err = std::abs(0.75 * sum + 0.125 - c(i, j));
          worst = std::max(worst, err / ((static_cast<double>(k) + 4) * 0x1p-24 * (0.75 * magnitude + 0.125)));
        }
      CHECK(worst <= 1.0);
    }
  }
  // beta = 0 never reads C (NaN there stays out); k = 0 scales C.
  const auto a = dsm::Tensor<float>::randn({14, 9}, gen).to<dsm::bf16>(), b = dsm::Tensor<float>::randn({9, 40}, gen).to<dsm::bf16>();
  auto c = dsm::Tensor<float>::full({14, 40}, NAN);
  dsm::cpu::gemm<dsm::bf16>(false, false, 14, 40, 9, 1.f, a.data(), 9, b.data(), 40, 0.f, c.data(), 40);
  for (float v : c.to_vector()) CHECK(std::isfinite(v));
  c.fill_(1.5f);
  dsm::cpu::gemm<dsm::bf16>(false, false, 14, 40, 0, 1.f, a.data(), 9, b.data(), 40, 2.f, c.data(), 40);
  for (float v : c.to_vector()) CHECK(v == 3.f);
}

TEST_CASE("the AVX512-BF16 GEMM gives the same bits at 1 to 5 threads, and is off when asked") {
  if (!dsm::detail::gemm_bf16::cpu_supports()) return;
  const Bf16DotKernel on(true);
  dsm::Generator gen(32);
  const int saved = dsm::get_num_threads();
  for (const dsm::Shape& dims : std::vector<dsm::Shape>{{5, 3000, 700}, {300, 80, 900}, {97, 4200, 70}}) {
    CAPTURE(dims);
    const auto a = dsm::Tensor<float>::randn({dims[0], dims[2]}, gen).to<dsm::bf16>(), b = dsm::Tensor<float>::randn({dims[2], dims[1]}, gen).to<dsm::bf16>();
    std::vector<float> first;
    for (int threads = 1; threads <= 5; ++threads) {
      dsm::set_num_threads(threads);
      const auto c = dsm::detail::matmul_acc(a, b);
      if (threads == 1) first = c.to_vector();
      else CHECK(c.to_vector() == first);
    }
  }
  dsm::set_num_threads(saved);
  // Off: bf16 values through the fp32 FMA kernel, which sums one depth at a time.
  const auto a = dsm::Tensor<float>::randn({40, 301}, gen), b = dsm::Tensor<float>::randn({301, 50}, gen);
  const auto dot = dsm::detail::matmul_acc(a.to<dsm::bf16>(), b.to<dsm::bf16>());
  const Bf16DotKernel off(false);
  CHECK_FALSE(dsm::cpu::bf16_dot_kernel_active());
  const auto fma = dsm::detail::matmul_acc(a.to<dsm::bf16>(), b.to<dsm::bf16>());
  CHECK(fma.to_vector() == dsm::matmul(a.to<dsm::bf16>().to<float>(), b.to<dsm::bf16>().to<float>()).to_vector());
  CHECK(fma.to_vector() != dot.to_vector());  // the two kernels add in different orders
}

TEST_CASE("gemm_packed_b equals gemm: B packed once, reused for several A, shapes checked") {
  // 40 x 4100 x 600 has two column blocks and three depth blocks: packed B is read block by block
  // at its offsets, and 1 and 2 threads give the same bits. 197 x 1100 x 400 has three row blocks,
  // two depth blocks and B panels in groups of four with a partial group and panel: one thread
  // packs B group by group as the first row block reaches it, two threads pack it up front.
  dsm::Generator gen(17);
  const int saved = dsm::get_num_threads();
  for (const auto [m, n, k] : {std::array<std::int64_t, 3>{32, 512, 128}, {7, 100, 400}, {1, 33, 5}, {40, 4100, 600}, {197, 1100, 400}}) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const auto w = dsm::Tensor<float>::randn({k, n}, gen);
    const auto packed = dsm::cpu::pack_b(false, k, n, w.data(), n);
    const auto wt = w.t().contiguous();  // [n, k]: the transposed storage packs to the same blocks
    const auto packed_t = dsm::cpu::pack_b(true, k, n, wt.data(), k);
    CHECK(packed.data == packed_t.data);
    for (int rep = 0; rep < 2; ++rep) {
      const auto a = dsm::Tensor<float>::randn({m, k}, gen);
      dsm::Tensor<float> c1 = dsm::Tensor<float>::ones({m, n}), c2 = dsm::Tensor<float>::ones({m, n});
      dsm::Tensor<float> c3 = dsm::Tensor<float>::ones({m, n}), c4 = dsm::Tensor<float>::ones({m, n});
      dsm::Tensor<float> c5 = dsm::Tensor<float>::ones({m, n});
      dsm::set_num_threads(1);
      dsm::cpu::gemm(false, false, m, n, k, 1.5f, a.data(), k, w.data(), n, 0.5f, c1.data(), n);
      dsm::cpu::gemm_packed_b(false, m, n, k, 1.5f, a.data(), k, packed, 0.5f, c2.data(), n);
      dsm::cpu::gemm(false, true, m, n, k, 1.5f, a.data(), k, wt.data(), k, 0.5f, c5.data(), n);  // B stored transposed
      dsm::set_num_threads(2);
      dsm::cpu::gemm(false, false, m, n, k, 1.5f, a.data(), k, w.data(), n, 0.5f, c3.data(), n);
      dsm::cpu::gemm_packed_b(false, m, n, k, 1.5f, a.data(), k, packed, 0.5f, c4.data(), n);
      dsm::set_num_threads(saved);
      const auto want = c1.to_vector();  // same kernel, same blocks: bit for bit
      CHECK(c2.to_vector() == want);
      CHECK(c3.to_vector() == want);
      CHECK(c4.to_vector() == want);
      if (m > 4) CHECK(c5.to_vector() == want);  // (up to 4 rows, a transposed B is read unpacked)
      CHECK(gemm_error(a, w, 1.5, 0.5, want) < 1e-5);  // and right: a few entries against the double product
    }
  }
  const auto w = dsm::Tensor<float>::zeros({4, 8});
  const auto packed = dsm::cpu::pack_b(false, 4, 8, w.data(), 8);
  dsm::Tensor<float> c({2, 8});
  CHECK_THROWS_WITH_AS(dsm::cpu::gemm_packed_b(false, 2, 8, 5, 1.f, w.data(), 5, packed, 0.f, c.data(), 8),
                       "cpu::gemm_packed_b: B was packed as [4, 8], the product needs [5, 8]", dsm::shape_error);
}

TEST_CASE("gemm_packed_b multiplies by the top-left corner of a packed B, across its column and depth blocks") {
  // B [900, 8300] packs as two column blocks (8192 + 108 columns) of three depth blocks each
  // (384 + 384 + 132): corners that end inside the first or the last of either, and the whole of
  // it, each equal to gemm() on the same corner read where it lies.
  dsm::Generator gen(23);
  const std::int64_t K = 900, N = 8300;
  const auto w = dsm::Tensor<float>::randn({K, N}, gen);
  const auto packed = dsm::cpu::pack_b(false, K, N, w.data(), N);
  const int saved = dsm::get_num_threads();
  for (const auto [m, n, k] : {std::array<std::int64_t, 3>{13, 40, 64}, {5, 8300, 900}, {30, 8250, 500}, {12, 31, 899}, {7, 8193, 385}, {29, 1, 1}}) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const auto a = dsm::Tensor<float>::randn({m, k}, gen);
    for (const int threads : {1, 2}) {
      dsm::set_num_threads(threads);
      dsm::Tensor<float> want = dsm::Tensor<float>::ones({m, n}), got = dsm::Tensor<float>::ones({m, n});
      dsm::cpu::gemm(false, false, m, n, k, 1.25f, a.data(), k, w.data(), N, 0.5f, want.data(), n);
      dsm::cpu::gemm_packed_b(false, m, n, k, 1.25f, a.data(), k, packed, 0.5f, got.data(), n);
      CHECK(got.to_vector() == want.to_vector());
    }
    dsm::set_num_threads(saved);
  }
  dsm::Tensor<float> c({2, 8});
  CHECK_THROWS_WITH_AS(dsm::cpu::gemm_packed_b(false, 2, N + 1, 4, 1.f, w.data(), 4, packed, 0.f, c.data(), N + 1),
                       "cpu::gemm_packed_b: B was packed as [900, 8300], the product needs [4, 8301]", dsm::shape_error);
  // ReusedOperand hands its corners to the same product, and names one outside it.
  const dsm::detail::ReusedOperand<float, dsm::cpu> op(false, 64, 96, w.data(), N);
  const auto a = dsm::Tensor<float>::randn({9, 64}, gen);
  dsm::Tensor<float> want({9, 40}), got({9, 40});
  dsm::cpu::gemm(false, false, 9, 40, 48, 1.f, a.data(), 64, w.data(), N, 0.f, want.data(), 40);
  op.multiply_corner(false, 9, 48, 40, 1.f, a.data(), 64, 0.f, got.data(), 40);
  CHECK(got.to_vector() == want.to_vector());
  CHECK_THROWS_WITH_AS(op.multiply_corner(false, 9, 65, 40, 1.f, a.data(), 64, 0.f, got.data(), 40),
                       "ReusedOperand::multiply_corner: [65, 40] is outside the operand's [64, 96]", dsm::shape_error);
}
