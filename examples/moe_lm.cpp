// The main job (`make demo`): train a byte-level MoE transformer language model on the Brown
// corpus, then generate text.
//
//   moe_lm --data build/data/brown              # defaults: about five minutes on 2 cores
//   moe_lm --help                               # every flag
//
// It prints the bits per byte of a byte-unigram and a byte-bigram model (add-one smoothing,
// counted on the training split) on the validation split beside its own, a progress bar (step,
// loss, tokens/s, ETA, expert load), periodic validation bits per byte, and at the end writes
// <out>/model.safetensors + optimizer.safetensors (resumable with --resume <out>), a loss curve
// <out>/loss.csv (and loss.png when gnuplot is installed), and a sample of generated text.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <dsm/data/brown.hpp>
#include <dsm/dsm.hpp>

#include "common/cli.hpp"

namespace {

struct Flags {
  std::string data = "build/data/brown";
  std::string out = "build/moe_lm";
  std::string resume;
  std::string precision = "fp32";
  std::int64_t checkpoint_every = 0;
  std::int64_t steps = 1600, batch = 16, seq = 128, d_model = 128, layers = 4, heads = 4, experts = 8, top_k = 2, d_ff = 256;
  std::int64_t eval_every = 200, eval_windows = 48, generate = 400, threads = 0;
  double lr = 3e-3, aux = 0.01;
  std::uint64_t seed = 1234;
  bool quiet = false;
};

void usage() {
  std::printf(
      "usage: moe_lm [flags]\n"
      "  --data DIR        Brown corpus folder (files ca01 ... cr09)      [build/data/brown]\n"
      "  --out DIR         checkpoint, loss.csv, loss.png go here           [build/moe_lm]\n"
      "  --resume DIR      continue from DIR/model.safetensors + optimizer.safetensors\n"
      "  --steps N         optimizer steps                                  [1600]\n"
      "  --batch N         sequences per step                               [16]\n"
      "  --seq N           bytes per sequence                               [128]\n"
      "  --d-model N       model width                                      [128]\n"
      "  --layers N        transformer blocks (the first is dense)          [4]\n"
      "  --heads N         attention heads                                  [4]\n"
      "  --experts N       routed experts per MoE layer (0: all dense)      [8]\n"
      "  --top-k N         experts per token                                [2]\n"
      "  --d-ff N          hidden width of each expert                      [256]\n"
      "  --lr X            peak learning rate (AdamW, cosine, warmup)       [0.003]\n"
      "  --aux X           Switch balance loss coefficient                  [0.01]\n"
      "  --eval-every N    validation every N steps                         [200]\n"
      "  --generate N      bytes of text to generate at the end             [400]\n"
      "  --threads N       OpenMP threads (0: all cores)                    [0]\n"
      "  --precision P     fp32, bf16 (autocast) or f16 (autocast + loss scaling) [fp32]\n"
      "  --checkpoint-every N  recompute every N-th block in backward (0: off)  [0]\n"
      "  --seed N          random seed                                      [1234]\n"
      "  --quiet           no progress bar\n");
}

Flags parse(int argc, char** argv) {
  Flags f;
  examples::FlagSet flags;
  flags.ints = {{"--steps", &f.steps},   {"--batch", &f.batch},     {"--seq", &f.seq},         {"--d-model", &f.d_model},
                {"--layers", &f.layers}, {"--heads", &f.heads},     {"--experts", &f.experts}, {"--top-k", &f.top_k},
                {"--d-ff", &f.d_ff},     {"--eval-every", &f.eval_every}, {"--generate", &f.generate}, {"--threads", &f.threads},
                {"--checkpoint-every", &f.checkpoint_every}};
  flags.reals = {{"--lr", &f.lr}, {"--aux", &f.aux}};
  flags.seeds = {{"--seed", &f.seed}};
  flags.strings = {{"--data", &f.data}, {"--out", &f.out}, {"--resume", &f.resume}, {"--precision", &f.precision}};
  flags.switches = {{"--quiet", &f.quiet}};
  examples::parse_flags(argc, argv, flags, usage);
  if (f.steps == 0 || f.batch == 0 || f.seq < 2 || f.eval_every == 0) throw std::runtime_error("--steps, --batch, --eval-every must be positive and --seq at least 2");
  if (f.precision != "fp32" && f.precision != "bf16" && f.precision != "f16")
    throw std::runtime_error("--precision must be fp32, bf16 or f16, got '" + f.precision + "'");
  return f;
}

/// Bits per byte of add-one-smoothed unigram and bigram byte models on `eval`.
std::pair<double, double> ngram_baselines(const std::string& train, const std::string& eval) {
  std::vector<double> uni(256, 1.0), bi(256 * 256, 1.0), ctx(256, 256.0);
  for (std::size_t i = 0; i < train.size(); ++i) {
    const auto c = static_cast<unsigned char>(train[i]);
    uni[c] += 1;
    if (i > 0) {
      const auto p = static_cast<unsigned char>(train[i - 1]);
      bi[p * 256 + c] += 1;
      ctx[p] += 1;
    }
  }
  const double uni_total = static_cast<double>(train.size()) + 256;
  double bits_uni = 0, bits_bi = 0;
  for (std::size_t i = 1; i < eval.size(); ++i) {
    const auto c = static_cast<unsigned char>(eval[i]), p = static_cast<unsigned char>(eval[i - 1]);
    bits_uni -= std::log2(uni[c] / uni_total);
    bits_bi -= std::log2(bi[p * 256 + c] / ctx[p]);
  }
  const double n = static_cast<double>(eval.size() - 1);
  return {bits_uni / n, bits_bi / n};
}

/// `batch` windows of seq + 1 bytes from text at random offsets: (inputs, next-byte targets).
std::pair<dsm::Tensor<std::int64_t>, dsm::Tensor<std::int64_t>> sample_batch(const std::string& text, std::int64_t batch, std::int64_t seq, dsm::Generator& gen) {
  const auto starts = dsm::Tensor<std::int64_t>::randint(0, static_cast<std::int64_t>(text.size()) - seq - 1, {batch}, gen);
  dsm::Tensor<std::int64_t> x({batch, seq}), y({batch, seq});
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t t = 0; t < seq; ++t) {
      const auto at = static_cast<std::size_t>(starts.data()[b] + t);
      x.data()[b * seq + t] = static_cast<unsigned char>(text[at]);
      y.data()[b * seq + t] = static_cast<unsigned char>(text[at + 1]);
    }
  return {x, y};
}

