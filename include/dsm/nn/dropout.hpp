// dsm/nn/dropout.hpp: inverted dropout with its own seeded generator, active in train() only.
//
//   dsm::nn::Dropout drop({.p = 0.1, .seed = 7});   // the same seed gives the same masks
#pragma once

#include "functional/activation.hpp"
#include "module.hpp"

namespace dsm::nn {

struct DropoutOptions {
  double p = 0.5;
  std::uint64_t seed = 0;
};

class Dropout : public Module {
 public:
  using Options = DropoutOptions;
  explicit Dropout(Options o = {}) : options_(o), generator_(o.seed) {
    if (!(o.p >= 0 && o.p < 1)) fail<config_error>("Dropout", "probability must be in [0, 1), got ", o.p);
  }
  template <class T, class B>
  Var<T, B> operator()(const Var<T, B>& x) {
    return functional::dropout(x, options_.p, is_training(), generator_);
  }
  /// The generator drawing the masks (its state can be saved and restored for recomputation).
  Generator& generator() { return generator_; }
  void visit(Members&) override {}

 private:
  Options options_;
  Generator generator_;
};

}  // namespace dsm::nn
