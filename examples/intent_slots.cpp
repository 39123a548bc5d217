// intent_slots: joint intent detection and slot filling for a bank's customer-service assistant.
//
//   ./build/release/examples/intent_slots            # about a minute on 2 cores
//
// The data set is generated here, seeded, from templates: seven intents (check_balance,
// transfer_money, report_lost_card, loan_inquiry, pay_bill, exchange_rate, card_limit) and eight
// slot types (account, amount, recipient, date, card, loan, currency, biller) written in BIO.
// Each intent has training templates and held-out templates; the test set is drawn from the
// held-out templates only, and with recipient names and billers never used in training, so a
// model that memorized phrasings does not pass it. The model is dsm::models::JointIntentSlot
// (word + character BiLSTM encoder, intent head, CRF with BIO constraints). Reported: intent
// accuracy and slot F1 over exact spans (the conlleval definition: a span counts when its type
// and both boundaries match).
#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <dsm/dsm.hpp>

#include "common/cli.hpp"

namespace {

// ---- The generator ---------------------------------------------------------------------------

struct Utterance {
  std::vector<std::string> words;
  std::vector<std::string> tags;  // BIO
  std::string intent;
};

struct Template {
  std::string intent;
  std::string text;  // words and {slot} placeholders
  bool held_out;     // test only
};

const std::vector<Template>& templates() {
  static const std::vector<Template> t{
      {"check_balance", "what is the balance of my {account}", false},
      {"check_balance", "how much money do i have in {account}", false},
      {"check_balance", "show me my {account} balance", false},
      {"check_balance", "can you tell me the balance on my {account} as of {date}", false},
      {"check_balance", "balance of {account} please", false},
      {"check_balance", "i need to know how much is left in my {account}", true},
      {"check_balance", "what was my {account} balance on {date}", true},
      {"transfer_money", "send {amount} to {recipient}", false},
      {"transfer_money", "transfer {amount} from my {account} to {recipient}", false},
      {"transfer_money", "please move {amount} to {recipient} {date}", false},
      {"transfer_money", "i want to pay {recipient} {amount} from {account}", false},
      {"transfer_money", "wire {amount} to {recipient} on {date}", false},
      {"transfer_money", "can you transfer {amount} to {recipient} from {account} {date}", true},
      {"transfer_money", "i would like to send {recipient} {amount}", true},
      {"report_lost_card", "i lost my {card}", false},
      {"report_lost_card", "my {card} was stolen", false},
      {"report_lost_card", "please block my {card} it is missing", false},
      {"report_lost_card", "someone took my {card} {date}", false},
      {"report_lost_card", "i can not find my {card} anywhere", true},
      {"report_lost_card", "freeze my {card} because i lost it {date}", true},
      {"loan_inquiry", "what is the interest rate on a {loan}", false},
      {"loan_inquiry", "i want to apply for a {loan}", false},
      {"loan_inquiry", "can i get a {loan} of {amount}", false},
      {"loan_inquiry", "how long does approval for a {loan} take", false},
      {"loan_inquiry", "am i eligible for a {loan}", true},
      {"loan_inquiry", "tell me about your {loan} options for {amount}", true},
      {"pay_bill", "pay my {biller} bill", false},
      {"pay_bill", "pay {amount} to {biller} from {account}", false},
      {"pay_bill", "set up a payment to {biller} on {date}", false},
      {"pay_bill", "i need to pay the {biller} bill of {amount}", false},
      {"pay_bill", "schedule my {biller} payment for {date}", true},
      {"pay_bill", "use my {account} to pay {biller} {amount}", true},
      {"exchange_rate", "what is the exchange rate for {currency}", false},
      {"exchange_rate", "how many {currency} do i get for {amount}", false},
      {"exchange_rate", "convert {amount} to {currency}", false},
      {"exchange_rate", "what will the {currency} rate be {date}", false},
      {"exchange_rate", "how much is {amount} in {currency}", true},
      {"exchange_rate", "give me the current rate of {currency}", true},
      {"card_limit", "what is the limit on my {card}", false},
      {"card_limit", "raise my {card} limit to {amount}", false},
      {"card_limit", "can you increase the spending limit of my {card}", false},
      {"card_limit", "i want a higher limit on {card} by {date}", false},
      {"card_limit", "lower the limit of my {card} to {amount}", true},
      {"card_limit", "how high can my {card} limit go", true},
  };
  return t;
}

struct SlotValues {
  std::vector<std::string> train, test;  // test-only values where generalization is the point
};

const std::map<std::string, SlotValues>& slot_values() {
  static const std::map<std::string, SlotValues> v{
      {"account", {{"checking account", "savings account", "checking", "savings", "joint account", "business account", "retirement account"}, {}}},
      {"card", {{"credit card", "debit card", "visa card", "mastercard", "atm card", "gold card", "platinum card"}, {}}},
      {"loan", {{"mortgage", "car loan", "student loan", "personal loan", "home equity loan", "business loan"}, {}}},
      {"currency", {{"euros", "yen", "pounds", "swiss francs", "canadian dollars", "pesos", "rupees"}, {}}},
      {"date", {{"today", "tomorrow", "on friday", "next monday", "march 3", "the end of the month", "yesterday", "last week", "june 21"}, {}}},
      {"recipient", {{"john", "maria garcia", "my landlord", "alex", "david smith", "my sister", "emma", "mr brown", "li wei", "sophie"},
                     {"olivia martinez", "my brother", "noah", "ahmed khan", "the plumber", "grace"}}},
      {"biller", {{"electricity", "water", "phone", "internet", "gas", "cable"}, {"insurance", "mobile", "trash collection"}}},
  };
  return v;
}

std::string random_amount(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> n(5, 5000), form(0, 2);
  const std::string number = std::to_string(n(rng));
  switch (form(rng)) {
    case 0: return "$" + number;
    case 1: return number + " dollars";
    default: return number + " bucks";
  }
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

Utterance realize(const Template& t, bool test, std::mt19937_64& rng) {
  Utterance u{{}, {}, t.intent};
  for (const std::string& token : split_words(t.text)) {
    if (token.front() != '{') {
      u.words.push_back(token);
      u.tags.push_back("O");
      continue;
    }
    const std::string slot = token.substr(1, token.size() - 2);
    std::string value;
    if (slot == "amount") {
      value = random_amount(rng);
    } else {
      const SlotValues& sv = slot_values().at(slot);
      const auto& pool = test && !sv.test.empty() ? sv.test : sv.train;
      value = pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
    }
    const auto words = split_words(value);
    for (std::size_t i = 0; i < words.size(); ++i) {
      u.words.push_back(words[i]);
      u.tags.push_back((i == 0 ? "B-" : "I-") + slot);
    }
  }
  return u;
}

/// n utterances from the training templates (test = false) or the held-out ones (test = true).
std::vector<Utterance> generate(std::size_t n, bool test, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<const Template*> pool;
  for (const auto& t : templates())
    if (t.held_out == test) pool.push_back(&t);
  std::vector<Utterance> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(realize(*pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)], test, rng));
  return out;
}

