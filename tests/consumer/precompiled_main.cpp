// A user's program linked with dsm::precompiled: matmul, attention and a run-time configured
// transformer come from the installed library (declared extern by <dsm/dsm.hpp>).
#include <dsm/dsm.hpp>

#include <cmath>
#include <iostream>

#if !DSM_PRECOMPILED
#error "dsm::precompiled must define DSM_PRECOMPILED for its users"
#endif

int main() {
  // d/da sum(a @ b) = ones @ b^T: a[i, j] gets the sum of row j of b.
  dsm::Var<float> a(dsm::Tensor<float>::arange(0.f, 6.f).reshape({2, 3}), true);
  dsm::Var<float> b(dsm::Tensor<float>::arange(0.f, 12.f).reshape({3, 4}), true);
  dsm::Var<float> s = dsm::sum(dsm::matmul(a, b));
  s.backward();
  const float grad_ok = a.grad().at({1, 2}) == 8.f + 9.f + 10.f + 11.f ? 1.f : 0.f;
  // The block-wise attention against the plain one, both from the library.
  const auto q = dsm::Var<float>(dsm::Tensor<float>::randn({1, 2, 40, 8}));
  const auto k = dsm::Var<float>(dsm::Tensor<float>::randn({1, 2, 40, 8}));
  const auto v = dsm::Var<float>(dsm::Tensor<float>::randn({1, 2, 40, 8}));
  const dsm::nn::functional::AttentionOptions causal{.causal = true};
  const float diff = dsm::max(dsm::abs(dsm::nn::functional::flash_attention(q, k, v, causal).value() -
                                       dsm::nn::functional::attention(q, k, v, causal).value())).item();
  // A model configured at run time, all of it in the library: at initialization its predictions
  // are close to uniform, so the loss is close to ln(vocabulary).
  dsm::models::TransformerLM<dsm::dynamic> lm(dsm::models::TransformerConfig{.vocab_size = 64, .d_model = 32, .n_layers = 2, .n_heads = 2, .d_ff = 64, .n_experts = 4});
  const auto tokens = dsm::Tensor<std::int64_t>::randint(0, 64, {2, 17});
  const float lm_loss = dsm::models::lm_loss(lm(tokens.narrow(1, 0, 16).contiguous()).logits, tokens.narrow(1, 1, 16).contiguous()).item();
  std::cout << "consumer (precompiled): sum = " << s.item() << ", attention difference = " << diff << ", LM loss " << lm_loss << '\n';
  return s.item() == 394.f && grad_ok == 1.f && diff < 1e-5f && std::fabs(lm_loss - std::log(64.f)) < 0.5f ? 0 : 1;
}
