// W3 in LibTorch: the MoE layer as a PyTorch user writes it (the common Mixtral implementation):
// a softmax router, top-2, renormalized weights, then a loop over the experts that gathers each
// expert's tokens with index_select and scatters the weighted outputs back with index_add_.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <vector>

#include "libtorch_threads.hpp"
#include "steady.hpp"
#include "w3_common.hpp"

namespace {

struct TorchMoE {
  torch::Tensor router;  // [experts, d]
  std::vector<torch::Tensor> w1, w2, w3;

  TorchMoE() {
    torch::manual_seed(3);
    auto uniform = [](std::int64_t out, std::int64_t in) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      return (torch::rand({out, in}) * 2 - 1).mul_(bound).requires_grad_();
    };
    router = uniform(w3::n_experts, w3::d_model);
    for (std::int64_t e = 0; e < w3::n_experts; ++e) {
      w1.push_back(uniform(w3::hidden, w3::d_model));
      w2.push_back(uniform(w3::d_model, w3::hidden));
      w3.push_back(uniform(w3::hidden, w3::d_model));
    }
  }

  /// Returns (output, aux loss).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x) {
    const auto probs = torch::softmax(torch::mm(x, router.t()), -1);  // [T, E]
    auto [weights, ids] = probs.topk(w3::top_k, -1);
    weights = weights / weights.sum(-1, true);
    auto out = torch::zeros_like(x);
    const auto flat_ids = ids.reshape({-1});
    for (std::int64_t e = 0; e < w3::n_experts; ++e) {
      const auto slots = torch::nonzero(flat_ids == e).squeeze(1);  // flattened (token, slot)
      if (slots.numel() == 0) continue;
      const auto tokens = torch::floor_divide(slots, w3::top_k);
      const auto xe = x.index_select(0, tokens);
      const auto h = torch::silu(torch::mm(xe, w1[e].t())) * torch::mm(xe, w3[e].t());
      const auto ye = torch::mm(h, w2[e].t()) * weights.reshape({-1}).index_select(0, slots).unsqueeze(1);
      out.index_add_(0, tokens, ye);
    }
    const auto counts = torch::bincount(flat_ids, {}, w3::n_experts).to(torch::kFloat);
    const auto aux = w3::aux_loss_coef * w3::n_experts * (counts / static_cast<double>(w3::tokens * w3::top_k) * probs.mean(0)).sum();
    return {out, aux};
  }
  void zero_grad() {
    router.mutable_grad() = torch::Tensor();
    for (auto* list : {&w1, &w2, &w3})
      for (auto& w : *list) w.mutable_grad() = torch::Tensor();
  }
};

void report(benchmark::State& state, double flops_per_token) {
  state.SetItemsProcessed(state.iterations() * w3::tokens);
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * w3::tokens * flops_per_token / 1e9, benchmark::Counter::kIsRate);
}

void W3_forward_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  TorchMoE moe;
  torch::manual_seed(4);
  const auto x = torch::randn({w3::tokens, w3::d_model});
  torch::NoGradGuard guard;
  dsm_bench::run_steady(state, [&] {
    auto [out, aux] = moe.forward(x);
    benchmark::DoNotOptimize(out.data_ptr());
  });
  report(state, w3::forward_flops_per_token);
}
BENCHMARK(W3_forward_libtorch)->Name("W3/forward/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W3_train_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  TorchMoE moe;
  torch::manual_seed(4);
  auto x = torch::randn({w3::tokens, w3::d_model}).requires_grad_();
  dsm_bench::run_steady(state, [&] {
    moe.zero_grad();
    x.mutable_grad() = torch::Tensor();
    auto [out, aux] = moe.forward(x);
    (out.sum() + aux).backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  });
  report(state, w3::train_flops_per_token);
}
BENCHMARK(W3_train_libtorch)->Name("W3/forward_backward/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
