// Mixed precision and activation checkpointing on a small MoE language model: the same training
// steps in fp32, under bf16 autocast, and under f16 autocast with the dynamic loss scaler, each
// with every block checkpointed; peak memory with and without checkpointing. Built and run in CI;
// docs/mixed-precision.md and docs/checkpointing.md walk through it.
#include <cstdio>

#include <dsm/dsm.hpp>

using dsm::Tensor;
using dsm::Var;
namespace amp = dsm::amp;
namespace models = dsm::models;

constexpr models::TransformerConfig config{
    .vocab_size = 64, .d_model = 64, .n_layers = 4, .n_heads = 4, .d_ff = 96, .n_experts = 4, .top_k = 2, .first_dense_layers = 1};

enum class Mode { fp32, bf16, f16 };

/// Trains a fresh model for `steps` steps on a fixed batch; returns the last loss.
double train(Mode mode, std::int64_t checkpoint_every, int steps, std::size_t* peak_bytes = nullptr) {
  dsm::Generator gen(1);
  models::TransformerOptions o;
  o.generator = &gen;
  o.dropout = 0.1;                      // masks are replayed exactly when a block is recomputed
  o.checkpoint_every = checkpoint_every;
  models::TransformerLM<config> lm(o);
  const Tensor<std::int64_t> tokens = Tensor<std::int64_t>::randint(0, config.vocab_size, {8, 65}, gen);
  const Tensor<std::int64_t> input = tokens.narrow(1, 0, 64).contiguous(), target = tokens.narrow(1, 1, 64).contiguous();
  dsm::optim::AdamW<float> opt(lm.named_parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  amp::GradScaler scaler({.enabled = mode == Mode::f16});  // bf16 needs no scaler
  double last = 0;
  dsm::cpu::reset_peak_memory();
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    Var<float> loss;
    {
      amp::autocast ac(mode == Mode::f16 ? amp::Precision::f16 : amp::Precision::bf16, /*enabled=*/mode != Mode::fp32);
      auto out = lm(input);
      loss = Var<float>(models::lm_loss(out.logits, target) + out.balance_loss);
    }
    scaler.scale(loss).backward();   // backward runs each GEMM in the mode its forward used
    scaler.unscale(opt);             // true gradients from here on (a no-op when disabled)
    dsm::optim::clip_grad_norm(lm.parameters(), 1.0);
    scaler.step(opt);                // skipped if a gradient overflowed
    scaler.update();
    lm.finish_step();
    last = loss.item();
  }
  if (peak_bytes) *peak_bytes = dsm::cpu::memory_stats().peak_bytes;
  if (mode == Mode::f16) std::printf("  f16 loss scale after %d steps: %g\n", steps, scaler.get_scale());
  return last;
}

int main() {
  const int steps = 20;
  const double fp32 = train(Mode::fp32, 1, steps), bf16 = train(Mode::bf16, 1, steps), f16 = train(Mode::f16, 1, steps);
  std::printf("loss after %d steps, every block checkpointed: fp32 %.4f, bf16 autocast %.4f, f16 autocast + GradScaler %.4f\n", steps, fp32,
              bf16, f16);

  std::size_t kept = 0, recomputed = 0;
  train(Mode::fp32, 0, 2, &kept);
  train(Mode::fp32, 1, 2, &recomputed);
  std::printf("peak memory of a training step: %.2f MB keeping activations, %.2f MB checkpointing every block\n", kept / 1e6, recomputed / 1e6);

  // Low precision changes the numbers a little, not the outcome.
  const bool ok = bf16 < 1.05 * fp32 + 0.05 && f16 < 1.05 * fp32 + 0.05 && recomputed < kept;
  return ok ? 0 : 1;
}
