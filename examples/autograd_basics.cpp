// Autograd in a page: Vars, one fused node per expression, backward, no_grad, gradcheck.
// Built and run in CI; docs/autograd.md walks through it.
#include <cstdio>

#include <dsm/dsm.hpp>

int main() {
  using dsm::Tensor;
  using dsm::Var;
  dsm::Generator gen(0);

  // Leaves: parameters that want gradients, and inputs that do not.
  Var<float> w(Tensor<float>::randn({3, 4}, gen), /*requires_grad=*/true);
  Var<float> b(Tensor<float>::zeros({3}), true);
  Var<float> x(Tensor<float>::randn({8, 4}, gen));

  // linear is one node; the whole elementwise tree `gelu(h) * 0.5 + h` is ONE more node whose
  // backward the compiler derived from the functors' derivatives.
  Var<float> h = dsm::linear(x, w, b);
  Var<float> y = gelu(h) * 0.5f + h;
  Var<float> loss = dsm::mean(y * y);
  std::printf("loss = %.6f (made by '%s')\n", loss.item(), loss.grad_fn_name());

  loss.backward();
  std::printf("d loss / d b = [%.5f, %.5f, %.5f]\n", b.grad()(0), b.grad()(1), b.grad()(2));

  {
    dsm::no_grad guard;  // inference: nothing recorded
    Var<float> z = dsm::linear(x, w, b);
    std::printf("recorded under no_grad: %s\n", z.requires_grad() ? "yes" : "no");
  }

  // gradcheck compares the backward of any function with central finite differences.
  Var<double> a(Tensor<double>::randn({2, 5}, gen), true);
  const auto r = dsm::gradcheck([](const std::vector<Var<double>>& in) { return dsm::log_softmax(Var<double>(tanh(in[0]) * 3.0), 1); }, {a});
  std::printf("gradcheck: %s (max error %.2e)\n", r.ok ? "ok" : r.message.c_str(), r.max_abs_error);
  return r.ok ? 0 : 1;
}
