// dsm/core/storage.hpp: a block of backend memory shared by the tensors that view it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "concepts.hpp"

namespace dsm {

/// Owns `bytes` bytes of backend B's memory (or borrows external memory, see Tensor::from_blob).
/// Tensors hold a shared_ptr to it; the block returns to B's caching allocator with the last view.
template <class B>
class Storage {
 public:
  explicit Storage(std::size_t bytes) : ptr_(B::allocate(bytes)), bytes_(bytes) {}
  /// Borrows `ptr`; `release` (may be empty) is called when the last view goes away.
  Storage(void* ptr, std::size_t bytes, std::function<void(void*)> release)
      : ptr_(ptr), bytes_(bytes), owned_(false), release_(std::move(release)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (owned_) B::deallocate(ptr_, bytes_);
    else if (release_) release_(ptr_);
  }

  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  bool owned() const { return owned_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  bool owned_ = true;
  std::function<void(void*)> release_;
};

}  // namespace dsm
