// Random cases against PyTorch: each operation on inputs that are strided views (permuted,
// transposed, stepped, narrowed, selected, unsqueezed, broadcast and reshaped chains of a larger
// base), in float64 and float32, values and the gradients of sum(out * w) with respect to each
// base. The cases, drawn by tests/reference/gen_fuzz.py, live in fixtures/fuzz.txt.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <dsm/dsm.hpp>

namespace {

struct FuzzTensor {
  bool integer = false;
  dsm::Shape shape;
  std::vector<double> values;
};

struct ViewStep {
  std::string kind;
  std::vector<std::int64_t> args;
};

struct FuzzInput {
  std::string name;
  bool grad = false;
  std::vector<ViewStep> chain;
};

struct FuzzCase {
  int id = 0;
  std::string dtype, op;
  std::map<std::string, std::string> params;
  std::vector<FuzzInput> inputs;
  std::map<std::string, FuzzTensor> tensors;

  const std::string& param(const std::string& key) const {
    auto it = params.find(key);
    if (it == params.end()) throw std::runtime_error("fuzz case " + std::to_string(id) + " has no parameter " + key);
    return it->second;
  }
  std::int64_t int_param(const std::string& key) const { return std::stoll(param(key)); }
  double double_param(const std::string& key) const { return std::stod(param(key)); }
  const FuzzTensor& tensor(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error("fuzz case " + std::to_string(id) + " has no tensor " + name);
    return it->second;
  }
  bool has(const std::string& name) const { return tensors.count(name) != 0; }
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string piece;
  std::istringstream in(s);
  while (std::getline(in, piece, sep)) out.push_back(piece);
  return out;
}

std::vector<FuzzCase> read_cases() {
  const std::string path = std::string(DSM_FIXTURE_DIR) + "/fuzz.txt";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<FuzzCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag;
    int id = 0;
    ls >> tag >> id;
    if (tag == "case") {
      FuzzCase c;
      c.id = id;
      ls >> c.dtype >> c.op;
      std::string kv;
      while (ls >> kv) {
        const auto eq = kv.find('=');
        c.params[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      cases.push_back(std::move(c));
      continue;
    }
    FuzzCase& c = cases.back();
    if (tag == "in") {
      FuzzInput input;
      std::string grad, chain;
      ls >> input.name >> grad >> chain;
      input.grad = grad == "1";
      if (chain != "-")
        for (const auto& step : split(chain, ',')) {
          auto parts = split(step, ':');
          ViewStep v{parts[0], {}};
          for (std::size_t i = 1; i < parts.size(); ++i) v.args.push_back(std::stoll(parts[i]));
          input.chain.push_back(std::move(v));
        }
      c.inputs.push_back(std::move(input));
    } else if (tag == "t") {
      std::string name, kind;
      int rank = 0;
      ls >> name >> kind >> rank;
      FuzzTensor t;
      t.integer = kind == "int";
      for (int d = 0; d < rank; ++d) {
        std::int64_t n = 0;
        ls >> n;
        t.shape.push_back(n);
      }
      std::string v;
      while (ls >> v) t.values.push_back(std::stod(v));
      c.tensors[name] = std::move(t);
    }
  }
  return cases;
}

const std::vector<FuzzCase>& all_cases() {
  static const std::vector<FuzzCase> cases = read_cases();
  return cases;
}

template <class T>
dsm::Tensor<T> make_tensor(const FuzzTensor& t) {
  return dsm::Tensor<double>::from_range(t.values, t.shape).template to<T>();
}

dsm::Shape to_shape(const std::vector<std::int64_t>& v) { return dsm::Shape(std::span<const std::int64_t>(v.data(), v.size())); }

/// The view chain of an input, on a Tensor or a Var alike.
template <class X>
X apply_chain(X x, const std::vector<ViewStep>& chain) {
  for (const auto& s : chain) {
    const auto& a = s.args;
    if (s.kind == "permute") x = x.permute(to_shape(a));
    else if (s.kind == "transpose") x = x.transpose(a[0], a[1]);
    else if (s.kind == "slice") x = x.slice(a[0], a[1], a[2], a[3]);
    else if (s.kind == "narrow") x = x.narrow(a[0], a[1], a[2]);
    else if (s.kind == "select") x = x.select(a[0], a[1]);
    else if (s.kind == "unsqueeze") x = x.unsqueeze(a[0]);
    else if (s.kind == "reshape") x = x.reshape(to_shape(a));
    else if (s.kind == "expand") x = x.expand(to_shape(a));
    else throw std::runtime_error("unknown view step " + s.kind);
  }
  return x;
}

dsm::Shape parse_dims(const std::string& text) {
  dsm::Shape dims;
  if (text == "all") return dims;
  for (const auto& d : split(text, ':')) dims.push_back(std::stoll(d));
  return dims;
}

template <class X>
X unary(const std::string& fn, const X& a) {
  if (fn == "neg") return -a;
  if (fn == "exp") return dsm::exp(a);
  if (fn == "log") return dsm::log(a);
  if (fn == "log1p") return dsm::log1p(a);
  if (fn == "expm1") return dsm::expm1(a);
  if (fn == "sqrt") return dsm::sqrt(a);
  if (fn == "rsqrt") return dsm::rsqrt(a);
  if (fn == "abs") return dsm::abs(a);
  if (fn == "square") return dsm::square(a);
  if (fn == "reciprocal") return dsm::reciprocal(a);
  if (fn == "tanh") return dsm::tanh(a);
  if (fn == "sigmoid") return dsm::sigmoid(a);
  if (fn == "relu") return dsm::relu(a);
  if (fn == "silu") return dsm::silu(a);
  if (fn == "gelu") return dsm::gelu(a);
  throw std::runtime_error("unknown unary " + fn);
}

template <class X>
X binary(const std::string& fn, const X& a, const X& b) {
  if (fn == "add") return a + b;
  if (fn == "sub") return a - b;
  if (fn == "mul") return a * b;
  if (fn == "div") return a / b;
  if (fn == "maximum") return dsm::maximum(a, b);
  if (fn == "minimum") return dsm::minimum(a, b);
  if (fn == "pow") return dsm::pow(a, b);
  throw std::runtime_error("unknown binary " + fn);
}

/// The inputs of one case: floating ones as X (Tensor or Var), index and mask tensors as tensors.
template <class X>
struct Inputs {
  std::map<std::string, X> x;
  std::map<std::string, dsm::Tensor<std::int64_t>> ids;
  std::map<std::string, dsm::Tensor<bool>> masks;
};

/// Runs the case's operation; float outputs in order (out, or out0), integer ones into `indices`.
template <class T, class X>
std::vector<X> run(const FuzzCase& c, const Inputs<X>& in, std::vector<dsm::Tensor<std::int64_t>>& indices) {
  auto x = [&](const std::string& n) -> const X& { return in.x.at(n); };
  const std::string& op = c.op;
  if (op == "unary") return {unary(c.param("fn"), x("a"))};
  if (op == "binary") return {binary(c.param("fn"), x("a"), x("b"))};
  if (op == "fused") {
    const X &a = x("a"), &b = x("b"), &cc = x("c");
    return {X(dsm::relu(a * b + cc) - T(0.5) * dsm::tanh(a) * dsm::sigmoid(cc) + dsm::where(a > b, a, cc))};
  }
  if (op == "reduce" || op == "arg") {
    const std::string& fn = c.param("fn");
    const dsm::Shape dims = parse_dims(c.param("dims"));
    const bool keep = c.int_param("keepdim") != 0;
    const double corr = c.double_param("correction");
    if (fn == "sum") return {dsm::sum(x("a"), dims, keep)};
    if (fn == "mean") return {dsm::mean(x("a"), dims, keep)};
    if (fn == "max") return {dsm::max(x("a"), dims, keep)};
    if (fn == "min") return {dsm::min(x("a"), dims, keep)};
    if (fn == "logsumexp") return {dsm::logsumexp(x("a"), dims, keep)};
    if (fn == "var") return {dsm::var(x("a"), dims, keep, corr)};
    if (fn == "std") return {dsm::std_dev(x("a"), dims, keep, corr)};
    if constexpr (std::is_same_v<X, dsm::Tensor<T>>) {
      if (fn == "argmax") indices.push_back(dsm::argmax(x("a"), dims, keep));
      if (fn == "argmin") indices.push_back(dsm::argmin(x("a"), dims, keep));
    }
    return {};
  }
  if (op == "softmax") {
    const auto d = c.int_param("dim");
    return {c.param("fn") == "softmax" ? X(dsm::softmax(x("a"), d)) : X(dsm::log_softmax(x("a"), d))};
  }
  if (op == "matmul") return {c.param("form") == "bmm" ? dsm::bmm(x("a"), x("b")) : dsm::matmul(x("a"), x("b"))};
  if (op == "linear") return {c.int_param("bias") ? dsm::linear(x("x"), x("w"), x("b")) : dsm::linear(x("x"), x("w"))};
  if (op == "cat" || op == "stack") {
    std::vector<X> xs;
    for (std::int64_t i = 0; i < c.int_param("count"); ++i) xs.push_back(x("x" + std::to_string(i)));
    return {op == "cat" ? dsm::cat(xs, c.int_param("dim")) : dsm::stack(xs, c.int_param("dim"))};
  }
  if (op == "index_select") return {dsm::index_select(x("x"), c.int_param("dim"), in.ids.at("i"))};
  if (op == "gather") return {dsm::gather(x("x"), c.int_param("dim"), in.ids.at("i"))};
  if (op == "scatter_add") return {dsm::scatter_add(x("x"), c.int_param("dim"), in.ids.at("i"), x("src"))};
  if (op == "index_add") return {dsm::index_add(x("x"), c.int_param("dim"), in.ids.at("i"), x("src"), c.double_param("alpha"))};
  if (op == "masked_fill") return {dsm::masked_fill(x("x"), in.masks.at("m"), c.double_param("value"))};
  if (op == "embedding") {
    const X table = c.param("table") == "2d" ? x("x") : x("x").reshape({x("x").shape()[0], -1});
    return {dsm::embedding(table, in.ids.at("i"))};
  }
  if (op == "sort" || op == "topk") {
    const auto d = c.int_param("dim");
    const bool flag = c.int_param("flag") != 0;
    auto r = op == "sort" ? dsm::sort(x("x"), d, flag) : dsm::topk(x("x"), c.int_param("k"), d, flag);
    indices.push_back(r.indices);
    return {r.values};
  }
  if (op == "argsort") {
    if constexpr (std::is_same_v<X, dsm::Tensor<T>>) indices.push_back(dsm::argsort(x("x"), c.int_param("dim"), c.int_param("flag") != 0));
    return {};
  }
  throw std::runtime_error("unknown operation " + op);
}

struct Tolerance {
  double rtol, atol;
};

/// Shapes equal and every element within atol * scale + rtol * |expected|, scale the largest
/// expected magnitude (at least 1): float32 results are compared with float64 references.
template <class T>
void check_against(const FuzzCase& c, const std::string& what, const dsm::Tensor<T>& actual, const FuzzTensor& want, Tolerance tol) {
  INFO("case " << c.id << " (" << c.dtype << " " << c.op << (c.params.count("fn") ? " " + c.params.at("fn") : "") << "): " << what);
  REQUIRE(actual.shape() == want.shape);
  const auto got = actual.template to<double>().to_vector();
  double scale = 1;
  for (double v : want.values) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want.values[i]) <= tol.atol * scale + tol.rtol * std::abs(want.values[i])))
      FAIL_CHECK("element " << i << ": " << got[i] << " against PyTorch's " << want.values[i]);
}

