// W7 in LibTorch: the same MoE transformer LM as a PyTorch user writes it (RMSNorm, fused QKV
// projection, RoPE, causal softmax attention, Mixtral-style MoE loop with index_select /
// index_add_, Switch aux loss, torch::optim::AdamW).
#include <benchmark/benchmark.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "libtorch_threads.hpp"
#include "steady.hpp"
#include "w7_common.hpp"

namespace {

constexpr std::int64_t head_dim = w7::d_model / w7::heads;

torch::Tensor param(std::int64_t out, std::int64_t in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return ((torch::rand({out, in}) * 2 - 1) * bound).requires_grad_();
}

struct Block {
  torch::Tensor norm1 = torch::ones({w7::d_model}).requires_grad_(), norm2 = torch::ones({w7::d_model}).requires_grad_();
  torch::Tensor wqkv = param(3 * w7::d_model, w7::d_model), wo = param(w7::d_model, w7::d_model), router = param(w7::experts, w7::d_model);
  std::vector<torch::Tensor> w1, w2, w3;
  Block() {
    for (std::int64_t e = 0; e < w7::experts; ++e) {
      w1.push_back(param(w7::hidden, w7::d_model));
      w2.push_back(param(w7::d_model, w7::hidden));
      w3.push_back(param(w7::hidden, w7::d_model));
    }
  }
  std::vector<torch::Tensor> parameters() {
    std::vector<torch::Tensor> p{norm1, norm2, wqkv, wo, router};
    for (auto* l : {&w1, &w2, &w3}) p.insert(p.end(), l->begin(), l->end());
    return p;
  }
};

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * w; }
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

struct Model {
  torch::Tensor embed = torch::randn({w7::vocab, w7::d_model}).mul_(0.02).requires_grad_();
  std::vector<Block> blocks = std::vector<Block>(static_cast<std::size_t>(w7::layers));
  torch::Tensor norm = torch::ones({w7::d_model}).requires_grad_(), head = param(w7::vocab, w7::d_model);
  torch::Tensor cos, sin, mask;
  Model() {
    auto inv = torch::pow(10000.0, -torch::arange(0, head_dim, 2, torch::kFloat) / head_dim);
    auto ang = torch::arange(w7::seq, torch::kFloat).unsqueeze(1) * inv.unsqueeze(0);
    cos = torch::cat({ang.cos(), ang.cos()}, -1);
    sin = torch::cat({ang.sin(), ang.sin()}, -1);
    mask = torch::ones({w7::seq, w7::seq}, torch::kBool).triu(1);
  }
  std::vector<torch::Tensor> parameters() {
    std::vector<torch::Tensor> p{embed, norm, head};
    for (auto& b : blocks)
      for (auto& t : b.parameters()) p.push_back(t);
    return p;
  }
  torch::Tensor moe(Block& b, const torch::Tensor& x, torch::Tensor& aux) {
    const auto flat = x.reshape({-1, w7::d_model});
    const auto probs = torch::softmax(torch::mm(flat, b.router.t()), -1);
    auto [weights, ids] = probs.topk(w7::top_k, -1);
    weights = weights / weights.sum(-1, true);
    auto out = torch::zeros_like(flat);
    const auto flat_ids = ids.reshape({-1});
    for (std::int64_t e = 0; e < w7::experts; ++e) {
      const auto slots = torch::nonzero(flat_ids == e).squeeze(1);
      if (slots.numel() == 0) continue;
      const auto tokens = torch::floor_divide(slots, w7::top_k);
      const auto xe = flat.index_select(0, tokens);
      const auto h = torch::silu(torch::mm(xe, b.w1[e].t())) * torch::mm(xe, b.w3[e].t());
      // .to(): under autocast the expert product is bf16 while out (from fp32 x) is not
      out.index_add_(0, tokens, (torch::mm(h, b.w2[e].t()) * weights.reshape({-1}).index_select(0, slots).unsqueeze(1)).to(out.scalar_type()));
    }
    const auto counts = torch::bincount(flat_ids, {}, w7::experts).to(torch::kFloat);
    aux = aux + w7::aux_loss_coef * w7::experts * (counts / static_cast<double>(flat_ids.numel()) * probs.mean(0)).sum();
    return out.view(x.sizes());
  }
  torch::Tensor loss(const torch::Tensor& ids, const torch::Tensor& targets) {
    auto x = embed.index_select(0, ids.reshape({-1})).view({w7::batch, w7::seq, w7::d_model});
    auto aux = torch::zeros({});
    for (auto& b : blocks) {
      auto qkv = torch::mm(rms_norm(x, b.norm1).reshape({-1, w7::d_model}), b.wqkv.t()).view({w7::batch, w7::seq, 3, w7::heads, head_dim});
      auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
      q = q * cos + rotate_half(q) * sin;
      k = k * cos + rotate_half(k) * sin;
      auto w = torch::softmax((torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim))).masked_fill(mask, -INFINITY), -1);
      auto attn = torch::matmul(w, v).transpose(1, 2).reshape({-1, w7::d_model});
      x = x + torch::mm(attn, b.wo.t()).view({w7::batch, w7::seq, w7::d_model});
      x = x + moe(b, rms_norm(x, b.norm2), aux);
    }
    auto logits = torch::mm(rms_norm(x, norm).reshape({-1, w7::d_model}), head.t());
    return torch::cross_entropy_loss(logits, targets.reshape({-1})) + aux;
  }
};

/// bf16: the forward inside a CPU autocast region (torch.autocast("cpu", torch.bfloat16) in C++:
/// enable, set the dtype, nest; on leaving, clear the cast cache), backward outside it.
void W7_train(benchmark::State& state, bool bf16) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  torch::manual_seed(1);
  Model m;
  torch::optim::AdamW opt(m.parameters(), torch::optim::AdamWOptions(w7::lr));
  const auto tokens = torch::randint(0, w7::vocab, {w7::batch, w7::seq + 1}, torch::kLong);
  const auto x = tokens.narrow(1, 0, w7::seq).contiguous(), y = tokens.narrow(1, 1, w7::seq).contiguous();
  dsm_bench::run_steady(state, [&] {
    opt.zero_grad();
    torch::Tensor loss;
    if (bf16) {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::increment_nesting();
      loss = m.loss(x, y);
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
      at::autocast::set_cpu_enabled(false);
    } else {
      loss = m.loss(x, y);
    }
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item<float>());
  });
  state.SetItemsProcessed(state.iterations() * w7::batch * w7::seq);
}
BENCHMARK_CAPTURE(W7_train, fp32, false)->Name("W7/train/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(W7_train, bf16, true)->Name("W7/train_autocast_bf16/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
