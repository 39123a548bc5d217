// W5: a BiLSTM-CRF tagger (vocab 5000, embeddings 100, one bidirectional LSTM layer of 128 per
// direction, 20 tags, batch 32, length 32): one training step (forward, CRF NLL by the forward
// algorithm, backward, Adam) and decoding (BiLSTM + Viterbi). Rate: sentences/s.
#include <benchmark/benchmark.h>

#include <dsm/dsm.hpp>
#include <dsm/models/tagger.hpp>

#include "steady.hpp"
#include "w5_common.hpp"

namespace {

using Tagger = dsm::models::BiLSTMCRF<{.vocab_size = w5::vocab, .embedding_dim = w5::embedding, .hidden_size = w5::hidden, .num_tags = w5::tags}>;

struct Setup {
  dsm::Generator gen{1};
  Tagger model{{.generator = &gen}};
  dsm::models::TaggerInput input{dsm::Tensor<std::int64_t>::randint(0, w5::vocab, {w5::batch, w5::seq}, gen), {}, {}, {}};
  dsm::Tensor<std::int64_t> gold = dsm::Tensor<std::int64_t>::randint(0, w5::tags, {w5::batch, w5::seq}, gen);
};

void W5_train_dsm(benchmark::State& state) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  Setup s;
  dsm::optim::Adam<float> opt(s.model.named_parameters(), {.lr = w5::lr});
  dsm_bench::run_steady(state, [&] {
    opt.zero_grad();
    const dsm::Var<float> loss = s.model.loss(s.input, s.gold);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item());
  });
  state.SetItemsProcessed(state.iterations() * w5::batch);
}
BENCHMARK(W5_train_dsm)->Name("W5/train/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W5_decode_dsm(benchmark::State& state) {
  dsm::set_num_threads(static_cast<int>(state.range(0)));
  Setup s;
  s.model.eval();
  dsm_bench::run_steady(state, [&] { benchmark::DoNotOptimize(s.model.decode(s.input).tags.data()[0]); });
  state.SetItemsProcessed(state.iterations() * w5::batch);
}
BENCHMARK(W5_decode_dsm)->Name("W5/decode/dsm")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
