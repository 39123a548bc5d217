// Modules with compile-time configuration, the same layer configured at run time, dotted names.
// Built and run in CI; docs/modules.md walks through it.
#include <cstdio>

#include <dsm/dsm.hpp>

namespace nn = dsm::nn;

// A pre-norm residual block. Its sizes are template arguments: the compiler specializes the code
// and rejects a bad size with a sentence (try .dim = 0).
template <std::int64_t Dim, std::int64_t Hidden>
struct Block : nn::Module {
  nn::RMSNorm<{.dim = Dim}> norm;
  nn::MLP<{.in_features = Dim, .hidden = Hidden, .out_features = Dim, .activation = nn::Activation::swiglu, .bias = false}> ffn;

  dsm::Var<float> operator()(const dsm::Var<float>& x) { return dsm::Var<float>(x + ffn(norm(x))); }
  void visit(nn::Members& m) override {
    m.module("norm", norm);
    m.module("ffn", ffn);
  }
};

struct Model : nn::Module {
  nn::Embedding<{.num_embeddings = 256, .dim = 32}> tok;
  std::vector<Block<32, 64>> blocks = std::vector<Block<32, 64>>(2);
  nn::Linear<{.in_features = 32, .out_features = 256, .bias = false}> head;

  dsm::Var<float> operator()(const dsm::Tensor<std::int64_t>& ids) {
    dsm::Var<float> h = tok(ids);
    for (auto& b : blocks) h = b(h);
    return head(h);
  }
  void visit(nn::Members& m) override {
    m.module("tok", tok);
    m.modules("blocks", blocks);
    m.module("head", head);
  }
};

int main() {
  Model model;
  std::printf("%lld parameters\n", static_cast<long long>(model.parameter_count()));
  for (auto& [name, p] : model.named_parameters()) std::printf("  %-24s [%lld x %lld]\n", name.c_str(), static_cast<long long>(p.size(0)),
                                                             static_cast<long long>(p.rank() > 1 ? p.size(1) : 1));

  auto ids = dsm::Tensor<std::int64_t>::from({{1, 2, 3}, {4, 5, 6}});
  auto logits = model(ids);
  std::printf("logits shape [%lld, %lld, %lld]\n", static_cast<long long>(logits.size(0)), static_cast<long long>(logits.size(1)),
              static_cast<long long>(logits.size(2)));

  // The run-time form: sizes read from a config file, say. Same implementation, same names.
  const std::int64_t d_in = 32, d_out = 256;
  nn::Linear<dsm::dynamic> head({.in_features = d_in, .out_features = d_out, .bias = false});
  head.load_state_dict(model.head.state_dict());
  const bool same = head(model.tok(ids)).value().to_vector() == model.head(model.tok(ids)).value().to_vector();
  std::printf("dynamic head reproduces the static one: %s\n", same ? "yes" : "no");
  return same ? 0 : 1;
}
