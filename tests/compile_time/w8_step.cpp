// W8: a translation unit that includes <dsm/dsm.hpp> and trains one step of the W7 model (byte
// vocabulary, d 256, 4 layers, 4 heads, every FFN an MoE of 8 experts top-2 of hidden 512, AdamW).
// Its compile time is printed by measure.sh; the peer is a TU including <torch/torch.h>. It prints
// the step's loss and the loss after it (which the backward pass and AdamW decide); measure.sh
// compares them between the header-only and dsm::precompiled builds.
#include <dsm/dsm.hpp>

#include <cstdio>

int main() {
  dsm::models::TransformerOptions o;
  o.moe.aux_loss_coef = 0.01;
  dsm::models::TransformerLM<{.vocab_size = 256, .d_model = 256, .n_layers = 4, .n_heads = 4, .d_ff = 512, .n_experts = 8, .top_k = 2}> lm(o);
  dsm::optim::AdamW<float> opt(lm.named_parameters(), {.lr = 1e-3});
  const auto tokens = dsm::Tensor<std::int64_t>::randint(0, 256, {16, 129});
  opt.zero_grad();
  auto out = lm(tokens.narrow(1, 0, 128).contiguous());
  dsm::Var<float> loss = dsm::models::lm_loss(out.logits, tokens.narrow(1, 1, 128).contiguous()) + out.balance_loss;
  loss.backward();
  opt.step();
  const dsm::no_grad guard;
  const float after = dsm::models::lm_loss(lm(tokens.narrow(1, 0, 128).contiguous()).logits, tokens.narrow(1, 1, 128).contiguous()).item();
  std::printf("%.9g %.9g\n", static_cast<double>(loss.item()), static_cast<double>(after));
  return loss.item() > 0 && after < loss.item() ? 0 : 1;
}