// ---- Metrics ---------------------------------------------------------------------------------

/// Spans (type, begin, end) of a BIO sequence as conlleval reads it: a span starts at B-x, or at
/// I-x after O or another type, and ends before the next tag that does not continue it.
std::set<std::tuple<std::string, std::size_t, std::size_t>> spans(const std::vector<std::string>& tags) {
  std::set<std::tuple<std::string, std::size_t, std::size_t>> out;
  std::string type;
  std::size_t begin = 0;
  for (std::size_t i = 0; i <= tags.size(); ++i) {
    const std::string tag = i < tags.size() ? tags[i] : "O";
    const std::string t = tag == "O" ? "" : tag.substr(2);
    const bool continues = !type.empty() && tag[0] == 'I' && t == type;
    if (!type.empty() && !continues) {
      out.emplace(type, begin, i);
      type.clear();
    }
    if (tag != "O" && !continues) {
      type = t;
      begin = i;
    }
  }
  return out;
}

// ---- Training --------------------------------------------------------------------------------

constexpr std::int64_t kUnk = examples::Vocab::unk, kMaxChars = 16;

using examples::Vocab;

std::string normalize(std::string w) {
  for (char& ch : w)
    if (std::isdigit(static_cast<unsigned char>(ch))) ch = '0';
  return w;
}

struct Encoded {
  dsm::models::TaggerInput input;
  dsm::Tensor<std::int64_t> tags, intents;
};

