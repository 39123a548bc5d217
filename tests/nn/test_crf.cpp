// Tests of the linear-chain CRF: NLL against brute-force enumeration of every tag sequence,
// Viterbi and n-best against the brute-force ranking, with lengths and BIO constraints, every
// reduction, gradcheck, large scores, the tag-scheme constraints and the error paths.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using dsm::Tensor;
using dsm::Var;
namespace F = dsm::nn::functional;

namespace {

struct Scored {
  double score;
  std::vector<std::int64_t> path;
};

/// Every path of sequence b with its score, best first; impossible paths left out.
std::vector<Scored> enumerate_paths(const Tensor<double>& e, std::int64_t b, std::int64_t len, const F::CRFScores<double>& s,
                                    const F::CRFConstraints* c = nullptr) {
  const std::int64_t k = e.size(2);
  std::vector<Scored> all;
  std::int64_t total = 1;
  for (std::int64_t t = 0; t < len; ++t) total *= k;
  for (std::int64_t code = 0; code < total; ++code) {
    std::vector<std::int64_t> path(static_cast<std::size_t>(len));
    std::int64_t rest = code;
    for (std::int64_t t = len - 1; t >= 0; --t, rest /= k) path[static_cast<std::size_t>(t)] = rest % k;
    bool ok = true;
    double score = 0;
    for (std::int64_t t = 0; t < len; ++t) {
      const auto y = path[static_cast<std::size_t>(t)];
      score += e.data()[(b * e.size(1) + t) * k + y];
      if (t == 0) {
        score += s.start.value().data()[y];
        ok = ok && (!c || c->start[static_cast<std::size_t>(y)]);
      } else {
        const auto p = path[static_cast<std::size_t>(t - 1)];
        score += s.transitions.value().data()[p * k + y];
        ok = ok && (!c || c->transitions[static_cast<std::size_t>(p * k + y)]);
      }
      if (t == len - 1) {
        score += s.end.value().data()[y];
        ok = ok && (!c || c->end[static_cast<std::size_t>(y)]);
      }
    }
    if (ok) all.push_back({score, path});
  }
  std::sort(all.begin(), all.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
  return all;
}

double brute_log_z(const std::vector<Scored>& paths) {
  double m = -std::numeric_limits<double>::infinity(), s = 0;
  for (const auto& p : paths) m = std::max(m, p.score);
  for (const auto& p : paths) s += std::exp(p.score - m);
  return m + std::log(s);
}

F::CRFScores<double> random_scores(std::int64_t k, std::uint64_t seed) {
  dsm::Generator gen(seed);
  return {Var<double>(Tensor<double>::randn({k}, gen), true), Var<double>(Tensor<double>::randn({k}, gen), true),
          Var<double>(Tensor<double>::randn({k, k}, gen), true)};
}

const std::vector<std::string> kBioTags{"O", "B-X", "I-X", "B-Y", "I-Y"};

}  // namespace

TEST_CASE("crf_nll equals brute-force enumeration, every reduction, lengths including empty") {
  const std::int64_t nb = 4, steps = 4, k = 3;
  dsm::Generator gen(1);
  const Var<double> e(Tensor<double>::randn({nb, steps, k}, gen) * 2.0, true);
  const auto s = random_scores(k, 2);
  const std::vector<std::int64_t> lengths{4, 2, 1, 0};
  Tensor<std::int64_t> gold({nb, steps});
  for (std::int64_t i = 0; i < gold.numel(); ++i) gold.data()[i] = (i * 7 + 1) % k;
  const auto none = F::crf_nll(e, gold, lengths, s, F::CRFReduction::none);
  REQUIRE(none.shape() == dsm::Shape{nb});
  double total = 0;
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    double expected = 0;
    if (len > 0) {
      const auto paths = enumerate_paths(e.value(), b, len, s);
      CHECK(paths.size() == static_cast<std::size_t>(std::pow(k, len)));
      std::vector<std::int64_t> g(gold.data() + b * steps, gold.data() + b * steps + len);
      const auto it = std::find_if(paths.begin(), paths.end(), [&](const Scored& p) { return p.path == g; });
      REQUIRE(it != paths.end());
      expected = brute_log_z(paths) - it->score;
    }
    CHECK(none.value().data()[b] == doctest::Approx(expected).epsilon(1e-12));
    total += expected;
  }
  CHECK(F::crf_nll(e, gold, lengths, s, F::CRFReduction::sum).item() == doctest::Approx(total).epsilon(1e-12));
  CHECK(F::crf_nll(e, gold, lengths, s, F::CRFReduction::mean).item() == doctest::Approx(total / 4).epsilon(1e-12));
  CHECK(F::crf_nll(e, gold, lengths, s, F::CRFReduction::token_mean).item() == doctest::Approx(total / 7).epsilon(1e-12));
}

