// Compiles the core and expression headers under nvcc and instantiates an elementwise expression
// inside a kernel. CI compiles and links this file only (no GPU needed); see run_nvcc.sh.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include <dsm/core/tensor.hpp>
#include <dsm/expr/operators.hpp>

// A stand-in device backend: enough of the Backend concept to build tensors over device memory.
struct device_stub {
  static constexpr const char* name = "device_stub";
  static constexpr bool host_accessible = false;
  static void* allocate(std::size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) throw dsm::error("cudaMalloc failed");
    return p;
  }
  static void deallocate(void* p, std::size_t) { cudaFree(p); }
  static void copy_bytes(void* dst, const void* src, std::size_t bytes) { cudaMemcpy(dst, src, bytes, cudaMemcpyDefault); }
  template <class F>
  static void parallel_for(std::int64_t n, std::int64_t, F&& f) { f(std::int64_t{0}, n); }
};
static_assert(dsm::Backend<device_stub>);

// One thread per element of contiguous, same-shape operands: every leaf sits at offset i.
template <class Eval, class T, int Leaves>
__global__ void eval_kernel(Eval ev, T* out, std::int64_t n) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  std::int64_t off[Leaves > 0 ? Leaves : 1], st[Leaves > 0 ? Leaves : 1];
  for (int k = 0; k < Leaves; ++k) off[k] = i, st[k] = 1;
  Eval local = ev;
  local.seek(off, st);
  out[i] = dsm::convert<T>(local.load(0));
}

int main() {
  using T = dsm::Tensor<float, device_stub>;
  const std::int64_t n = 1 << 20;
  T a({n}), b({n}), c({n}), y({n});
  auto expr = dsm::relu(a * b + c) + dsm::where(a > 0.f, dsm::gelu(b), dsm::cast<dsm::bf16>(c) * 2.f);
  int next = 0;
  auto ev = dsm::expr_access<decltype(expr)>::evaluator(expr, next);
  constexpr int leaves = dsm::leaf_count_v<decltype(expr)>;
  eval_kernel<decltype(ev), float, leaves><<<static_cast<unsigned>((n + 255) / 256), 256>>>(ev, y.data(), n);
  const cudaError_t err = cudaDeviceSynchronize();
  std::printf("nvcc check: kernel over %d leaves ran with status %s\n", leaves, cudaGetErrorString(err));
  return 0;
}
