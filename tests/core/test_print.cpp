// Printing matches the strings PyTorch prints for the same tensors (tests/reference/fixtures/printing.txt).
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <string>

#include <dsm/dsm.hpp>

namespace {
std::map<std::string, std::string> torch_strings() {
  std::ifstream in(std::string(DSM_FIXTURE_DIR) + "/printing.txt");
  std::map<std::string, std::string> out;
  std::string line, name;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '@') {
      name = line.substr(1);
      continue;
    }
    if (!out[name].empty()) out[name] += '\n';
    out[name] += line;
  }
  return out;
}
}  // namespace

TEST_CASE("printing matches PyTorch") {
  const auto want = torch_strings();
  REQUIRE(want.size() == 13);
  using TF = dsm::Tensor<float>;
  CHECK(dsm::to_string(TF::from({{1, 2}, {3, 4}})) == want.at("int_floats"));
  CHECK(dsm::to_string(TF::from({0.1f, -2.25f, 3.5f})) == want.at("fixed"));
  CHECK(dsm::to_string(TF::from({1e-5f, 1.f, 123456.f})) == want.at("sci"));
  CHECK(dsm::to_string(dsm::Tensor<std::int64_t>::from({{1, -20, 3}, {4, 5, 600}})) == want.at("ints"));
  CHECK(dsm::to_string(dsm::Tensor<bool>::from({true, false})) == want.at("bools"));
  CHECK(dsm::to_string(TF::scalar(3.5f)) == want.at("scalar"));
  CHECK(dsm::to_string(TF::arange(0.f, 8.f).reshape({2, 2, 2})) == want.at("cube"));
  CHECK(dsm::to_string(dsm::Tensor<double>::from({0.5, 1.5})) == want.at("double"));
  CHECK(dsm::to_string(TF::zeros({0, 3})) == want.at("empty"));
  CHECK(dsm::to_string(TF::from({NAN, INFINITY, -1.5f})) == want.at("nonfinite"));
}

TEST_CASE("long rows wrap at 80 columns and large tensors are summarized, as in PyTorch") {
  const auto want = torch_strings();
  using TF = dsm::Tensor<float>;
  CHECK(dsm::to_string(TF::arange(0.f, 2000.f)) == want.at("summary1d"));
  CHECK(dsm::to_string(TF::arange(0.f, 2000.f).reshape({40, 50})) == want.at("summary2d"));
  dsm::Tensor<float> thirds = TF::arange(0.f, 100.f) / 3.f;
  CHECK(dsm::to_string(thirds) == want.at("wrapped"));
}