namespace {

/// The gradients of the summed NLL by brute force: each path's probability added to its tags'
/// emissions, start, end and transitions, the gold path's one-hots subtracted.
struct BruteGradients {
  std::vector<double> emissions, start, end, transitions;
};
BruteGradients brute_gradients(const Tensor<double>& e, const std::vector<std::int64_t>& lengths, const Tensor<std::int64_t>& gold,
                               const F::CRFScores<double>& s) {
  const std::int64_t nb = e.size(0), steps = e.size(1), k = e.size(2);
  BruteGradients g{std::vector<double>(static_cast<std::size_t>(nb * steps * k)), std::vector<double>(static_cast<std::size_t>(k)),
                   std::vector<double>(static_cast<std::size_t>(k)), std::vector<double>(static_cast<std::size_t>(k * k))};
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    if (len == 0) continue;
    const auto paths = enumerate_paths(e, b, len, s);
    const double log_z = brute_log_z(paths);
    auto add = [&](const std::vector<std::int64_t>& path, double w) {
      for (std::int64_t t = 0; t < len; ++t) g.emissions[static_cast<std::size_t>((b * steps + t) * k + path[static_cast<std::size_t>(t)])] += w;
      g.start[static_cast<std::size_t>(path.front())] += w;
      g.end[static_cast<std::size_t>(path.back())] += w;
      for (std::int64_t t = 1; t < len; ++t) g.transitions[static_cast<std::size_t>(path[static_cast<std::size_t>(t - 1)] * k + path[static_cast<std::size_t>(t)])] += w;
    };
    for (const auto& p : paths) add(p.path, std::exp(p.score - log_z));
    add(std::vector<std::int64_t>(gold.data() + b * steps, gold.data() + b * steps + len), -1.0);
  }
  return g;
}

/// Runs crf_nll (sum) in T on double inputs and returns the gradients in double.
template <class T>
BruteGradients crf_gradients(const Tensor<double>& e, const std::vector<std::int64_t>& lengths, const Tensor<std::int64_t>& gold,
                             const F::CRFScores<double>& s) {
  const Var<T> ev(e.to<T>(), true);
  const F::CRFScores<T> st{Var<T>(s.start.value().to<T>(), true), Var<T>(s.end.value().to<T>(), true), Var<T>(s.transitions.value().to<T>(), true)};
  F::crf_nll(ev, gold, lengths, st, F::CRFReduction::sum).backward();
  auto vec = [](const Var<T>& v) { return v.grad().template to<double>().to_vector(); };
  return {vec(ev), vec(st.start), vec(st.end), vec(st.transitions)};
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  CHECK(worst < tol);
}

}  // namespace

