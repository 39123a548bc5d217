// dsm/nn/module.hpp: the Module base, state dicts, and compile-time configuration.
//
// A module is a class with Var members (its parameters), Tensor members (its buffers, e.g. a
// running statistic) and module members. It lists them in `visit`, which is all the base needs
// to offer stable dotted names, state dicts, train()/eval() and zero_grad(); nothing is
// registered by pointer, so modules can be moved and kept in vectors.
//
//   class Block : public dsm::nn::Module {
//    public:
//     dsm::nn::Linear<{.in_features = 64, .out_features = 64}> proj;
//     dsm::Var<float> scale{dsm::Tensor<float>::ones({64}), true};
//     void visit(dsm::nn::Members& m) override { m.module("proj", proj); m.parameter("scale", scale); }
//   };
//   Block b;
//   for (auto& [name, p] : b.named_parameters()) ...   // "proj.weight", "proj.bias", "scale"
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "../autograd/var.hpp"
#include "../core/any_tensor.hpp"

namespace dsm {

/// Makes a module take its configuration at run time, in its constructor:
///   nn::Linear<{.in_features = 4, .out_features = 2}> a;                 // compile time
///   nn::Linear<dsm::dynamic> b({.in_features = 4, .out_features = 2});   // run time, same code
/// Every configuration struct ends with `bool dynamic_form = false;`, which only this sets.
struct dynamic_t {
  template <class Config>
    requires requires(Config c) { c.dynamic_form = true; }
  constexpr operator Config() const {  // NOLINT: converts to any configuration type
    Config c{};
    c.dynamic_form = true;
    return c;
  }
};
inline constexpr dynamic_t dynamic{};

namespace nn {

/// Holds a module's configuration: a template parameter object (static) or a member (dynamic).
/// Modules read it through config() only, so both forms share one implementation.
template <class Config, Config C, bool Dynamic = C.dynamic_form>
class ConfigHolder {
 public:
  static constexpr bool is_dynamic = false;
  ConfigHolder() = default;
  explicit ConfigHolder(const Config&) {}  // lets one constructor serve both forms
  static constexpr const Config& config() { return C; }
};
template <class Config, Config C>
class ConfigHolder<Config, C, true> {
 public:
  static constexpr bool is_dynamic = true;
  explicit ConfigHolder(const Config& c) : config_(c) { config_.dynamic_form = true; }
  const Config& config() const { return config_; }

 private:
  Config config_;
};

/// A parameter of any floating element type.
using ParameterRef = std::variant<Var<float>*, Var<double>*, Var<bf16>*, Var<f16>*>;

/// What a walk over a module tree does with each member (names are full dotted paths).
class MemberVisitor {
 public:
  virtual ~MemberVisitor() = default;
  virtual void parameter(const std::string&, ParameterRef) {}
  virtual void buffer(const std::string&, AnyTensor&) {}
  virtual void module(const std::string&, class Module&) {}
};

class Module;

/// The argument of Module::visit: each call names one member.
class Members {
 public:
  Members(MemberVisitor& visitor, std::string prefix) : visitor_(visitor), prefix_(std::move(prefix)) {}
  template <class T>
  void parameter(std::string_view name, Var<T>& p) {
    if (p.defined()) visitor_.parameter(prefix_ + std::string(name), &p);
  }
  void buffer(std::string_view name, AnyTensor& t) { visitor_.buffer(prefix_ + std::string(name), t); }
  void module(std::string_view name, Module& m);
  /// A list of modules, named name.0, name.1, ...
  template <class M>
  void modules(std::string_view name, std::vector<M>& ms) {
    for (std::size_t i = 0; i < ms.size(); ++i) module(std::string(name) + "." + std::to_string(i), ms[i]);
  }

