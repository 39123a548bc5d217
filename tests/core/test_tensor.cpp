#include <doctest/doctest.h>

#include <array>
#include <vector>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Shape;
using dsm::Tensor;
using TF = Tensor<float>;

TEST_CASE_TEMPLATE("factories fill the right values", T, float, double, dsm::bf16, dsm::f16, std::int8_t, std::uint8_t, std::int32_t, std::int64_t) {
  auto z = Tensor<T>::zeros({2, 3});
  auto o = Tensor<T>::ones({2, 3});
  auto f = Tensor<T>::full({4}, T(7));
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.is_contiguous());
  for (auto v : z.to_vector()) CHECK(static_cast<double>(dsm::convert<double>(v)) == 0.0);
  for (auto v : o.to_vector()) CHECK(static_cast<double>(dsm::convert<double>(v)) == 1.0);
  for (auto v : f.to_vector()) CHECK(static_cast<double>(dsm::convert<double>(v)) == 7.0);
  auto r = Tensor<T>::arange(T(5));
  CHECK(r.numel() == 5);
  CHECK(dsm::convert<double>(r(4)) == 4.0);
}

TEST_CASE("arange and linspace equal PyTorch's") {
  dsm_test::Fixtures fx("elementwise.txt");
  dsm_test::check_close(Tensor<double>::arange(-2.0, 3.0, 0.7), fx.get("arange"), 1e-15, 1e-15);
  dsm_test::check_close(Tensor<double>::linspace(-1.0, 2.0, 7), fx.get("linspace"), 0, 0);
  CHECK(Tensor<double>::linspace(0, 1, 1).item() == 0.0);
  CHECK_THROWS_WITH_AS(TF::arange(0.f, 1.f, 0.f), "arange: step must be nonzero", dsm::config_error);
  CHECK_THROWS_AS(TF::arange(5.f, 1.f, 1.f), dsm::config_error);
}

TEST_CASE("from lists and ranges") {
  auto a = TF::from({{1, 2, 3}, {4, 5, 6}});
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a(1, 2) == 6.f);
  std::vector<int> v{1, 2, 3, 4};
  auto b = Tensor<double>::from_range(v, {2, 2});
  CHECK(b(1, 0) == 3.0);
  CHECK_THROWS_WITH_AS(TF::from({{1, 2}, {3}}), "Tensor::from: rows have different lengths: 2 and 1", dsm::shape_error);
  CHECK_THROWS_WITH_AS(Tensor<double>::from_range(v, {3}), "Tensor::from_range: shape [3] needs 3 values, got 4", dsm::shape_error);
  CHECK_THROWS_WITH_AS(TF({2, -1}), "Tensor: negative dimension -1 in shape [2, -1]", dsm::shape_error);
}

TEST_CASE("views share storage") {
  auto x = TF::arange(0.f, 24.f).reshape({2, 3, 4});
  SUBCASE("transpose and permute") {
    auto t = x.transpose(0, 2);
    CHECK(t.shape() == Shape{4, 3, 2});
    CHECK(t(3, 1, 0) == x(0, 1, 3));
    CHECK_FALSE(t.is_contiguous());
    CHECK(x.transpose(0, 2).narrow(1, 1, 0).is_contiguous());  // no elements: contiguous, as in PyTorch
    t(3, 1, 0) = -1.f;
    CHECK(x(0, 1, 3) == -1.f);
    auto p = x.permute({1, 2, 0});
    CHECK(p.shape() == Shape{3, 4, 2});
    CHECK(p(2, 1, 1) == x(1, 2, 1));
    CHECK_THROWS_WITH_AS(x.permute({0, 0, 1}), "permute: dimension 0 appears twice in [0, 0, 1]", dsm::shape_error);
  }
  SUBCASE("narrow, slice and select") {
    auto n = x.narrow(2, 1, 2);
    CHECK(n.shape() == Shape{2, 3, 2});
    CHECK(n(1, 2, 0) == x(1, 2, 1));
    auto s = x.slice(2, 0, 4, 2);
    CHECK(s.shape() == Shape{2, 3, 2});
    CHECK(s(0, 1, 1) == x(0, 1, 2));
    CHECK(x.slice(1, -2, 100).shape() == Shape{2, 2, 4});
    auto sel = x.select(1, -1);
    CHECK(sel.shape() == Shape{2, 4});
    CHECK(sel(1, 3) == x(1, 2, 3));
    CHECK_THROWS_WITH_AS(x.narrow(1, 2, 2), "narrow: range [2, 4) is out of bounds for dimension 1 of size 3", dsm::index_error);
    CHECK_THROWS_WITH_AS(x.select(0, 2), "select: index 2 is out of range for dimension 0 of size 2", dsm::index_error);
  }
  SUBCASE("view, reshape and flatten") {
    auto v = x.view({6, -1});
    CHECK(v.shape() == Shape{6, 4});
    CHECK(v.storage() == x.storage());
    CHECK(x.flatten().shape() == Shape{24});
    CHECK(x.flatten(1).shape() == Shape{2, 12});
    auto t = x.transpose(1, 2);  // [2, 4, 3], not viewable as [2, 12]
    CHECK_THROWS_AS(t.view({2, 12}), dsm::shape_error);
    auto r = t.reshape({2, 12});  // copies
    CHECK(r.storage() != x.storage());
    CHECK(r(0, 1) == x(0, 1, 0));
    CHECK(t.view({2, 4, 3}).shape() == Shape{2, 4, 3});
    CHECK(x.select(2, 1).view({6}).strides() == Shape{4});  // merging non-adjacent strides works
    CHECK_THROWS_WITH_AS(x.view({5, -1}), "view: shape [5, -1] is invalid for input of size 24", dsm::shape_error);
    CHECK_THROWS_WITH_AS(x.view({-1, -1}), "view: only one dimension can be -1 in [-1, -1]", dsm::shape_error);
  }
  SUBCASE("expand, squeeze and unsqueeze") {
    auto col = TF::from({1, 2, 3}).unsqueeze(1);  // [3, 1]
    CHECK(col.shape() == Shape{3, 1});
    auto e = col.expand({2, 3, 4});
    CHECK(e.shape() == Shape{2, 3, 4});
    CHECK(e.strides() == Shape{0, 1, 0});
    CHECK(e(1, 2, 3) == 3.f);
    CHECK(col.expand({-1, 5}).shape() == Shape{3, 5});
    CHECK_THROWS_WITH_AS(col.expand({4, 2}), "expand: cannot expand [3, 1] to [4, 2]: dimension 0 has size 3", dsm::shape_error);
    CHECK(e.contiguous().to_vector()[5] == 2.f);
    auto sq = Tensor<float>::zeros({1, 3, 1, 2}).squeeze();
    CHECK(sq.shape() == Shape{3, 2});
    CHECK(Tensor<float>::zeros({1, 3}).squeeze(1).shape() == Shape{1, 3});
    CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
    CHECK(x.unsqueeze(0).shape() == Shape{1, 2, 3, 4});
  }
}

