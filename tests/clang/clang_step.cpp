// Clang portability check: one training step of the W7 MoE transformer and of a BiLSTM-CRF
// tagger, built with clang++ (tests/clang/run_clang.sh). Clang before 18 does not take a braced
// list as a template argument, so the configurations name their types.
#include <dsm/dsm.hpp>

#include <cstdio>

int main() {
  using namespace dsm;
  models::TransformerOptions o;
  o.moe.aux_loss_coef = 0.01;
  models::TransformerLM<models::TransformerConfig{.vocab_size = 256, .d_model = 64, .n_layers = 2, .n_heads = 4, .d_ff = 128, .n_experts = 4, .top_k = 2}> lm(o);
  optim::AdamW<float> opt(lm.named_parameters(), {.lr = 1e-2});
  const auto tokens = Tensor<std::int64_t>::randint(0, 256, {4, 33});
  auto out = lm(tokens.narrow(1, 0, 32).contiguous());
  Var<float> loss = models::lm_loss(out.logits, tokens.narrow(1, 1, 32).contiguous()) + out.balance_loss;
  loss.backward();
  opt.step();

  models::BiLSTMCRF<models::TaggerConfig{.vocab_size = 50, .embedding_dim = 16, .hidden_size = 16, .num_tags = 5}> tagger;
  optim::Adam<float> tagger_opt(tagger.named_parameters(), {.lr = 1e-2});
  models::TaggerInput in{Tensor<std::int64_t>::randint(0, 50, {3, 7}), {7, 5, 2}, {}, {}};
  const auto gold = Tensor<std::int64_t>::randint(0, 5, {3, 7});
  Var<float> nll = tagger.loss(in, gold);
  nll.backward();
  tagger_opt.step();
  const auto best = tagger.decode(in);

  const no_grad guard;
  const float lm_after = models::lm_loss(lm(tokens.narrow(1, 0, 32).contiguous()).logits, tokens.narrow(1, 1, 32).contiguous()).item();
  const float nll_after = tagger.loss(in, gold).item();
  std::printf("LM loss %.6g -> %.6g, tagger NLL %.6g -> %.6g, first path tag %lld\n", static_cast<double>(loss.item()), static_cast<double>(lm_after),
              static_cast<double>(nll.item()), static_cast<double>(nll_after), static_cast<long long>(best.tags.at({0, 0})));
  return lm_after < loss.item() && nll_after < nll.item() && best.tags.at({2, 6}) == -1 ? 0 : 1;
}