template <class T>
void run_case(const FuzzCase& c) {
  const Tolerance tol = std::is_same_v<T, double> ? Tolerance{1e-12, 1e-13} : Tolerance{3e-5, 3e-6};
  using TT = dsm::Tensor<T>;
  auto base_of = [&](const FuzzInput& input) { return c.tensor(input.name + ".base"); };

  if (c.op == "inplace") {
    // The target is a view of y's base; the other elements of the base must keep their values.
    TT base = make_tensor<T>(base_of(c.inputs[0]));
    TT view = apply_chain(base, c.inputs[0].chain);
    Inputs<TT> in;
    for (std::size_t i = 1; i < c.inputs.size(); ++i) {
      const auto& input = c.inputs[i];
      const FuzzTensor& b = base_of(input);
      if (input.name == "i") in.ids[input.name] = make_tensor<std::int64_t>(b);
      else if (input.name == "m") in.masks[input.name] = make_tensor<bool>(b);
      else in.x[input.name] = apply_chain(make_tensor<T>(b), input.chain);
    }
    const std::string& fn = c.param("fn");
    if (fn == "copy_") view.copy_(in.x.at("s"));
    else if (fn == "fill_") view.fill_(static_cast<T>(c.double_param("value")));
    else if (fn == "masked_fill_") dsm::masked_fill_(view, in.masks.at("m"), c.double_param("value"));
    else if (fn == "index_add_") dsm::index_add_(view, c.int_param("dim"), in.ids.at("i"), in.x.at("s"));
    else if (fn == "scatter_add_") dsm::scatter_add_(view, c.int_param("dim"), in.ids.at("i"), in.x.at("s"));
    else if (fn == "assign") view = in.x.at("a") * in.x.at("b") + T(1);
    else if (fn == "add_assign") view += in.x.at("a") * T(2);
    else throw std::runtime_error("unknown in-place operation " + fn);
    check_against(c, "the base after the write", base, c.tensor("out"), tol);
    return;
  }

  // Values through the tensor API.
  Inputs<TT> tin;
  for (const auto& input : c.inputs) {
    const FuzzTensor& b = base_of(input);
    if (input.name == "m") tin.masks[input.name] = make_tensor<bool>(b);
    else if (b.integer) tin.ids[input.name] = make_tensor<std::int64_t>(b);
    else tin.x[input.name] = apply_chain(make_tensor<T>(b), input.chain);
  }
  std::vector<dsm::Tensor<std::int64_t>> indices;
  const auto outs = run<T>(c, tin, indices);
  const bool two = c.has("out0");
  if (!outs.empty()) check_against(c, "value", outs[0], c.tensor(two ? "out0" : "out"), tol);
  if (!indices.empty()) check_against(c, "indices", indices[0], c.tensor(two ? "out1" : "out"), Tolerance{0, 0});

  // Gradients through Vars: the loss sum(out * w) from the same views of the bases.
  if (std::none_of(c.inputs.begin(), c.inputs.end(), [](const FuzzInput& i) { return i.grad; })) return;
  using V = dsm::Var<T>;
  Inputs<V> vin;
  std::map<std::string, V> bases;
  for (const auto& input : c.inputs) {
    const FuzzTensor& b = base_of(input);
    if (input.name == "m") vin.masks[input.name] = make_tensor<bool>(b);
    else if (b.integer) vin.ids[input.name] = make_tensor<std::int64_t>(b);
    else {
      bases.emplace(input.name, V(make_tensor<T>(b), input.grad));
      vin.x[input.name] = apply_chain(bases.at(input.name), input.chain);
    }
  }
  std::vector<dsm::Tensor<std::int64_t>> unused;
  const auto vouts = run<T>(c, vin, unused);
  REQUIRE(vouts.size() == 1);
  check_against(c, "value through Vars", vouts[0].value(), c.tensor(two ? "out0" : "out"), tol);
  const V w(make_tensor<T>(c.tensor(two ? "w0" : "w")), false);
  V loss = dsm::sum(V(vouts[0] * w));
  loss.backward();
  for (const auto& input : c.inputs) {
    if (!input.grad) continue;
    const V& b = bases.at(input.name);
    const TT g = b.grad().defined() ? b.grad() : TT::zeros(b.shape());
    check_against(c, "gradient of " + input.name, g, c.tensor(input.name + ".grad"), tol);
  }
}

void run_cases(const std::string& dtype) {
  int count = 0;
  for (const FuzzCase& c : all_cases()) {
    if (c.dtype != dtype) continue;
    ++count;
    try {
      if (dtype == "float64") run_case<double>(c);
      else run_case<float>(c);
    } catch (const std::exception& e) {
      FAIL_CHECK("case " << c.id << " (" << c.op << ") threw: " << e.what());
    }
  }
  MESSAGE(count << " " << dtype << " cases");
  CHECK(count > 100);
}

}  // namespace

TEST_CASE("random float64 cases on strided views equal PyTorch's values and gradients") { run_cases("float64"); }

TEST_CASE("random float32 cases on strided views equal PyTorch's float64 values and gradients to float32 accuracy") { run_cases("float32"); }
