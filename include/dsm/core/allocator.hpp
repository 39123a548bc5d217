// dsm/core/allocator.hpp: a caching allocator with byte accounting, generic over the raw
// allocation functions of a backend.
//
// Freed blocks are kept in size-class bins and reused by later requests of the same class, so a
// training loop that allocates the same shapes every step stops calling the system allocator
// after the first step. A request the cache cannot serve first trims it (largest classes first)
// when it holds more than twice the peak of live tensors and more than 128 MiB, so varying
// shapes cannot make it grow without bound. The counters are what users (and later issues) read to measure memory:
//
//   auto s = dsm::cpu::memory_stats();
//   std::cout << s.current_bytes << " in use, peak " << s.peak_bytes << '\n';
//   dsm::cpu::reset_peak_memory();
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "error.hpp"

namespace dsm {

/// Byte counters of one backend's caching allocator.
struct MemoryStats {
  std::size_t current_bytes = 0;   ///< bytes held by live storages (rounded block sizes)
  std::size_t peak_bytes = 0;      ///< maximum of current_bytes since start or reset_peak()
  std::size_t cached_bytes = 0;    ///< bytes in freed blocks kept for reuse
  std::size_t reserved_bytes = 0;  ///< current + cached: what the system allocator has given
  std::uint64_t allocations = 0;   ///< number of allocate() calls
  std::uint64_t cache_hits = 0;    ///< allocate() calls served from the cache
};

/// RawAlloc provides `static void* raw_allocate(size_t)` (nullptr on failure) and
/// `static void raw_free(void*, size_t)`.
template <class RawAlloc>
class CachingAllocator {
 public:
  /// Rounds a request to its size class: multiples of 512 bytes up to 64 KiB, then four classes per
  /// power of two (at most 25% waste), so blocks of similar sizes are shared.
  static std::size_t round_size(std::size_t bytes) {
    if (bytes == 0) return 0;
    if (bytes <= 65536) return (bytes + 511) & ~std::size_t{511};
    std::size_t p = 65536;
    while (p * 2 < bytes) p *= 2;
    const std::size_t step = p / 4;
    return (bytes + step - 1) / step * step;
  }

  void* allocate(std::size_t bytes) {
    const std::size_t size = round_size(bytes);
    if (size == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.allocations;
    void* p = nullptr;
    auto it = bins_.find(size);
    if (it != bins_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
      ++stats_.cache_hits;
    } else {
      trim_cache_locked();
      p = RawAlloc::raw_allocate(size);
      if (!p) {  // the cache may be what stands in the way: return it and try once more
        release_cache_locked();
        p = RawAlloc::raw_allocate(size);
      }
      if (!p) fail<error>("allocate", "out of memory allocating ", bytes, " bytes (", stats_.current_bytes, " in use)");
      stats_.reserved_bytes += size;
    }
    stats_.current_bytes += size;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    return p;
  }

  void deallocate(void* p, std::size_t bytes) {
    if (!p) return;
    const std::size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.current_bytes -= size;
    bins_[size].push_back(p);
    stats_.cached_bytes += size;
  }

  MemoryStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes = stats_.current_bytes;
  }
  /// Below this many cached bytes a miss never trims the cache.
  static constexpr std::size_t trim_floor = std::size_t{64} << 20;

  /// Returns every cached block to the system allocator.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cache_locked();
  }

  ~CachingAllocator() { release_cache_locked(); }

 private:
  void release_cache_locked() {
    for (auto& [size, blocks] : bins_) {
      for (void* p : blocks) RawAlloc::raw_free(p, size);
      stats_.cached_bytes -= size * blocks.size();
      stats_.reserved_bytes -= size * blocks.size();
      blocks.clear();
    }
  }

  /// On a miss: when the cache holds more than twice the peak of live tensors (and more than
  /// twice trim_floor), free cached blocks, largest classes first, down to that peak, so reserved
  /// memory stays under three times the peak. A loop of
  /// fixed shapes never misses, so it never trims; a loop of varying shapes (length-bucketed
  /// batches) would otherwise keep a block of every class it ever used.
  void trim_cache_locked() {
    const std::size_t limit = std::max(trim_floor, stats_.peak_bytes);
    if (stats_.cached_bytes <= 2 * limit) return;  // hysteresis: a fixed-shape loop whose classes
                                                   // together exceed its peak must not thrash
    std::vector<std::size_t> sizes;
    for (const auto& [size, blocks] : bins_)
      if (!blocks.empty()) sizes.push_back(size);
    std::sort(sizes.begin(), sizes.end(), std::greater<>());
    for (std::size_t size : sizes) {
      auto& blocks = bins_[size];
      while (!blocks.empty() && stats_.cached_bytes > limit) {
        RawAlloc::raw_free(blocks.back(), size);
        blocks.pop_back();
        stats_.cached_bytes -= size;
        stats_.reserved_bytes -= size;
      }
      if (stats_.cached_bytes <= limit) break;
    }
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> bins_;
  MemoryStats stats_;
};

}  // namespace dsm
