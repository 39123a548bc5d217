// bench/libtorch_threads.hpp: the LibTorch peer's thread count, applied to ATen and to OpenBLAS
// (which otherwise keeps its own pool and runs GEMMs on every core whatever ATen is told).
#pragma once

#include <dlfcn.h>
#include <torch/torch.h>

namespace dsm_bench {
inline void set_torch_threads(int n) {
  at::set_num_threads(n);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}
}  // namespace dsm_bench