TEST_CASE("contiguous, clone, copy_ and dtype casts") {
  auto x = TF::arange(0.f, 6.f).reshape({2, 3});
  auto t = x.t();
  auto c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(x.contiguous().storage() == x.storage());  // no copy when not needed
  auto k = x.clone();
  k(0, 0) = 100.f;
  CHECK(x(0, 0) == 0.f);
  auto h = TF::from({0.1f, 1.f / 3.f, 70000.f}).to<dsm::f16>();
  CHECK(h(0).bits == dsm::f16(0.1f).bits);
  CHECK(std::isinf(static_cast<float>(h(2))));
  auto i = TF::from({-1.7f, 2.9f}).to<std::int32_t>();
  CHECK(i.to_vector() == std::vector<std::int32_t>{-1, 2});
  auto dst = TF::zeros({2, 3});
  dst.copy_(Tensor<double>::from({1.0, 2.0, 3.0}));  // broadcast and convert
  CHECK(dst.to_vector() == std::vector<float>{1, 2, 3, 1, 2, 3});
  // Overlapping self copy: shifting a row by one reads the original values.
  auto row = TF::arange(0.f, 5.f);
  row.narrow(0, 1, 4).copy_(row.narrow(0, 0, 4));
  CHECK(row.to_vector() == std::vector<float>{0, 0, 1, 2, 3});
  CHECK_THROWS_WITH_AS(dst.copy_(TF::zeros({4})), "copy_: source of shape [4] cannot be broadcast to [2, 3]", dsm::shape_error);
}

TEST_CASE("a transposed matrix copies element for element at 1 and 2 threads, across tile edges and with conversion") {
  // Sizes that are and are not multiples of the 16 x 16 tiles, a row stride larger than the rows
  // (a transposed narrow), and a float source into a double tensor.
  const int saved = dsm::get_num_threads();
  for (auto [r, c] : {std::array<std::int64_t, 2>{16, 16}, {37, 50}, {300, 17}, {512, 228}}) {
    CAPTURE(r);
    CAPTURE(c);
    const auto base = TF::arange(static_cast<double>((c + 3) * r)).reshape({c + 3, r});
    const auto view = base.narrow(0, 2, c).t();  // [r, c], strides (1, r)
    for (int threads : {1, 2}) {
      dsm::set_num_threads(threads);
      const auto f = view.contiguous();
      Tensor<double> d({r, c});
      d.copy_(view);
      bool same = true;
      for (std::int64_t i = 0; i < r; ++i)
        for (std::int64_t j = 0; j < c; ++j) same = same && f(i, j) == static_cast<float>((j + 2) * r + i) && d(i, j) == static_cast<double>((j + 2) * r + i);
      CHECK(same);
    }
  }
  dsm::set_num_threads(saved);
}

