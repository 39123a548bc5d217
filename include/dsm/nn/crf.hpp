// dsm/nn/crf.hpp: the linear-chain CRF layer and transition constraints for BIO/BIOES tags.
//
//   dsm::nn::CRF<{.num_tags = 9}> crf;
//   crf.set_constraints(dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, tag_names));
//   Var<float> loss = crf.nll(emissions, gold, lengths);   // emissions [B, T, 9], gold [B, T]
//   auto best = crf.decode(emissions.value(), lengths);    // best.tags [B, T], best.scores [B]
//   auto top3 = crf.nbest(emissions.value(), lengths, 3);  // [B, 3, T] and [B, 3]
//
// Parameters (pytorch-crf's names): start_transitions [K], end_transitions [K], transitions
// [K, K] (from row tag to column tag), initialized U(-0.1, 0.1). The constraints are part of the
// model's definition, not its state: set them again after loading a checkpoint.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "functional/crf.hpp"
#include "init.hpp"
#include "module.hpp"

namespace dsm::nn {

using functional::CRFConstraints;
using functional::CRFReduction;

enum class TagScheme { bio, bioes };

/// The possible starts, ends and transitions of a tagging scheme, from tag names such as "O",
/// "B-PER", "I-PER" (BIO) or also "E-PER", "S-PER" (BIOES). Inside a span only its own label may
/// continue (B-x/I-x -> I-x, and E-x under BIOES); BIOES spans must close with E-x or be S-x.
inline CRFConstraints tag_scheme_constraints(TagScheme scheme, const std::vector<std::string>& tags) {
  struct Tag {
    char prefix;
    std::string_view label;
  };
  std::vector<Tag> parsed;
  const std::string_view prefixes = scheme == TagScheme::bio ? "BI" : "BIES";
  for (const auto& t : tags) {
    if (t == "O") {
      parsed.push_back({'O', {}});
      continue;
    }
    if (t.size() < 3 || t[1] != '-' || prefixes.find(t[0]) == std::string_view::npos)
      fail<config_error>("tag_scheme_constraints", "tag '", t, "' is not O or ", scheme == TagScheme::bio ? "B-/I-" : "B-/I-/E-/S-", "<label>");
    parsed.push_back({t[0], std::string_view(t).substr(2)});
  }
  const std::size_t k = tags.size();
  CRFConstraints c{std::vector<bool>(k), std::vector<bool>(k), std::vector<bool>(k * k)};
  const bool bioes = scheme == TagScheme::bioes;
  for (std::size_t i = 0; i < k; ++i) {
    const char p = parsed[i].prefix;
    c.start[i] = p == 'O' || p == 'B' || p == 'S';
    c.end[i] = bioes ? (p == 'O' || p == 'E' || p == 'S') : true;
    const bool open = p == 'B' || p == 'I';  // inside a span that must continue (BIOES) or may (BIO)
    for (std::size_t j = 0; j < k; ++j) {
      const char q = parsed[j].prefix;
      const bool same = parsed[i].label == parsed[j].label;
      bool ok;
      if (bioes) ok = open ? ((q == 'I' || q == 'E') && same) : (q == 'O' || q == 'B' || q == 'S');
      else ok = q == 'I' ? (open && same) : true;
      c.transitions[i * k + j] = ok;
    }
  }
  return c;
}

struct CRFConfig {
  std::int64_t num_tags = 0;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

struct CRFOptions {
  Generator* generator = nullptr;  ///< initialization; the default generator when null
};

template <CRFConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class CRF : public Module, public ConfigHolder<CRFConfig, C> {
  using Holder = ConfigHolder<CRFConfig, C>;
  static_assert(Holder::is_dynamic || C.num_tags > 0, "CRF: num_tags must be positive");

 public:
  using Options = CRFOptions;
  Var<T, B> start_transitions;  // [K]
  Var<T, B> end_transitions;    // [K]
  Var<T, B> transitions;        // [K, K]

  explicit CRF(Options o = {}) requires(!Holder::is_dynamic) { init(o); }
  explicit CRF(const CRFConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(c) { init(o); }
  using Holder::config;
  std::int64_t num_tags() const { return config().num_tags; }

  /// Restricts starts, ends and transitions (in the NLL and in decoding); empty vectors allow all.
  void set_constraints(CRFConstraints c) {
    const auto k = static_cast<std::size_t>(num_tags());
    if ((!c.start.empty() && c.start.size() != k) || (!c.end.empty() && c.end.size() != k) || (!c.transitions.empty() && c.transitions.size() != k * k))
      fail<shape_error>("CRF::set_constraints", "constraints for ", c.start.size(), " starts, ", c.end.size(), " ends and ", c.transitions.size(),
                        " transitions; ", k, " tags need ", k, ", ", k, " and ", k * k);
    constraints_ = std::move(c);
  }
  const CRFConstraints& constraints() const { return constraints_; }

  /// Negative log-likelihood of gold [B, T] under emissions [B, T, K] (reduction: mean over
  /// sequences by default).
  template <class I>
  Var<T, B> nll(const Var<T, B>& emissions, const Tensor<I, B>& gold, std::span<const std::int64_t> lengths = {},
                CRFReduction reduction = CRFReduction::mean) const {
    return functional::crf_nll(emissions, gold, lengths, scores(), reduction, &constraints_);
  }
  /// The best path of each sequence: tags [B, T] (-1 at padding) and scores [B].
  functional::CRFPaths<T> decode(const Tensor<T, B>& emissions, std::span<const std::int64_t> lengths = {}) const {
    return functional::viterbi_decode(emissions, lengths, scores(), &constraints_);
  }
  /// The n best paths: tags [B, n, T] and scores [B, n], best first.
  functional::CRFPaths<T> nbest(const Tensor<T, B>& emissions, std::span<const std::int64_t> lengths, std::int64_t n) const {
    return functional::viterbi_nbest(emissions, lengths, scores(), n, &constraints_);
  }
  functional::CRFScores<T, B> scores() const { return {start_transitions, end_transitions, transitions}; }

  void visit(Members& m) override {
    m.parameter("start_transitions", start_transitions);
    m.parameter("end_transitions", end_transitions);
    m.parameter("transitions", transitions);
  }

 private:
  void init(Options o) {
    if constexpr (Holder::is_dynamic)
      if (config().num_tags <= 0) fail<config_error>("CRF", "num_tags must be positive, got ", config().num_tags);
    Generator& gen = o.generator ? *o.generator : default_generator();
    const std::int64_t k = config().num_tags;
    auto make = [&](Shape s) {
      Var<T, B> v(Tensor<T, B>(s), true);
      init::uniform_(v.value(), -0.1, 0.1, gen);
      return v;
    };
    start_transitions = make({k});
    end_transitions = make({k});
    transitions = make({k, k});
  }

  CRFConstraints constraints_;
};

}  // namespace dsm::nn
