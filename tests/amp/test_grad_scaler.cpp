// Tests of GradScaler: the exact sequence of scales, growth trackers and skipped steps PyTorch's
// GradScaler produces for scripted runs (tests/reference/gen_amp.py), state_dict, misuse errors.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dsm/dsm.hpp>

using dsm::Tensor;
using dsm::Var;
using dsm::amp::GradScaler;

namespace {
struct StepRecord {
  std::string kind;
  bool unscale_first = false, stepped = false;
  double scale = 0;
  std::int64_t tracker = 0;
};
struct Run {
  std::vector<StepRecord> steps;
  std::vector<double> params;
};

std::map<std::string, Run> read_runs() {
  const std::string path = std::string(DSM_FIXTURE_DIR) + "/grad_scaler.txt";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "cannot open " << path);
  std::map<std::string, Run> runs;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag, name, key;
    ls >> tag >> name;
    if (tag == "params") {
      double v;
      while (ls >> v) runs[name].params.push_back(v);
      continue;
    }
    StepRecord r;
    int i = 0, first = 0, stepped = 0;
    ls >> key >> i >> key >> r.kind >> key >> first >> key >> stepped >> key >> r.scale >> key >> r.tracker;
    r.unscale_first = first != 0;
    r.stepped = stepped != 0;
    runs[name].steps.push_back(r);
  }
  return runs;
}

/// Replays one scripted run with dsm's GradScaler and SGD, as gen_amp.py does with PyTorch's.
void replay(const std::string& name, const Run& ref, dsm::amp::GradScalerOptions options, double clip = 0) {
  CAPTURE(name);
  Var<float> p(Tensor<float>::from_range(std::vector<float>{0.5f, -1.0f, 2.0f, 0.25f}, {4}), true);
  dsm::optim::SGD<float> opt(std::vector<Var<float>>{p}, {.lr = 0.1});
  GradScaler scaler(options);
  for (std::size_t i = 0; i < ref.steps.size(); ++i) {
    const StepRecord& want = ref.steps[i];
    CAPTURE(i);
    opt.zero_grad();
    std::vector<float> xv{1.0f + 0.01f * static_cast<float>(i), -2.0f, 0.5f, 3.0f - 0.02f * static_cast<float>(i)};
    if (want.kind == "inf") xv[1] = std::numeric_limits<float>::infinity();
    if (want.kind == "nan") xv[2] = std::numeric_limits<float>::quiet_NaN();
    const Tensor<float> x = Tensor<float>::from_range(xv, {4});
    Var<float> loss = Var<float>(dsm::sum(Var<float>(p * x)) * 1e-3f);
    scaler.scale(loss).backward();
    if (want.unscale_first) {
      scaler.unscale(opt);
      if (clip > 0) dsm::optim::clip_grad_norm(std::vector<Var<float>>{p}, clip);
    }
    const bool stepped = scaler.step(opt);
    scaler.update();
    CHECK(stepped == want.stepped);
    CHECK(scaler.get_scale() == want.scale);  // exact: the scale is an fp32 number
    CHECK(scaler.growth_tracker() == want.tracker);
  }
  const std::vector<float> got = p.value().to_vector();
  REQUIRE(got.size() == ref.params.size());
  for (std::size_t j = 0; j < got.size(); ++j) CHECK(got[j] == doctest::Approx(ref.params[j]).epsilon(2e-6));
}
}  // namespace

TEST_CASE("GradScaler follows PyTorch's sequence of scales, trackers and skipped steps") {
  const auto runs = read_runs();
  REQUIRE(runs.size() == 3);
  replay("short", runs.at("short"), {.init_scale = 1024, .growth_factor = 2, .backoff_factor = 0.5, .growth_interval = 3}, 0.5);
  replay("factors", runs.at("factors"), {.init_scale = std::ldexp(1.0, 126), .growth_factor = 4, .backoff_factor = 0.25, .growth_interval = 2});
  replay("default", runs.at("default"), {});
  // The scripted runs cover what they claim: growth, backoff, and a growth that would overflow.
  const auto& f = runs.at("factors").steps;
  CHECK(f[1].scale == std::ldexp(1.0, 126));  // 2^128 is not an fp32 number: the scale stayed
  CHECK(runs.at("default").steps[2040].scale == 65536.0);
}

