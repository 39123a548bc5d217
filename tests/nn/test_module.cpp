// Tests of dsm/nn/module.hpp and the layers' structure: names, state dicts, modes, configs.
#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

namespace nn = dsm::nn;
using dsm::Tensor;
using dsm::Var;

namespace {
struct Block : nn::Module {
  nn::RMSNorm<{.dim = 4}> norm;
  nn::MLP<{.in_features = 4, .hidden = 6, .out_features = 4, .activation = nn::Activation::swiglu, .bias = false}> ffn;
  void visit(nn::Members& m) override {
    m.module("norm", norm);
    m.module("ffn", ffn);
  }
};
struct Net : nn::Module {
  nn::Embedding<{.num_embeddings = 10, .dim = 4}> tok;
  std::vector<Block> blocks = std::vector<Block>(2);
  nn::Linear<nn::LinearConfig{.in_features = 4, .out_features = 3}> head;
  nn::Dropout drop{{.p = 0.5, .seed = 3}};
  void visit(nn::Members& m) override {
    m.module("tok", tok);
    m.modules("blocks", blocks);
    m.module("head", head);
    m.module("drop", drop);
  }
};
}  // namespace

TEST_CASE("Module: stable dotted names in visit order") {
  Net net;
  std::vector<std::string> names;
  for (auto& [name, p] : net.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"tok.weight", "blocks.0.norm.weight", "blocks.0.ffn.fc1.weight", "blocks.0.ffn.fc2.weight",
                                          "blocks.1.norm.weight", "blocks.1.ffn.fc1.weight", "blocks.1.ffn.fc2.weight", "head.weight", "head.bias"});
  CHECK(net.blocks[0].ffn.fc1.weight.shape() == dsm::Shape{12, 4});  // swiglu: gate and value
  CHECK(net.parameter_count() == 40 + 2 * (4 + 48 + 24) + 12 + 3);
}

TEST_CASE("Module: state_dict round trip, and errors naming the entry") {
  Net a, b;
  b.load_state_dict(a.state_dict());
  CHECK(b.head.weight.value().to_vector() == a.head.weight.value().to_vector());
  CHECK(b.head.weight.value().data() != a.head.weight.value().data());  // copied, not shared

  nn::StateDict missing;
  for (const auto& [name, t] : a.state_dict())
    if (name != "blocks.1.norm.weight") missing.insert(name, t);
  CHECK_THROWS_WITH_AS(b.load_state_dict(missing), "load_state_dict: missing entry 'blocks.1.norm.weight' (expected shape [4])", dsm::error);

  nn::StateDict extra = a.state_dict();
  extra.insert("head.scale", Tensor<float>::ones({3}));
  CHECK_THROWS_WITH_AS(b.load_state_dict(extra), "load_state_dict: unexpected entry 'head.scale' (the module has no such parameter or buffer)", dsm::error);
  CHECK_NOTHROW(b.load_state_dict(extra, /*strict=*/false));

  nn::StateDict bad;
  for (const auto& [name, t] : a.state_dict()) bad.insert(name, name == "head.bias" ? dsm::AnyTensor(Tensor<float>::ones({4})) : t);
  const auto before = b.tok.weight.value().to_vector();
  CHECK_THROWS_WITH_AS(b.load_state_dict(bad), "load_state_dict: entry 'head.bias' has shape [4], the module expects [3]", dsm::shape_error);
  CHECK(b.tok.weight.value().to_vector() == before);  // nothing was changed

  nn::StateDict as_double;  // element types convert on load
  for (const auto& [name, t] : a.state_dict()) as_double.insert(name, t.to<double>());
  b.load_state_dict(as_double);
  CHECK(b.tok.weight.value().to_vector() == a.tok.weight.value().to_vector());
}

