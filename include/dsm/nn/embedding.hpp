// dsm/nn/embedding.hpp: a lookup table of vectors, indexed by integer ids.
//
//   dsm::nn::Embedding<{.num_embeddings = 256, .dim = 64}> tok;
//   dsm::Var<float> h = tok(ids);        // ids [batch, time] (int64) -> [batch, time, 64]
//
// weight [num_embeddings, dim] ~ N(0, 1) as torch.nn.Embedding; gradients of repeated ids add up.
#pragma once

#include "../autograd/functions/index.hpp"
#include "init.hpp"
#include "module.hpp"

namespace dsm::nn {

struct EmbeddingConfig {
  std::int64_t num_embeddings = 0;
  std::int64_t dim = 0;
  bool dynamic_form = false;  // set by dsm::dynamic only
};

struct EmbeddingOptions {
  Generator* generator = nullptr;  // the default generator when null
};

template <EmbeddingConfig C = dynamic, FloatingScalar T = float, class B = cpu>
class Embedding : public Module, public ConfigHolder<EmbeddingConfig, C> {
  using Holder = ConfigHolder<EmbeddingConfig, C>;

 public:
  using Options = EmbeddingOptions;
  Var<T, B> weight;  // [num_embeddings, dim]

  explicit Embedding(Options o = {}) requires(!Holder::is_dynamic) { init(o); }
  explicit Embedding(const EmbeddingConfig& c, Options o = {}) requires(Holder::is_dynamic) : Holder(c) { init(o); }
  using Holder::config;

  template <class I>
  Var<T, B> operator()(const Tensor<I, B>& ids) const {
    return embedding(weight, ids);
  }
  void visit(Members& m) override { m.parameter("weight", weight); }

 private:
  void init(Options o) {
    if constexpr (!Holder::is_dynamic) {
      static_assert(C.num_embeddings > 0, "Embedding: num_embeddings must be positive");
      static_assert(C.dim > 0, "Embedding: dim must be positive");
    } else if (config().num_embeddings <= 0 || config().dim <= 0) {
      fail<config_error>("Embedding", "num_embeddings and dim must be positive, got ", config().num_embeddings, " and ", config().dim);
    }
    weight = Var<T, B>(Tensor<T, B>({config().num_embeddings, config().dim}), true);
    init::normal_(weight.value(), 0.0, 1.0, o.generator ? *o.generator : default_generator());
  }
};

}  // namespace dsm::nn