TEST_CASE("GradScaler: state_dict round trip, disabled pass-through") {
  GradScaler a({.init_scale = 256, .growth_interval = 5});
  Var<float> p(Tensor<float>::ones({3}), true);
  dsm::optim::SGD<float> opt(std::vector<Var<float>>{p}, {.lr = 0.1});
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    a.scale(dsm::sum(p)).backward();
    CHECK(p.grad().to_vector() == std::vector<float>{256.f, 256.f, 256.f});  // scaled gradients
    a.step(opt);
    a.update();
  }
  CHECK(p.value().to_vector()[0] == doctest::Approx(1.0 - 3 * 0.1));  // unscaled before stepping
  const dsm::nn::StateDict d = a.state_dict();
  CHECK(d.size() == 5);
  GradScaler b;
  b.load_state_dict(d);
  CHECK(b.get_scale() == 256.0);
  CHECK(b.growth_tracker() == 3);
  CHECK(b.state_dict().at("growth_interval").to<std::int64_t>().item() == 5);

  GradScaler off({.enabled = false});
  Var<float> loss = dsm::sum(p);
  CHECK(off.scale(loss).impl() == loss.impl());
  CHECK(off.get_scale() == 1.0);
  CHECK(off.state_dict().size() == 0);
  opt.zero_grad();
  off.scale(loss).backward();
  CHECK(off.step(opt));
  off.update();
}

TEST_CASE("GradScaler: misuse and bad options are errors") {
  CHECK_THROWS_WITH_AS(GradScaler({.growth_factor = 1.0}), doctest::Contains("growth_factor must be > 1"), dsm::config_error);
  CHECK_THROWS_WITH_AS(GradScaler({.backoff_factor = 1.5}), doctest::Contains("backoff_factor must be in (0, 1)"), dsm::config_error);
  CHECK_THROWS_WITH_AS(GradScaler({.growth_interval = 0}), doctest::Contains("growth_interval must be at least 1"), dsm::config_error);
  CHECK_THROWS_WITH_AS(GradScaler({.init_scale = -1}), doctest::Contains("init_scale must be a positive finite"), dsm::config_error);
  CHECK_THROWS_WITH_AS(GradScaler({.init_scale = 1e40}), doctest::Contains("init_scale must be a positive finite"), dsm::config_error);

  GradScaler s;
  Var<float> p(Tensor<float>::ones({2}), true);
  dsm::optim::SGD<float> opt(std::vector<Var<float>>{p}, {.lr = 0.1});
  CHECK_THROWS_WITH_AS(s.update(), doctest::Contains("no inf checks were recorded"), dsm::error);
  s.scale(dsm::sum(p)).backward();
  s.unscale(opt);
  CHECK_THROWS_WITH_AS(s.unscale(opt), doctest::Contains("unscale() has already been called"), dsm::error);
  s.step(opt);
  CHECK_THROWS_WITH_AS(s.step(opt), doctest::Contains("step() has already been called"), dsm::error);
  CHECK_THROWS_WITH_AS(s.unscale(opt), doctest::Contains("after step()"), dsm::error);
  s.update();
  CHECK_THROWS_WITH_AS(s.update(0.0), doctest::Contains("new_scale must be a positive finite"), dsm::config_error);
  s.update(8.0);
  CHECK(s.get_scale() == 8.0);

  dsm::nn::StateDict bad;
  bad.insert("scale", Tensor<float>::scalar(4.f));
  bad.insert("growth_factor", Tensor<double>::scalar(2.0));
  bad.insert("backoff_factor", Tensor<double>::scalar(0.5));
  bad.insert("growth_interval", Tensor<std::int64_t>::scalar(10));
  bad.insert("_growth_tracker", Tensor<std::int64_t>::scalar(10));
  CHECK_THROWS_WITH_AS(s.load_state_dict(bad), doctest::Contains("_growth_tracker 10 is outside"), dsm::error);
  CHECK(s.get_scale() == 8.0);  // a rejected state changes nothing
}
