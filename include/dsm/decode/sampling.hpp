// dsm/decode/sampling.hpp: choosing the next token from a row of logits.
//
//   dsm::decode::SamplingOptions s{.temperature = 0.8, .top_k = 40, .top_p = 0.95};
//   std::int64_t next = dsm::decode::sample(logits_row, s, gen);   // logits_row: V floats
//
// temperature 0 is greedy (argmax, ties to the lower id). Otherwise the logits are divided by the
// temperature, cut to the top_k largest (0: all), then to the smallest set whose probability
// reaches top_p (1: all; nucleus sampling), renormalized, and one id is drawn from the
// generator: the same generator state gives the same token.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace dsm::decode {

struct SamplingOptions {
  double temperature = 1.0;  ///< 0: greedy
  std::int64_t top_k = 0;    ///< keep the k most likely ids; 0: all
  double top_p = 1.0;        ///< keep the smallest set reaching this probability; 1: all
};

inline void check(const SamplingOptions& s) {
  if (!(s.temperature >= 0)) fail<config_error>("sample", "temperature must be >= 0, got ", s.temperature);
  if (s.top_k < 0) fail<config_error>("sample", "top_k must be >= 0, got ", s.top_k);
  if (!(s.top_p > 0 && s.top_p <= 1)) fail<config_error>("sample", "top_p must be in (0, 1], got ", s.top_p);
}

/// Samples one id from `logits` (n values) as the header describes.
template <class T>
std::int64_t sample(const T* logits, std::int64_t n, const SamplingOptions& s, Generator& gen) {
  check(s);
  if (n <= 0) fail<shape_error>("sample", "no logits");
  if (s.temperature == 0) return std::max_element(logits, logits + n) - logits;
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  auto higher = [&](std::int64_t a, std::int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  const std::int64_t keep = s.top_k > 0 ? std::min(s.top_k, n) : n;
  std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), higher);
  ids.resize(static_cast<std::size_t>(keep));
  std::vector<double> p(ids.size());
  const double top = static_cast<double>(logits[ids[0]]);
  double total = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) total += p[i] = std::exp((static_cast<double>(logits[ids[i]]) - top) / s.temperature);
  std::size_t cut = ids.size();
  if (s.top_p < 1) {
    double mass = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      mass += p[i] / total;
      if (mass >= s.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  double kept = 0;
  for (std::size_t i = 0; i < cut; ++i) kept += p[i];
  const double u = static_cast<double>(Tensor<double>::rand({1}, gen).item()) * kept;
  double acc = 0;
  for (std::size_t i = 0; i < cut; ++i) {
    acc += p[i];
    if (u < acc) return ids[i];
  }
  return ids[cut - 1];
}

}  // namespace dsm::decode
