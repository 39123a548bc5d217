// W4 in LibTorch: torch::nn::MultiheadAttention with a causal mask (the module a PyTorch user
// reaches for), and the hand-written form (one QKV linear, matmul, masked softmax, matmul, output
// linear), reported as "libtorch_manual".
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <optional>

#include "libtorch_threads.hpp"
#include "steady.hpp"

namespace {

constexpr std::int64_t batch = 8, seq = 256, d_model = 512, heads = 8, head_dim = d_model / heads;

torch::Tensor causal_mask() { return torch::ones({seq, seq}, torch::kBool).triu(1); }

struct Manual {
  torch::nn::Linear qkv{torch::nn::LinearOptions(d_model, 3 * d_model).bias(false)};
  torch::nn::Linear out{torch::nn::LinearOptions(d_model, d_model).bias(false)};
  torch::Tensor mask = causal_mask();
  torch::Tensor operator()(const torch::Tensor& x) {
    auto parts = qkv(x).view({batch, seq, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
    auto scores = torch::matmul(parts[0], parts[1].transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
    auto w = torch::softmax(scores.masked_fill(mask, -std::numeric_limits<float>::infinity()), -1);
    return out(torch::matmul(w, parts[2]).transpose(1, 2).reshape({batch, seq, d_model}));
  }
};

void W4_module(benchmark::State& state, bool train) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  torch::manual_seed(1);
  torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(d_model, heads).bias(false));
  auto x = torch::randn({seq, batch, d_model});  // (T, B, d): the module's layout
  if (train) x.requires_grad_();
  const auto mask = causal_mask();
  std::optional<torch::NoGradGuard> guard;
  if (!train) guard.emplace();
  dsm_bench::run_steady(state, [&] {
    auto y = std::get<0>(mha->forward(x, x, x, {}, false, mask));
    if (train) {
      mha->zero_grad();
      x.mutable_grad() = torch::Tensor();
      y.sum().backward();
    }
    benchmark::DoNotOptimize(y.data_ptr());
  });
  state.SetItemsProcessed(state.iterations() * batch * seq);
}

void W4_manual(benchmark::State& state, bool train) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  torch::manual_seed(1);
  Manual m;
  auto x = torch::randn({batch, seq, d_model});
  if (train) x.requires_grad_();
  std::optional<torch::NoGradGuard> guard;
  if (!train) guard.emplace();
  dsm_bench::run_steady(state, [&] {
    auto y = m(x);
    if (train) {
      m.qkv->zero_grad();
      m.out->zero_grad();
      x.mutable_grad() = torch::Tensor();
      y.sum().backward();
    }
    benchmark::DoNotOptimize(y.data_ptr());
  });
  state.SetItemsProcessed(state.iterations() * batch * seq);
}

BENCHMARK_CAPTURE(W4_module, forward, false)->Name("W4/forward/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_module, train, true)->Name("W4/forward_backward/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_manual, forward, false)->Name("W4/forward/libtorch_manual")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W4_manual, train, true)->Name("W4/forward_backward/libtorch_manual")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