TEST_CASE("crf_nll gradients equal brute-force marginals with 20 and 30 tags, in double and float") {
  // 20 tags fill one 24-wide column block of the forward algorithm's product, 30 a full block and
  // a partial one; the pair marginals are summed in factored form.
  for (const std::int64_t k : {20, 30}) {
    CAPTURE(k);
    dsm::Generator gen(static_cast<std::uint64_t>(k));
    const Tensor<double> e = Tensor<double>(Tensor<double>::randn({3, 3, k}, gen) * 2.0);
    const auto s = random_scores(k, 5);
    const std::vector<std::int64_t> lengths{3, 2, 1};
    Tensor<std::int64_t> gold({3, 3});
    for (std::int64_t i = 0; i < gold.numel(); ++i) gold.data()[i] = (i * 11 + 3) % k;
    const auto want = brute_gradients(e, lengths, gold, s);
    const auto d = crf_gradients<double>(e, lengths, gold, s);
    check_close(d.emissions, want.emissions, 1e-12);
    check_close(d.start, want.start, 1e-12);
    check_close(d.end, want.end, 1e-12);
    check_close(d.transitions, want.transitions, 1e-12);
    const auto f = crf_gradients<float>(e, lengths, gold, s);
    check_close(f.emissions, want.emissions, 2e-6);
    check_close(f.transitions, want.transitions, 2e-6);
  }
}

TEST_CASE("crf_nll pair marginals stay right when the best tags on either side are joined by an unlikely transition") {
  // Tag 0 wins step 0 and tag 1 step 1 by `gap`, but 0 -> 1 is forbidden and 1 -> 1 scores
  // `bonus`: the factored pair marginals' scale r is then `gap`, and past 80 these steps take one
  // exp per pair. Float's forward algorithm itself loses paths below e^-87 of the best, so the
  // widest gap runs in double only.
  const std::int64_t k = 2;
  const double ninf = -std::numeric_limits<double>::infinity();
  const Tensor<std::int64_t> gold = Tensor<std::int64_t>::from_range(std::vector<std::int64_t>{1, 1}, {1, 2});
  const std::vector<std::int64_t> lengths{2};
  for (const double gap : {60.0, 82.0, 200.0}) {
    CAPTURE(gap);
    const double bonus = std::min(gap / 8, 20.0);
    const Tensor<double> e = Tensor<double>::from_range(std::vector<double>{0, -gap, -gap, 0}, {1, 2, k});
    const F::CRFScores<double> s{Var<double>(Tensor<double>::zeros({k})), Var<double>(Tensor<double>::zeros({k})),
                                 Var<double>(Tensor<double>::from_range(std::vector<double>{0, ninf, 0, bonus}, {k, k}))};
    const auto want = brute_gradients(e, lengths, gold, s);
    CHECK(want.transitions[0] > 1e-10);  // the path 0 -> 0 has a visible share
    const auto d = crf_gradients<double>(e, lengths, gold, s);
    check_close(d.emissions, want.emissions, 1e-12);
    check_close(d.transitions, want.transitions, 1e-12);
    if (gap < 87) {
      // Log-space scores near 80 carry float rounding of about 4e-6, and so do the marginals.
      const auto f = crf_gradients<float>(e, lengths, gold, s);
      check_close(f.emissions, want.emissions, 2e-5);
      check_close(f.transitions, want.transitions, 2e-5);
    }
  }
}

TEST_CASE("Viterbi and n-best equal the brute-force ranking, with and without BIO constraints") {
  const std::int64_t nb = 3, steps = 4, k = 5;
  dsm::Generator gen(3);
  const Tensor<double> e = Tensor<double>::randn({nb, steps, k}, gen);
  const auto s = random_scores(k, 4);
  const std::vector<std::int64_t> lengths{4, 3, 1};
  const auto bio = dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, kBioTags);
  for (const F::CRFConstraints* c : {static_cast<const F::CRFConstraints*>(nullptr), &bio}) {
    CAPTURE(c != nullptr);
    const auto best = F::viterbi_decode(e, lengths, s, c);
    const auto top = F::viterbi_nbest(e, lengths, s, 7, c);
    REQUIRE(best.tags.shape() == dsm::Shape{nb, steps});
    REQUIRE(top.tags.shape() == dsm::Shape{nb, 7, steps});
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t len = lengths[static_cast<std::size_t>(b)];
      const auto paths = enumerate_paths(e, b, len, s, c);
      for (std::int64_t t = 0; t < steps; ++t)
        CHECK(best.tags.data()[b * steps + t] == (t < len ? paths[0].path[static_cast<std::size_t>(t)] : -1));
      CHECK(best.scores.data()[b] == doctest::Approx(paths[0].score).epsilon(1e-12));
      for (std::int64_t r = 0; r < 7; ++r) {
        if (r >= static_cast<std::int64_t>(paths.size())) {  // fewer paths than asked (length 1: 5 or 3 tags)
          CHECK(top.scores.data()[b * 7 + r] == -std::numeric_limits<double>::infinity());
          CHECK(top.tags.data()[(b * 7 + r) * steps] == -1);
          continue;
        }
        CHECK(top.scores.data()[b * 7 + r] == doctest::Approx(paths[static_cast<std::size_t>(r)].score).epsilon(1e-12));
        for (std::int64_t t = 0; t < len; ++t) CHECK(top.tags.data()[(b * 7 + r) * steps + t] == paths[static_cast<std::size_t>(r)].path[static_cast<std::size_t>(t)]);
      }
    }
  }
}

