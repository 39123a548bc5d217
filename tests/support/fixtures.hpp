// tests/support/fixtures.hpp: reads the PyTorch reference values of tests/reference/fixtures.
//
// Each line: name kind rank dims... values... (see tests/reference/gen_ops.py).
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <dsm/dsm.hpp>

namespace dsm_test {

struct FixtureTensor {
  dsm::Shape shape;
  std::vector<double> values;
};

class Fixtures {
 public:
  explicit Fixtures(const std::string& file) {
    const std::string path = std::string(DSM_FIXTURE_DIR) + "/" + file;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open fixture file " + path);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string name, kind;
      int rank = 0;
      ls >> name >> kind >> rank;
      FixtureTensor t;
      for (int d = 0; d < rank; ++d) {
        std::int64_t n;
        ls >> n;
        t.shape.push_back(n);
      }
      std::string v;
      while (ls >> v) t.values.push_back(std::stod(v));
      entries_[name] = t;
    }
  }
  /// The named tensor converted to element type T.
  template <class T = double>
  dsm::Tensor<T> get(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw std::runtime_error("no fixture named " + name);
    auto t = dsm::Tensor<double>::from_range(it->second.values, it->second.shape);
    return t.template to<T>();
  }

 private:
  std::map<std::string, FixtureTensor> entries_;
};

/// The fixtures of one file, read once per test program.
inline const Fixtures& fixture_file(const std::string& file) {
  static std::map<std::string, Fixtures> cache;
  auto it = cache.find(file);
  if (it == cache.end()) it = cache.emplace(file, Fixtures(file)).first;
  return it->second;
}

/// Checks shapes match and every element is within atol + rtol * |expected| (NaN matches NaN).
template <class T, class U>
void check_close(const dsm::Tensor<T>& actual, const dsm::Tensor<U>& expected, double rtol = 1e-10, double atol = 1e-12) {
  REQUIRE(actual.shape() == expected.shape());
  const auto a = actual.template to<double>().to_vector();
  const auto e = expected.template to<double>().to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(e[i])) {
      CHECK_MESSAGE(std::isnan(a[i]), "element " << i);
      continue;
    }
    CHECK_MESSAGE(std::abs(a[i] - e[i]) <= atol + rtol * std::abs(e[i]), "element " << i << ": " << a[i] << " vs " << e[i]);
  }
}

/// Exact equality of shape and every element.
template <class T, class U>
void check_equal(const dsm::Tensor<T>& actual, const dsm::Tensor<U>& expected) { check_close(actual, expected, 0.0, 0.0); }

}  // namespace dsm_test