TEST_CASE("element access and errors") {
  auto x = TF::arange(0.f, 6.f).reshape({2, 3});
  CHECK(x.at({1, -1}) == 5.f);
  CHECK_THROWS_WITH_AS(x.at({2, 0}), "at: index 2 is out of range for dimension 0 of size 2", dsm::index_error);
  CHECK_THROWS_WITH_AS(x.at({0}), "at: got 1 indices for a tensor of shape [2, 3]", dsm::index_error);
  CHECK_THROWS_WITH_AS(x.item(), "item: tensor of shape [2, 3] has 6 elements, not 1", dsm::shape_error);
  CHECK(TF::scalar(2.5f).item() == 2.5f);
  CHECK(x.size(-1) == 3);
  CHECK_THROWS_AS(x.size(2), dsm::index_error);
  CHECK(x.stride(0) == 3);
  CHECK(x.nbytes() == 24);
  CHECK(TF::zeros({3}).expand_as(x).shape() == Shape{2, 3});
  CHECK(dsm::full<float>({2}, 1.5f).to_vector() == std::vector<float>{1.5f, 1.5f});
  CHECK(dsm::ones<std::int32_t>({2, 2}).numel() == 4);
  CHECK(dsm::zeros<double>({1}).item() == 0.0);
  CHECK(dsm::empty<float>({0}).numel() == 0);
  Tensor<float> undefined;
  CHECK_FALSE(undefined.defined());
}

TEST_CASE("from_blob borrows memory and calls the release hook") {
  std::vector<float> buf{1, 2, 3, 4};
  bool released = false;
  {
    auto t = TF::from_blob(buf.data(), {2, 2}, [&](void*) { released = true; });
    t(1, 1) = 40.f;
    CHECK_FALSE(released);
  }
  CHECK(released);
  CHECK(buf[3] == 40.f);
}

TEST_CASE("the caching allocator counts bytes and reuses blocks") {
  dsm::cpu::empty_cache();
  const auto before = dsm::cpu::memory_stats();
  {
    auto a = TF::zeros({1000});  // 4000 bytes -> one 4096-byte class
    const auto during = dsm::cpu::memory_stats();
    CHECK(during.current_bytes == before.current_bytes + 4096);
    CHECK(during.peak_bytes >= during.current_bytes);
  }
  const auto after = dsm::cpu::memory_stats();
  CHECK(after.current_bytes == before.current_bytes);
  CHECK(after.cached_bytes >= 4096);
  const auto hits = after.cache_hits;
  { auto b = TF::zeros({1024}); }  // same size class: served from the cache
  CHECK(dsm::cpu::memory_stats().cache_hits == hits + 1);
  dsm::cpu::reset_peak_memory();
  CHECK(dsm::cpu::memory_stats().peak_bytes == dsm::cpu::memory_stats().current_bytes);
  dsm::cpu::empty_cache();
  CHECK(dsm::cpu::memory_stats().cached_bytes == 0);
  CHECK(dsm::CachingAllocator<dsm::detail::CpuRawAlloc>::round_size(1) == 512);
  CHECK(dsm::CachingAllocator<dsm::detail::CpuRawAlloc>::round_size(70000) == 81920);
}

namespace {
std::size_t counting_raw_live = 0;  // bytes the raw functions below have handed out
/// Raw functions that count, so the trimming test sees exactly what is freed.
struct CountingRaw {
  static void* raw_allocate(std::size_t n) {
    counting_raw_live += n;
    return std::malloc(n);
  }
  static void raw_free(void* p, std::size_t n) {
    counting_raw_live -= n;
    std::free(p);
  }
};
}  // namespace

TEST_CASE("a cache miss trims a cache over twice the peak of live tensors (and over 128 MiB) down to it, largest classes first") {
  using Alloc = dsm::CachingAllocator<CountingRaw>;
  Alloc a;
  const std::size_t mib = std::size_t{1} << 20;
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(a.allocate(4 * mib));  // 160 MiB of one class
  for (void* p : blocks) a.deallocate(p, 4 * mib);
  CHECK(a.stats().cached_bytes == 160 * mib);
  void* again = a.allocate(mib);  // a miss, but the cache is within the peak (160 MiB live): kept
  CHECK(a.stats().cached_bytes == 160 * mib);
  a.deallocate(again, mib);
  a.reset_peak();                 // peak = live = 0: the limit is the 64 MiB floor
  void* small = a.allocate(mib);  // served by the 1 MiB block cached just now: a hit
  CHECK(a.stats().cached_bytes == 160 * mib);
  void* other = a.allocate(2 * mib);  // a miss with 160 MiB cached, over twice the floor: trims to 64 MiB
  CHECK(a.stats().cached_bytes == 64 * mib);
  a.deallocate(other, 2 * mib);
  CHECK(a.stats().cached_bytes == 66 * mib);
  void* hit = a.allocate(4 * mib);  // a hit: no trimming
  CHECK(a.stats().cached_bytes == 62 * mib);  // 2 MiB block back in, a 4 MiB block out
  CHECK(a.stats().reserved_bytes == 67 * mib);
  CHECK(counting_raw_live == 67 * mib);
  a.deallocate(hit, 4 * mib);
  a.deallocate(small, mib);
  a.empty_cache();
  CHECK(counting_raw_live == 0);
}