TEST_CASE("Plain Viterbi (batched over sequences) equals the list Viterbi's best path in float with 20 tags, ties go to the smaller tag") {
  // The n = 1 path (all sequences at once) and the n-best path (one at a time) are separate
  // code; lengths differ, so the batched recursion runs past some sequences' ends.
  const std::int64_t nb = 4, steps = 9, k = 20;
  dsm::Generator gen(11);
  const Tensor<float> e = Tensor<float>::randn({nb, steps, k}, gen);
  const F::CRFScores<float> s{Var<float>(Tensor<float>::randn({k}, gen)), Var<float>(Tensor<float>::randn({k}, gen)),
                              Var<float>(Tensor<float>::randn({k, k}, gen))};
  const std::vector<std::int64_t> lengths{9, 5, 1, 0};
  const auto best = F::viterbi_decode(e, lengths, s);
  const auto top = F::viterbi_nbest(e, lengths, s, 2);
  for (std::int64_t b = 0; b < nb; ++b) {
    CHECK(best.scores.data()[b] == top.scores.data()[b * 2]);
    for (std::int64_t t = 0; t < steps; ++t) CHECK(best.tags.data()[b * steps + t] == top.tags.data()[b * 2 * steps + t]);
  }
  CHECK(best.scores.data()[3] == 0.f);  // the empty sequence
  CHECK(best.tags.data()[1 * steps + 5] == -1);
  // All scores zero: every path ties, and the smaller tag wins at every step.
  const Tensor<float> zeros = Tensor<float>::zeros({1, 6, k});
  const F::CRFScores<float> flat{Var<float>(Tensor<float>::zeros({k})), Var<float>(Tensor<float>::zeros({k})), Var<float>(Tensor<float>::zeros({k, k}))};
  const std::vector<std::int64_t> six{6};
  const auto tie = F::viterbi_decode(zeros, six, flat);
  for (std::int64_t t = 0; t < 6; ++t) CHECK(tie.tags.data()[t] == 0);
  // No tag may end a sequence: no path, score -inf and tags -1, as the list Viterbi gives.
  F::CRFConstraints no_end;
  no_end.end.assign(static_cast<std::size_t>(k), false);
  const auto none = F::viterbi_decode(e, lengths, s, &no_end);
  const auto none2 = F::viterbi_nbest(e, lengths, s, 2, &no_end);
  for (std::int64_t b = 0; b < 3; ++b) {
    CHECK(none.scores.data()[b] == -std::numeric_limits<float>::infinity());
    CHECK(none2.scores.data()[b * 2] == -std::numeric_limits<float>::infinity());
    CHECK(none.tags.data()[b * steps] == -1);
  }
}