TEST_CASE("Module: train and eval reach sub-modules, dropout is seeded and off in eval") {
  Net net;
  CHECK(net.drop.is_training());
  Var<float> x(Tensor<float>::ones({1000}));
  auto y1 = net.drop(x);
  const auto v1 = y1.value().to_vector();
  const auto zeros = std::count(v1.begin(), v1.end(), 0.f);
  CHECK(std::count(v1.begin(), v1.end(), 2.f) == 1000 - zeros);  // kept values scaled by 1/(1-p)
  CHECK(zeros > 400);
  CHECK(zeros < 600);
  nn::Dropout same({.p = 0.5, .seed = 3});
  CHECK(same(x).value().to_vector() == y1.value().to_vector());  // same seed, same mask
  net.eval();
  CHECK_FALSE(net.blocks[1].ffn.fc2.is_training());
  CHECK(net.drop(x).value().to_vector() == x.value().to_vector());
  net.train();
  CHECK(net.blocks[1].ffn.is_training());
}

TEST_CASE("Module: the dynamic form takes the same config at run time") {
  nn::Linear<{.in_features = 3, .out_features = 2}> fixed;
  nn::Linear<dsm::dynamic> dyn({.in_features = 3, .out_features = 2});
  dyn.load_state_dict(fixed.state_dict());
  Var<float> x(Tensor<float>::from({{1.f, 2.f, 3.f}}));
  CHECK(fixed(x).value().to_vector() == dyn(x).value().to_vector());
  CHECK(dyn.config().out_features == 2);
  CHECK_THROWS_WITH_AS(nn::Linear<dsm::dynamic>({.in_features = 0, .out_features = 2}),
                       "Linear: in_features and out_features must be positive, got 0 and 2", dsm::config_error);
  CHECK_THROWS_WITH_AS(fixed(Var<float>(Tensor<float>::ones({2, 4}))), "Linear: input of shape [2, 4] for in_features 3", dsm::shape_error);
  nn::Linear<{.in_features = 3, .out_features = 2, .bias = false}> nobias;
  CHECK(nobias.named_parameters().size() == 1);
  CHECK_THROWS_AS(nn::Dropout({.p = 1.0}), dsm::config_error);
}

TEST_CASE("Module: Sequential chains a flat pack and names its members by position") {
  nn::Sequential<nn::Linear<{.in_features = 4, .out_features = 8}>, nn::GELU, nn::Linear<{.in_features = 8, .out_features = 2}>> net;
  std::vector<std::string> names;
  for (auto& [name, p] : net.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  Var<float> x(Tensor<float>::randn({5, 4}));
  auto y = net(x);
  CHECK(y.shape() == dsm::Shape{5, 2});
  dsm::sum(y).backward();
  CHECK(net.get<0>().weight.grad().defined());
  net.zero_grad();
  CHECK_FALSE(net.get<0>().weight.grad().defined());
}

TEST_CASE("init: Linear's default bound and the Kaiming/Xavier scales") {
  dsm::Generator gen(5);
  nn::Linear<{.in_features = 400, .out_features = 300}> lin({.generator = &gen});
  const auto w = lin.weight.value();
  const double bound = 1.0 / std::sqrt(400.0);
  CHECK(dsm::max(w).item() <= bound);
  CHECK(dsm::min(w).item() >= -bound);
  CHECK(dsm::max(w).item() > 0.95 * bound);
  auto t = Tensor<float>::empty({300, 400});
  nn::init::kaiming_normal_(t, gen, 0, "relu");
  CHECK(dsm::std_dev(t).item() == doctest::Approx(std::sqrt(2.0 / 400)).epsilon(0.02));
  nn::init::xavier_uniform_(t, gen);
  CHECK(dsm::std_dev(t).item() == doctest::Approx(std::sqrt(2.0 / 700)).epsilon(0.02));  // U(+-b): std b/sqrt(3)
  nn::init::xavier_normal_(t, gen, 2.0);
  CHECK(dsm::std_dev(t).item() == doctest::Approx(2.0 * std::sqrt(2.0 / 700)).epsilon(0.02));
  nn::init::kaiming_uniform_(t, gen, 0, "relu");
  CHECK(dsm::std_dev(t).item() == doctest::Approx(std::sqrt(2.0 / 400)).epsilon(0.02));
  CHECK_THROWS_AS(nn::init::gain("swish"), dsm::config_error);
  CHECK_THROWS_AS(nn::init::kaiming_uniform_(Tensor<float>::empty({3}), gen), dsm::shape_error);
}
