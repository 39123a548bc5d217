#include <doctest/doctest.h>

#include <atomic>
#include <vector>

#include <dsm/dsm.hpp>

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