TEST_CASE("Constrained crf_nll equals enumeration over the allowed paths, forbidden entries get no gradient") {
  const std::int64_t k = 5, steps = 4;
  dsm::Generator gen(5);
  const Var<double> e(Tensor<double>::randn({2, steps, k}, gen), true);
  const auto s = random_scores(k, 6);
  const auto bio = dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, kBioTags);
  const Tensor<std::int64_t> gold = Tensor<std::int64_t>::from_range(std::vector<std::int64_t>{1, 2, 0, 3, 3, 4, 4, 0}, {2, steps});
  const std::vector<std::int64_t> lengths{4, 3};
  const auto nll = F::crf_nll(e, gold, lengths, s, F::CRFReduction::none, &bio);
  for (std::int64_t b = 0; b < 2; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    const auto paths = enumerate_paths(e.value(), b, len, s, &bio);
    std::vector<std::int64_t> g(gold.data() + b * steps, gold.data() + b * steps + len);
    const auto it = std::find_if(paths.begin(), paths.end(), [&](const Scored& p) { return p.path == g; });
    REQUIRE(it != paths.end());
    CHECK(nll.value().data()[b] == doctest::Approx(brute_log_z(paths) - it->score).epsilon(1e-12));
  }
  dsm::sum(nll).backward();
  for (std::int64_t i = 0; i < k * k; ++i)
    if (!bio.transitions[static_cast<std::size_t>(i)]) CHECK(s.transitions.grad().data()[i] == 0.0);
  for (std::int64_t i = 0; i < k; ++i)
    if (!bio.start[static_cast<std::size_t>(i)]) CHECK(s.start.grad().data()[i] == 0.0);
  // A gold path through a forbidden transition (O -> I-X) is an error.
  const Tensor<std::int64_t> bad = Tensor<std::int64_t>::from_range(std::vector<std::int64_t>{0, 2, 0, 0}, {1, steps});
  CHECK_THROWS_WITH_AS(F::crf_nll(Var<double>(e.value().narrow(0, 0, 1)), bad, {}, s, F::CRFReduction::mean, &bio),
                       "crf_nll: the gold tags of sequence 0 use a start, end or transition the constraints forbid", dsm::error);
}

TEST_CASE("crf_nll gradcheck: emissions and all scores, with lengths, constraints and each reduction") {
  const auto bio = dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, kBioTags);
  const Tensor<std::int64_t> gold = Tensor<std::int64_t>::from_range(std::vector<std::int64_t>{1, 2, 2, 0, 3, 4, 0, 0, 0, 1, 0, 0}, {3, 4});
  const std::vector<std::int64_t> lengths{4, 3, 2};
  for (const auto red : {F::CRFReduction::none, F::CRFReduction::sum, F::CRFReduction::mean, F::CRFReduction::token_mean})
    for (const F::CRFConstraints* c : {static_cast<const F::CRFConstraints*>(nullptr), &bio}) {
      auto f = [&](const dsm_test::GradInputs& v) { return F::crf_nll(v[0], gold, lengths, F::CRFScores<double>{v[1], v[2], v[3]}, red, c); };
      DSM_GRADCHECK(f, dsm_test::grad_randn({3, 4, 5}, 1), dsm_test::grad_randn({5}, 2), dsm_test::grad_randn({5}, 3), dsm_test::grad_randn({5, 5}, 4));
    }
}

TEST_CASE("CRF in float: large scores stay finite and agree with double, the module wraps the functions") {
  dsm::nn::CRF<{.num_tags = 4}> crf;
  dsm::Generator gen(8);
  const Tensor<float> e = Tensor<float>(Tensor<float>::randn({2, 6, 4}, gen) * 400.f);  // scores far beyond exp's range
  const Tensor<std::int64_t> gold = Tensor<std::int64_t>::zeros({2, 6});
  const std::vector<std::int64_t> lengths{6, 5};
  const float nll = crf.nll(Var<float>(e), gold, lengths, dsm::nn::CRFReduction::sum).item();
  const F::CRFScores<double> sd{Var<double>(crf.start_transitions.value().to<double>()), Var<double>(crf.end_transitions.value().to<double>()),
                                Var<double>(crf.transitions.value().to<double>())};
  const double nll_d = F::crf_nll(Var<double>(e.to<double>()), gold, lengths, sd, F::CRFReduction::sum).item();
  CHECK(std::isfinite(nll));
  CHECK(nll == doctest::Approx(nll_d).epsilon(1e-5));
  const auto best = crf.decode(e, lengths);
  const auto best_d = F::viterbi_decode(e.to<double>(), lengths, sd);
  CHECK(best.tags.to_vector() == best_d.tags.to_vector());
  CHECK(crf.nbest(e, lengths, 2).tags.shape() == dsm::Shape{2, 2, 6});
  std::vector<std::string> names;
  for (auto& [name, v] : crf.named_parameters<float>()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"start_transitions", "end_transitions", "transitions"});
  CHECK(dsm::max(dsm::abs(crf.transitions.value())).item() <= 0.1f);
}