/// word_dropout: in training, each word id becomes <unk> with this probability (the characters
/// stay), so the model cannot lean on exact template wording alone.
Encoded encode(const std::vector<Utterance>& data, std::size_t begin, std::size_t end, const Vocab& words, const Vocab& chars, const Vocab& tags,
               const Vocab& intents, double word_dropout = 0.0, std::mt19937_64* rng = nullptr) {
  std::bernoulli_distribution drop(word_dropout);
  const auto nb = static_cast<std::int64_t>(end - begin);
  std::int64_t steps = 0;
  for (std::size_t i = begin; i < end; ++i) steps = std::max<std::int64_t>(steps, static_cast<std::int64_t>(data[i].words.size()));
  Encoded e{{dsm::Tensor<std::int64_t>::zeros({nb, steps}), {}, dsm::Tensor<std::int64_t>::zeros({nb, steps, kMaxChars}),
             std::vector<std::int64_t>(static_cast<std::size_t>(nb * steps), 0)},
            dsm::Tensor<std::int64_t>::zeros({nb, steps}),
            dsm::Tensor<std::int64_t>::zeros({nb})};
  for (std::int64_t b = 0; b < nb; ++b) {
    const Utterance& u = data[begin + static_cast<std::size_t>(b)];
    e.input.lengths.push_back(static_cast<std::int64_t>(u.words.size()));
    e.intents.data()[b] = intents.get(u.intent) - 2;
    for (std::size_t t = 0; t < u.words.size(); ++t) {
      const std::int64_t at = b * steps + static_cast<std::int64_t>(t);
      e.input.words.data()[at] = rng && drop(*rng) ? kUnk : words.get(normalize(u.words[t]));
      e.tags.data()[at] = tags.get(u.tags[t]) - 2;
      const auto n = std::min<std::int64_t>(kMaxChars, static_cast<std::int64_t>(u.words[t].size()));
      for (std::int64_t c = 0; c < n; ++c) e.input.chars.data()[at * kMaxChars + c] = chars.get(std::string(1, u.words[t][static_cast<std::size_t>(c)]));
      e.input.char_lengths[static_cast<std::size_t>(at)] = n;
    }
  }
  return e;
}

struct Scores {
  double intent_accuracy, slot_f1, precision, recall;
};

template <class Model>
Scores evaluate(Model& model, const std::vector<Utterance>& data, const Vocab& words, const Vocab& chars, const Vocab& tags, const Vocab& intents) {
  std::size_t right = 0, found = 0, gold_spans = 0, correct = 0;
  for (std::size_t begin = 0; begin < data.size(); begin += 128) {
    const std::size_t end = std::min(data.size(), begin + 128);
    const Encoded e = encode(data, begin, end, words, chars, tags, intents);
    const auto p = model.predict(e.input);
    const std::int64_t steps = p.tags.size(1);
    for (std::size_t i = begin; i < end; ++i) {
      const auto b = static_cast<std::int64_t>(i - begin);
      right += p.intents.data()[b] == e.intents.data()[b];
      std::vector<std::string> pred;
      for (std::size_t t = 0; t < data[i].words.size(); ++t) pred.push_back(tags.names[static_cast<std::size_t>(p.tags.data()[b * steps + static_cast<std::int64_t>(t)] + 2)]);
      const auto ps = spans(pred), gs = spans(data[i].tags);
      found += ps.size();
      gold_spans += gs.size();
      for (const auto& s : ps) correct += gs.count(s);
    }
  }
  const double precision = found ? static_cast<double>(correct) / static_cast<double>(found) : 0.0;
  const double recall = gold_spans ? static_cast<double>(correct) / static_cast<double>(gold_spans) : 0.0;
  return {static_cast<double>(right) / static_cast<double>(data.size()), precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0,
          precision, recall};
}