/// Mean bits per byte of the model on fixed, evenly spaced windows of the validation text.
double validation_bpb(dsm::models::TransformerLM<dsm::dynamic>& lm, const std::string& text, std::int64_t windows, std::int64_t seq) {
  const bool was_training = lm.is_training();
  lm.eval();
  dsm::no_grad guard;
  double nats = 0;
  const std::int64_t stride = (static_cast<std::int64_t>(text.size()) - seq - 1) / windows;
  for (std::int64_t w0 = 0; w0 < windows; w0 += 8) {
    const std::int64_t n = std::min<std::int64_t>(8, windows - w0);
    dsm::Tensor<std::int64_t> x({n, seq}), y({n, seq});
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t t = 0; t < seq; ++t) {
        const auto at = static_cast<std::size_t>((w0 + b) * stride + t);
        x.data()[b * seq + t] = static_cast<unsigned char>(text[at]);
        y.data()[b * seq + t] = static_cast<unsigned char>(text[at + 1]);
      }
    nats += dsm::models::lm_loss(lm(x).logits, y).item() * static_cast<double>(n);
  }
  if (was_training) lm.train();
  return nats / static_cast<double>(windows) / std::log(2.0);
}

using examples::format_seconds;

int run(const Flags& f) {
  if (f.threads > 0) dsm::set_num_threads(static_cast<int>(f.threads));
  std::printf("dsm moe_lm: byte-level MoE transformer on the Brown corpus (%s)\n", f.data.c_str());
  const auto split = dsm::data::split_brown(dsm::data::load_brown(f.data));
  const std::string train = dsm::data::plain_text(split.train), valid = dsm::data::plain_text(split.validation);
  std::printf("data: %zu / %zu / %zu files (train / validation / test), %.2f MB train, %.2f MB validation\n", split.train.size(), split.validation.size(),
              split.test.size(), static_cast<double>(train.size()) / 1e6, static_cast<double>(valid.size()) / 1e6);
  if (static_cast<std::int64_t>(valid.size()) < f.seq + 2 || static_cast<std::int64_t>(train.size()) < f.seq + 2)
    throw std::runtime_error("the corpus is too small for --seq " + std::to_string(f.seq));
  const auto [uni, bigram] = ngram_baselines(train, valid);
  std::printf("baselines on validation: byte unigram %.3f bits/byte, byte bigram %.3f bits/byte\n", uni, bigram);

  dsm::Generator gen(f.seed);
  dsm::models::TransformerConfig c;
  c.vocab_size = 256;
  c.d_model = f.d_model;
  c.n_layers = f.layers;
  c.n_heads = f.heads;
  c.d_ff = f.d_ff;
  c.n_experts = f.experts;
  c.top_k = f.top_k;
  c.first_dense_layers = 1;
  dsm::models::TransformerOptions o;
  o.generator = &gen;
  o.moe.aux_loss_coef = f.aux;
  o.checkpoint_every = f.checkpoint_every;
  dsm::models::TransformerLM<dsm::dynamic> lm(c, o);
  std::printf("model: d_model %lld, %lld layers (first dense), %lld heads, %lld experts top-%lld of hidden %lld: %.2f M parameters\n",
              static_cast<long long>(c.d_model), static_cast<long long>(c.n_layers), static_cast<long long>(c.n_heads), static_cast<long long>(c.n_experts),
              static_cast<long long>(c.top_k), static_cast<long long>(c.d_ff), static_cast<double>(lm.parameter_count()) / 1e6);

  dsm::optim::AdamW<float> opt(lm.named_parameters(), {.lr = f.lr, .weight_decay = 0.01});
  // Mixed precision: GEMMs on bf16/f16 operands inside autocast; f16 also scales the loss.
  const bool low = f.precision != "fp32";
  const auto precision = f.precision == "f16" ? dsm::amp::Precision::f16 : dsm::amp::Precision::bf16;
  dsm::amp::GradScaler scaler({.enabled = f.precision == "f16"});
  if (low) std::printf("precision: %s autocast%s\n", f.precision.c_str(), scaler.is_enabled() ? " with dynamic loss scaling" : "");
  if (f.checkpoint_every > 0) std::printf("activation checkpointing: 1 block in %lld recomputed in backward\n", static_cast<long long>(f.checkpoint_every));
  std::int64_t start_step = 0;
  if (!f.resume.empty()) {
    lm.load_state_dict(dsm::io::load_checkpoint(f.resume + "/model.safetensors"));
    opt.load_state_dict(dsm::io::load_checkpoint(f.resume + "/optimizer.safetensors"));
    if (scaler.is_enabled() && std::filesystem::exists(f.resume + "/scaler.safetensors"))
      scaler.load_state_dict(dsm::io::load_checkpoint(f.resume + "/scaler.safetensors"));
    start_step = opt.steps();
    std::printf("resumed from %s at step %lld\n", f.resume.c_str(), static_cast<long long>(start_step));
  }
  const std::int64_t total = start_step + f.steps;
  const dsm::optim::CosineWarmup schedule{f.lr, f.lr * 0.1, std::min<std::int64_t>(50, total / 10), total};
  std::filesystem::create_directories(f.out);
  std::ofstream csv(f.out + "/loss.csv");
  csv << "step,train_loss,validation_bits_per_byte,tokens_per_second\n";

  const auto t0 = std::chrono::steady_clock::now();
  double smooth = 0, last_bpb = std::nan("");
  for (std::int64_t step = start_step; step < total; ++step) {
    auto [x, y] = sample_batch(train, f.batch, f.seq, gen);
    opt.set_lr(schedule(step));
    opt.zero_grad();
    dsm::models::LMOutput<float> out;
    dsm::Var<float> ce, loss;
    {
      dsm::amp::autocast ac(precision, low);
      out = lm(x);
      ce = dsm::models::lm_loss(out.logits, y);
      loss = ce + out.balance_loss;
    }
    scaler.scale(loss).backward();
    scaler.unscale(opt);  // clip the true gradients (a no-op without f16)
    dsm::optim::clip_grad_norm(lm.parameters(), 1.0);
    scaler.step(opt);     // skipped when an f16 gradient overflowed
    scaler.update();
    lm.finish_step();
    const double l = ce.item();
    smooth = step == start_step ? l : 0.95 * smooth + 0.05 * l;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double done = static_cast<double>(step - start_step + 1);
    const double tps = done * static_cast<double>(f.batch * f.seq) / elapsed;
    const bool eval_now = (step + 1) % f.eval_every == 0 || step + 1 == total;
    if (eval_now) last_bpb = validation_bpb(lm, valid, f.eval_windows, f.seq);
    double vio = 0;
    for (const auto& s : out.moe_stats) vio += s.max_vio / static_cast<double>(out.moe_stats.size());
    csv << step + 1 << ',' << l << ',' << (eval_now ? std::to_string(last_bpb) : "") << ',' << tps << '\n';
    if (!f.quiet) {
      const int width = 24, filled = static_cast<int>(width * done / static_cast<double>(f.steps));
      std::printf("\r[%s%s] %lld/%lld loss %.3f (%.2f bpb) %6.0f tok/s ETA %s MaxVio %.2f", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - filled), '.').c_str(), static_cast<long long>(step + 1), static_cast<long long>(total), smooth,
                  smooth / std::log(2.0), tps, format_seconds(elapsed / done * (static_cast<double>(f.steps) - done)).c_str(), vio);
      if (eval_now) std::printf("  | validation %.3f bits/byte\n", last_bpb);
      std::fflush(stdout);
    } else if (eval_now) {
      std::printf("step %lld: train loss %.3f, validation %.3f bits/byte, %.0f tokens/s\n", static_cast<long long>(step + 1), smooth, last_bpb, tps);
    }
  }
  csv.close();
  std::printf("validation: model %.3f bits/byte, byte bigram %.3f, byte unigram %.3f\n", last_bpb, bigram, uni);

  dsm::io::save_safetensors(f.out + "/model.safetensors", lm.state_dict(), {{"format", "pt"}});
  dsm::io::save_safetensors(f.out + "/optimizer.safetensors", opt.state_dict());
  if (scaler.is_enabled()) dsm::io::save_safetensors(f.out + "/scaler.safetensors", scaler.state_dict());
  std::printf("checkpoint: %s/model.safetensors (+ optimizer.safetensors); loss curve: %s/loss.csv\n", f.out.c_str(), f.out.c_str());
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    const std::string cmd = "gnuplot -e \"set terminal png size 800,500; set output '" + f.out +
                            "/loss.png'; set datafile separator ','; set xlabel 'step'; set ylabel 'nats / bits per byte'; plot '" + f.out +
                            "/loss.csv' every ::1 using 1:2 with lines title 'train loss (nats)', '' every ::1 using 1:3 with points title 'validation bits/byte'\"";
    if (std::system(cmd.c_str()) == 0) std::printf("loss plot: %s/loss.png\n", f.out.c_str());
  }

  if (f.generate > 0) {
    const std::string prompt = "The jury said";
    std::vector<std::int64_t> ids;
    for (char ch : prompt) ids.push_back(static_cast<unsigned char>(ch));
    const auto out = lm.generate(dsm::Tensor<std::int64_t>::from_range(ids, {static_cast<std::int64_t>(ids.size())}), f.generate,
                                 {.temperature = 0.8, .top_k = 40, .top_p = 0.95}, gen, f.seq);  // the trained context
    std::string text = prompt;
    for (auto id : out) text += (id == '\n' || (id >= 32 && id < 127)) ? static_cast<char>(id) : '?';  // bytes shown as ASCII
    std::printf("\ngenerated (temperature 0.8, top-k 40, top-p 0.95):\n%s\n", text.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe_lm: %s\n", e.what());
    return 2;
  }
}
