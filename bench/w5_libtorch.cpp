// W5 in LibTorch: torch::nn::Embedding, a bidirectional torch::nn::LSTM, torch::nn::Linear and a
// CRF written in torch ops as the pytorch-crf package writes it (gold score by indexing, the
// normalizer by the forward algorithm with logsumexp over broadcast [B, K, K] scores, Viterbi by
// max over the same and a backtrack on the host), torch::optim::Adam.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "libtorch_threads.hpp"
#include "steady.hpp"
#include "w5_common.hpp"

namespace {

struct Tagger : torch::nn::Module {
  torch::nn::Embedding embed{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear proj{nullptr};
  torch::Tensor start, end, trans;
  Tagger() {
    embed = register_module("embed", torch::nn::Embedding(w5::vocab, w5::embedding));
    lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(w5::embedding, w5::hidden).bidirectional(true).batch_first(true)));
    proj = register_module("proj", torch::nn::Linear(2 * w5::hidden, w5::tags));
    start = register_parameter("start", torch::empty({w5::tags}).uniform_(-0.1, 0.1));
    end = register_parameter("end", torch::empty({w5::tags}).uniform_(-0.1, 0.1));
    trans = register_parameter("trans", torch::empty({w5::tags, w5::tags}).uniform_(-0.1, 0.1));
  }
  torch::Tensor emissions(const torch::Tensor& words) {  // [B, T, K] -> time-major [T, B, K] as pytorch-crf uses
    auto out = std::get<0>(lstm->forward(embed->forward(words)));
    return proj->forward(out).transpose(0, 1);
  }
  torch::Tensor nll(const torch::Tensor& words, const torch::Tensor& tags_bt, const torch::Tensor& mask_bt) {
    const auto e = emissions(words);
    const auto tags = tags_bt.t(), mask = mask_bt.t().to(torch::kFloat);
    const auto batch_idx = torch::arange(w5::batch, torch::kLong);
    // Gold path score.
    auto score = start.index_select(0, tags[0]) + e[0].index({batch_idx, tags[0]});
    for (std::int64_t i = 1; i < w5::seq; ++i)
      score = score + trans.index({tags[i - 1], tags[i]}) * mask[i] + e[i].index({batch_idx, tags[i]}) * mask[i];
    const auto ends = mask.to(torch::kLong).sum(0) - 1;
    score = score + end.index_select(0, tags.index({ends, batch_idx}));
    // Normalizer by the forward algorithm.
    auto alpha = start + e[0];
    for (std::int64_t i = 1; i < w5::seq; ++i) {
      const auto next = torch::logsumexp(alpha.unsqueeze(2) + trans + e[i].unsqueeze(1), 1);
      alpha = torch::where(mask[i].unsqueeze(1).to(torch::kBool), next, alpha);
    }
    const auto log_z = torch::logsumexp(alpha + end, 1);
    return (log_z - score).mean();
  }
  std::vector<std::vector<std::int64_t>> decode(const torch::Tensor& words) {
    const auto e = emissions(words);
    auto score = start + e[0];
    std::vector<torch::Tensor> history;
    for (std::int64_t i = 1; i < w5::seq; ++i) {
      auto [best, idx] = (score.unsqueeze(2) + trans + e[i].unsqueeze(1)).max(1);
      score = best;
      history.push_back(idx);
    }
    score = score + end;
    const auto last = std::get<1>(score.max(1));
    const auto hist = torch::stack(history).contiguous();  // [T-1, B, K]
    const auto h = hist.accessor<std::int64_t, 3>();
    const auto l = last.accessor<std::int64_t, 1>();
    std::vector<std::vector<std::int64_t>> paths(w5::batch, std::vector<std::int64_t>(w5::seq));
    for (std::int64_t b = 0; b < w5::batch; ++b) {
      std::int64_t tag = l[b];
      paths[b][w5::seq - 1] = tag;
      for (std::int64_t t = w5::seq - 2; t >= 0; --t) paths[b][t] = tag = h[t][b][tag];
    }
    return paths;
  }
};

struct Setup {
  Setup() { torch::manual_seed(1); }
  std::shared_ptr<Tagger> model = std::make_shared<Tagger>();
  torch::Tensor words = torch::randint(0, w5::vocab, {w5::batch, w5::seq}, torch::kLong);
  torch::Tensor gold = torch::randint(0, w5::tags, {w5::batch, w5::seq}, torch::kLong);
  torch::Tensor mask = torch::ones({w5::batch, w5::seq}, torch::kBool);
};

void W5_train_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  Setup s;
  torch::optim::Adam opt(s.model->parameters(), torch::optim::AdamOptions(w5::lr));
  dsm_bench::run_steady(state, [&] {
    opt.zero_grad();
    auto loss = s.model->nll(s.words, s.gold, s.mask);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item<float>());
  });
  state.SetItemsProcessed(state.iterations() * w5::batch);
}
BENCHMARK(W5_train_libtorch)->Name("W5/train/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W5_decode_libtorch(benchmark::State& state) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(0)));
  Setup s;
  s.model->eval();
  torch::NoGradGuard guard;
  dsm_bench::run_steady(state, [&] { benchmark::DoNotOptimize(s.model->decode(s.words)[0][0]); });
  state.SetItemsProcessed(state.iterations() * w5::batch);
}
BENCHMARK(W5_decode_libtorch)->Name("W5/decode/libtorch")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