 private:
  MemberVisitor& visitor_;
  std::string prefix_;
};

/// An ordered map from dotted names to tensors: what state_dict() returns and checkpoints hold.
class StateDict {
 public:
  void insert(std::string name, AnyTensor t) {
    if (find(name)) fail<error>("StateDict", "duplicate entry '", name, "'");
    entries_.emplace_back(std::move(name), std::move(t));
  }
  const AnyTensor* find(std::string_view name) const {
    for (const auto& [n, t] : entries_)
      if (n == name) return &t;
    return nullptr;
  }
  const AnyTensor& at(std::string_view name) const {
    if (const AnyTensor* t = find(name)) return *t;
    fail<error>("StateDict", "no entry '", name, "'");
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  std::size_t size() const { return entries_.size(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

 private:
  std::vector<std::pair<std::string, AnyTensor>> entries_;
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = default;
  Module(Module&&) = default;
  Module& operator=(const Module&) = default;
  Module& operator=(Module&&) = default;
  virtual ~Module() = default;

  /// Names every parameter, buffer and sub-module (in a fixed order: it defines the names).
  virtual void visit(Members& m) = 0;

  /// Walks the tree below this module, depth first, in visit order.
  void walk(MemberVisitor& v, const std::string& prefix = "") {
    Members m(v, prefix);
    visit(m);
  }

  /// All parameters of element type T with their dotted names, in visit order.
  template <class T = float>
  std::vector<std::pair<std::string, Var<T>>> named_parameters() {
    struct Collect final : MemberVisitor {
      std::vector<std::pair<std::string, Var<T>>> out;
      void parameter(const std::string& name, ParameterRef p) override {
        if (auto* v = std::get_if<Var<T>*>(&p)) out.emplace_back(name, **v);
      }
    } c;
    walk(c);
    return std::move(c.out);
  }
  /// The parameters of element type T (handles sharing the module's values and gradients).
  template <class T = float>
  std::vector<Var<T>> parameters() {
    std::vector<Var<T>> out;
    for (auto& [name, p] : named_parameters<T>()) out.push_back(p);
    return out;
  }
  /// Number of parameter elements of every type.
  std::int64_t parameter_count() {
    struct Count final : MemberVisitor {
      std::int64_t n = 0;
      void parameter(const std::string&, ParameterRef p) override {
        std::visit([&](auto* v) { n += v->numel(); }, p);
      }
    } c;
    walk(c);
    return c.n;
  }

  /// Parameters and buffers by dotted name (values shared, not copied).
  StateDict state_dict() {
    struct Collect final : MemberVisitor {
      StateDict out;
      void parameter(const std::string& name, ParameterRef p) override {
        std::visit([&](auto* v) { out.insert(name, AnyTensor(v->value())); }, p);
      }
      void buffer(const std::string& name, AnyTensor& t) override { out.insert(name, t); }
    } c;
    walk(c);
    return std::move(c.out);
  }

  /// Copies values from `dict` into the parameters and buffers (converting the element type).
  /// Requires: every name present with the right shape; with strict, no entry left over.
  /// A missing, unexpected or mis-shaped entry throws dsm::error naming it, before any value is
  /// changed.
  ///
  /// A template only so that it compiles where it is called: converting between every pair of
  /// element types is over a hundred copy loops, which every translation unit compiled otherwise.
  template <class Dict = StateDict>
  void load_state_dict(const Dict& dict, bool strict = true) {
    static_assert(std::is_same_v<Dict, StateDict>, "load_state_dict takes an nn::StateDict");
    struct Check final : MemberVisitor {
      const StateDict& dict;
      std::vector<std::string> seen;
      explicit Check(const StateDict& d) : dict(d) {}
      void expect(const std::string& name, const Shape& shape) {
        const AnyTensor* t = dict.find(name);
        if (!t) fail<error>("load_state_dict", "missing entry '", name, "' (expected shape ", shape, ")");
        if (!(t->shape() == shape))
          fail<shape_error>("load_state_dict", "entry '", name, "' has shape ", t->shape(), ", the module expects ", shape);
        seen.push_back(name);
      }
      void parameter(const std::string& name, ParameterRef p) override {
        std::visit([&](auto* v) { expect(name, v->shape()); }, p);
      }
      void buffer(const std::string& name, AnyTensor& t) override { expect(name, t.shape()); }
    } check(dict);
    walk(check);
    if (strict)
      for (const auto& [name, t] : dict)
        if (std::find(check.seen.begin(), check.seen.end(), name) == check.seen.end())
          fail<error>("load_state_dict", "unexpected entry '", name, "' (the module has no such parameter or buffer)");

    struct Load final : MemberVisitor {
      const StateDict& dict;
      explicit Load(const StateDict& d) : dict(d) {}
      void parameter(const std::string& name, ParameterRef p) override {
        std::visit([&](auto* v) {
          using T = typename std::remove_pointer_t<decltype(v)>::value_type;
          Tensor<T> dst = v->value();
          std::visit([&](const auto& src) { dst.copy_(src); }, dict.at(name).variant());
        }, p);
      }
      void buffer(const std::string& name, AnyTensor& t) override {
        std::visit([&](auto& dst) {
          Tensor<typename std::decay_t<decltype(dst)>::value_type> d = dst;
          std::visit([&](const auto& src) { d.copy_(src); }, dict.at(name).variant());
        }, t.variant());
      }
    } load(dict);
    no_grad guard;
    walk(load);
  }

  /// Training mode (dropout active, balancing statistics updated) for this module and below.
  void train(bool on = true) {
    struct SetMode final : MemberVisitor {
      bool on;
      explicit SetMode(bool o) : on(o) {}
      void module(const std::string&, Module& m) override { m.training_ = on; }
    } s(on);
    training_ = on;
    walk(s);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Drops every parameter's gradient.
  void zero_grad() {
    struct Zero final : MemberVisitor {
      void parameter(const std::string&, ParameterRef p) override {
        std::visit([](auto* v) { v->zero_grad(); }, p);
      }
    } z;
    walk(z);
  }

 private:
  bool training_ = true;
};

inline void Members::module(std::string_view name, Module& m) {
  const std::string full = prefix_ + std::string(name);
  visitor_.module(full, m);
  m.walk(visitor_, full + ".");
}

}  // namespace nn
}  // namespace dsm
