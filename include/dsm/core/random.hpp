// dsm/core/random.hpp: counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11).
//
// A Philox draw is a pure function of (key, counter), so element i of a random tensor is computed
// from (seed, offset + i / per_block) alone: the same seed gives the same tensor whatever the
// thread count, and a CUDA kernel can produce the same stream (all functions are DSM_HOST_DEVICE).
//
//   dsm::Generator gen{42};
//   auto x = dsm::Tensor<float>::randn({4, 8}, gen);    // advances gen's offset by 8 blocks
//   auto st = gen.state();  ...  gen.set_state(st);      // replay, e.g. for recomputation
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>

#include "config.hpp"

namespace dsm {

/// Four 32-bit words: one Philox counter or one output block.
struct Philox4 {
  std::uint32_t w[4];
};

namespace detail {
DSM_HOST_DEVICE inline void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}
}  // namespace detail

/// Philox-4x32 with 10 rounds: the bijection of `ctr` keyed by (k0, k1).
DSM_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;  // round multipliers
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;  // Weyl key increments
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += w0;
      k1 += w1;
    }
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo32(m0, ctr.w[0], hi0, lo0);
    detail::mulhilo32(m1, ctr.w[2], hi1, lo1);
    ctr = Philox4{{hi1 ^ ctr.w[1] ^ k0, lo1, hi0 ^ ctr.w[3] ^ k1, lo0}};
  }
  return ctr;
}

/// The block at index `block` of the stream `stream` for `seed`.
DSM_HOST_DEVICE inline Philox4 philox_block(std::uint64_t seed, std::uint64_t block, std::uint64_t stream = 0) {
  Philox4 ctr{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
               static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

/// Uniform float in [0, 1) from the top 24 bits of a word (every value is exactly representable).
DSM_HOST_DEVICE inline float uniform_float(std::uint32_t u) { return static_cast<float>(u >> 8) * 0x1p-24f; }
/// Uniform double in [0, 1) from 53 bits of two words.
DSM_HOST_DEVICE inline double uniform_double(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(bits & ((std::uint64_t{1} << 53) - 1)) * 0x1p-53;
}

/// Box-Muller: two standard normals from two uniform words (u1 mapped to (0, 1] so log is finite).
DSM_HOST_DEVICE inline void box_muller(std::uint32_t a, std::uint32_t b, float& z0, float& z1) {
  const float u1 = static_cast<float>((a >> 8) + 1u) * 0x1p-24f;
  const float u2 = uniform_float(b);
  const float r = std::sqrt(-2.0f * std::log(u1));
  const float t = 6.2831853071795864769f * u2;
  z0 = r * std::cos(t);
  z1 = r * std::sin(t);
}
DSM_HOST_DEVICE inline void box_muller(const Philox4& blk, double& z0, double& z1) {
  const double u1 = 1.0 - uniform_double(blk.w[0], blk.w[1]);  // (0, 1]
  const double u2 = uniform_double(blk.w[2], blk.w[3]);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = 6.283185307179586476925 * u2;
  z0 = r * std::cos(t);
  z1 = r * std::sin(t);
}

class Generator;
namespace detail {
/// Told of every draw made on this thread while it is active (activation checkpointing records
/// the generators a function draws from: dsm/autograd/checkpoint.hpp). Tapes chain to the one
/// that was active before them, and each sees every draw.
struct GeneratorTape {
  GeneratorTape* parent = nullptr;
  virtual void note(Generator& g, std::uint64_t first_block) = 0;
  virtual ~GeneratorTape() = default;
};
inline GeneratorTape*& generator_tape() {
  thread_local GeneratorTape* tape = nullptr;
  return tape;
}
}  // namespace detail

/// A seeded stream position. Random factories reserve blocks from it, so consecutive calls draw
/// fresh numbers; saving and restoring state() replays them exactly.
class Generator {
 public:
  static constexpr std::uint64_t default_seed = 67280421310721ull;

  struct State {
    std::uint64_t seed;
    std::uint64_t offset;
  };

  explicit Generator(std::uint64_t seed = default_seed) : seed_(seed), offset_(0) {}
  Generator(const Generator& o) : seed_(o.seed_), offset_(o.offset_.load()) {}
  Generator& operator=(const Generator& o) {
    seed_ = o.seed_;
    offset_ = o.offset_.load();
    return *this;
  }

  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_.load(); }
  /// Restarts the stream at offset 0 with a new seed.
  void manual_seed(std::uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  State state() const { return {seed_, offset_.load()}; }
  void set_state(State s) {
    seed_ = s.seed;
    offset_ = s.offset;
  }
  /// Reserves `blocks` consecutive Philox blocks and returns the index of the first.
  std::uint64_t reserve(std::uint64_t blocks) {
    const std::uint64_t first = offset_.fetch_add(blocks);
    for (detail::GeneratorTape* t = detail::generator_tape(); t != nullptr; t = t->parent) t->note(*this, first);
    return first;
  }

 private:
  std::uint64_t seed_;
  std::atomic<std::uint64_t> offset_;
};

/// The process-wide generator used when a factory is given none.
inline Generator& default_generator() {
  static Generator gen;
  return gen;
}
/// Reseeds the default generator (as torch.manual_seed).
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace dsm