int run(int argc, char** argv) {
  std::int64_t epochs = 8, train_size = 4000;
  std::uint64_t seed = 7;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: intent_slots [--epochs N (8)] [--train N utterances (4000)] [--seed N (7)]\n");
      return 0;
    }
    if (i + 1 >= argc) throw std::runtime_error("flag " + a + " needs a value (see --help)");
    const std::string v = argv[++i];
    std::size_t used = 0;
    try {
      if (a == "--epochs") epochs = std::stoll(v, &used);
      else if (a == "--train") train_size = std::stoll(v, &used);
      else if (a == "--seed") seed = std::stoull(v, &used);
      else throw std::runtime_error("unknown flag " + a + " (see --help)");
    } catch (const std::logic_error&) {
      used = 0;
    }
    if (used != v.size() || epochs <= 0 || train_size <= 0) throw std::runtime_error("flag " + a + ": '" + v + "' is not a valid value");
  }
  const auto train = generate(static_cast<std::size_t>(train_size), false, seed);
  const auto dev = generate(500, false, seed + 1);
  const auto test = generate(1000, true, seed + 2);
  std::printf("dsm intent_slots: %zu training utterances (%zu templates), %zu validation, %zu test from %zu held-out templates\n", train.size(),
              static_cast<std::size_t>(std::count_if(templates().begin(), templates().end(), [](const Template& t) { return !t.held_out; })), dev.size(),
              test.size(), static_cast<std::size_t>(std::count_if(templates().begin(), templates().end(), [](const Template& t) { return t.held_out; })));
  std::printf("example: \"");
  for (std::size_t i = 0; i < train[0].words.size(); ++i) std::printf("%s%s/%s", i ? " " : "", train[0].words[i].c_str(), train[0].tags[i].c_str());
  std::printf("\" -> %s\n", train[0].intent.c_str());

  Vocab words, chars, tags, intents;
  std::unordered_map<std::string, int> counts;
  for (const auto& u : train)
    for (const auto& w : u.words) ++counts[normalize(w)];
  for (const auto& u : train) {
    for (const auto& w : u.words) {
      if (counts[normalize(w)] >= 2) words.add(normalize(w));
      for (char ch : w) chars.add(std::string(1, ch));
    }
    intents.add(u.intent);
  }
  std::vector<std::string> tag_names{"O"};
  for (const auto& [slot, values] : slot_values()) tag_names.insert(tag_names.end(), {"B-" + slot, "I-" + slot});
  tag_names.insert(tag_names.end(), {"B-amount", "I-amount"});
  for (const auto& t : tag_names) tags.add(t);

  dsm::Generator gen(seed);
  dsm::models::TaggerConfig c;
  c.vocab_size = static_cast<std::int64_t>(words.names.size());
  c.embedding_dim = 50;
  c.hidden_size = 64;
  c.num_tags = static_cast<std::int64_t>(tag_names.size());
  c.num_intents = static_cast<std::int64_t>(intents.names.size()) - 2;
  c.char_vocab_size = static_cast<std::int64_t>(chars.names.size());
  dsm::models::JointIntentSlot<dsm::dynamic> model(c, {.dropout = 0.3, .dropout_seed = seed, .generator = &gen});
  model.crf.set_constraints(dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, tag_names));
  std::printf("model: %lld intents, %lld BIO tags, %.2f M parameters\n", static_cast<long long>(c.num_intents), static_cast<long long>(c.num_tags),
              static_cast<double>(model.parameter_count()) / 1e6);
  dsm::optim::Adam<float> opt(model.named_parameters(), {.lr = 3e-3});
  std::mt19937_64 rng(seed);
  std::vector<Utterance> shuffled = train;
  for (std::int64_t epoch = 1; epoch <= epochs; ++epoch) {
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    double total = 0;
    std::size_t batches = 0;
    for (std::size_t begin = 0; begin < shuffled.size(); begin += 32, ++batches) {
      const Encoded e = encode(shuffled, begin, std::min(shuffled.size(), begin + 32), words, chars, tags, intents, 0.25, &rng);
      opt.zero_grad();
      const dsm::Var<float> loss = model.loss(e.input, e.tags, e.intents);
      loss.backward();
      dsm::optim::clip_grad_norm(model.parameters(), 5.0);
      opt.step();
      total += loss.item();
    }
    const Scores s = evaluate(model, dev, words, chars, tags, intents);
    std::printf("epoch %lld: loss %.3f, validation intent accuracy %.2f%%, slot F1 %.2f%%\n", static_cast<long long>(epoch),
                total / static_cast<double>(batches), 100 * s.intent_accuracy, 100 * s.slot_f1);
  }
  const Scores s = evaluate(model, test, words, chars, tags, intents);
  std::printf("test (held-out templates and values): intent accuracy %.2f%%, slot F1 %.2f%% (precision %.2f%%, recall %.2f%%)\n", 100 * s.intent_accuracy,
              100 * s.slot_f1, 100 * s.precision, 100 * s.recall);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "intent_slots: %s\n", e.what());
    return 2;
  }
}