TEST_CASE("Tag-scheme constraints: BIO and BIOES") {
  const auto bio = dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, kBioTags);
  auto allowed = [&](const F::CRFConstraints& c, std::size_t k, std::size_t i, std::size_t j) { return static_cast<bool>(c.transitions[i * k + j]); };
  CHECK(bio.start == std::vector<bool>{true, true, false, true, false});
  CHECK(allowed(bio, 5, 0, 2) == false);  // O -> I-X
  CHECK(allowed(bio, 5, 1, 2) == true);   // B-X -> I-X
  CHECK(allowed(bio, 5, 2, 2) == true);   // I-X -> I-X
  CHECK(allowed(bio, 5, 1, 4) == false);  // B-X -> I-Y
  CHECK(allowed(bio, 5, 2, 3) == true);   // I-X -> B-Y
  const std::vector<std::string> tags{"O", "B-X", "I-X", "E-X", "S-X"};
  const auto bioes = dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bioes, tags);
  CHECK(bioes.start == std::vector<bool>{true, true, false, false, true});
  CHECK(bioes.end == std::vector<bool>{true, false, false, true, true});
  CHECK(allowed(bioes, 5, 1, 0) == false);  // B-X -> O: the span must close
  CHECK(allowed(bioes, 5, 1, 3) == true);   // B-X -> E-X
  CHECK(allowed(bioes, 5, 3, 1) == true);   // E-X -> B-X
  CHECK(allowed(bioes, 5, 4, 2) == false);  // S-X -> I-X
  CHECK_THROWS_WITH_AS(dsm::nn::tag_scheme_constraints(dsm::nn::TagScheme::bio, {"O", "E-X"}),
                       "tag_scheme_constraints: tag 'E-X' is not O or B-/I-<label>", dsm::config_error);
}

TEST_CASE("CRF errors name the operation and the offending values") {
  const auto s = random_scores(3, 1);
  const Var<double> e(Tensor<double>::zeros({2, 4, 3}));
  Tensor<std::int64_t> gold = Tensor<std::int64_t>::zeros({2, 4});
  gold.data()[5] = 3;
  CHECK_THROWS_WITH_AS(F::crf_nll(e, gold, {}, s), "crf_nll: tag 3 at sequence 1, step 1 is outside [0, 3)", dsm::index_error);
  CHECK_THROWS_WITH_AS(F::crf_nll(e, Tensor<std::int64_t>::zeros({2, 3}), {}, s), "crf_nll: tags of shape [2, 3] must be [2, 4]", dsm::shape_error);
  CHECK_THROWS_WITH_AS(F::crf_nll(Var<double>(Tensor<double>::zeros({2, 4, 2})), Tensor<std::int64_t>::zeros({2, 4}), {}, s),
                       "crf_nll: start [3], end [3] and transitions [3, 3] must be [2], [2] and [2, 2] for emissions with 2 tags", dsm::shape_error);
  CHECK_THROWS_WITH_AS(F::viterbi_nbest(e.value(), {}, s, 0), "viterbi_nbest: n must be positive, got 0", dsm::config_error);
  dsm::nn::CRF<dsm::dynamic> crf({.num_tags = 3});
  CHECK_THROWS_WITH_AS(crf.set_constraints({{true}, {}, {}}), "CRF::set_constraints: constraints for 1 starts, 0 ends and 0 transitions; 3 tags need 3, 3 and 9",
                       dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::nn::CRF<dsm::dynamic>({.num_tags = 0}), "CRF: num_tags must be positive, got 0", dsm::config_error);
}
