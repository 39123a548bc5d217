// dsm/core/print.hpp: printing tensors in PyTorch's familiar layout.
//
//   std::cout << dsm::Tensor<float>::from({{1, 2}, {3, 4}}) << '\n';
//   // tensor([[1., 2.],
//   //         [3., 4.]])
//
// Floats print with 4 decimals, or as "1." when every value is an integer, or in scientific
// notation when the magnitudes span more than 1000x (PyTorch's rules); large tensors are
// summarized with "..." (3 edge items per dimension past 1000 elements); a dtype other than
// float32, int64 and bool is named at the end.
#pragma once

#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace dsm {
namespace detail {

struct PrintFormat {
  enum Kind { integer, int_float, fixed, sci, boolean } kind = fixed;
  int width = 1;

  std::string operator()(double v) const {
    char buf[64];
    if (kind == boolean) return v != 0 ? "True" : "False";
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    switch (kind) {
      case integer: std::snprintf(buf, sizeof buf, "%.0f", v); break;
      case int_float: std::snprintf(buf, sizeof buf, "%.0f.", v); break;
      case sci: std::snprintf(buf, sizeof buf, "%.4e", v); break;
      default: std::snprintf(buf, sizeof buf, "%.4f", v); break;
    }
    return buf;
  }
};

template <class T>
PrintFormat choose_format(const std::vector<double>& vals) {
  PrintFormat f;
  if constexpr (std::is_same_v<T, bool>) {
    f.kind = PrintFormat::boolean;
  } else if constexpr (!is_floating_v<T>) {
    f.kind = PrintFormat::integer;
  } else {
    bool all_int = true;
    double lo = INFINITY, hi = 0;
    for (double v : vals) {
      if (!std::isfinite(v)) continue;
      if (v != std::nearbyint(v)) all_int = false;
      const double a = std::fabs(v);
      if (a == 0) continue;
      lo = std::min(lo, a);
      hi = std::max(hi, a);
    }
    const bool wide = hi > 0 && (hi / lo > 1000.0 || hi > 1e8);
    if (all_int) f.kind = wide ? PrintFormat::sci : PrintFormat::int_float;
    else f.kind = (wide || (hi > 0 && lo < 1e-4)) ? PrintFormat::sci : PrintFormat::fixed;
  }
  for (double v : vals) f.width = std::max(f.width, static_cast<int>(f(v).size()));
  return f;
}

/// Indices printed along a dimension of size n: all, or 3 at each end when summarizing.
inline std::vector<std::int64_t> shown_indices(std::int64_t n, bool summarize) {
  std::vector<std::int64_t> idx;
  if (summarize && n > 6) {
    for (std::int64_t i = 0; i < 3; ++i) idx.push_back(i);
    idx.push_back(-1);  // the "..." marker
    for (std::int64_t i = n - 3; i < n; ++i) idx.push_back(i);
  } else {
    for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
  }
  return idx;
}

template <class T, class B>
void collect_shown(const Tensor<T, B>& t, bool summarize, std::vector<double>& out) {
  if (t.rank() == 0) {
    out.push_back(static_cast<double>(convert<double>(t.item())));
    return;
  }
  for (std::int64_t i : shown_indices(t.size(0), summarize))
    if (i >= 0) collect_shown(t.select(0, i), summarize, out);
}

template <class T, class B>
void print_nested(std::ostream& os, const Tensor<T, B>& t, const PrintFormat& f, bool summarize, int indent) {
  if (t.rank() == 0) {
    std::string s = f(static_cast<double>(convert<double>(t.item())));
    os << std::string(static_cast<std::size_t>(f.width) - s.size(), ' ') << s;
    return;
  }
  os << '[';
  const auto idx = shown_indices(t.size(0), summarize);
  const int per_line = std::max(1, (80 - indent) / (f.width + 2));  // PyTorch wraps at 80 columns
  for (std::size_t k = 0; k < idx.size(); ++k) {
    if (k) {
      os << ',';
      if (t.rank() == 1) {
        if (k % static_cast<std::size_t>(per_line) == 0) os << '\n' << std::string(static_cast<std::size_t>(indent + 1), ' ');
        else os << ' ';
      } else {
        os << std::string(static_cast<std::size_t>(t.rank() - 1), '\n') << std::string(static_cast<std::size_t>(indent + 1), ' ');
      }
    }
    if (idx[k] < 0) os << (t.rank() == 1 ? " ..." : "...");
    else print_nested(os, t.select(0, idx[k]), f, summarize, indent + 1);
  }
  os << ']';
}

}  // namespace detail

/// Prints `t` as PyTorch does: tensor([...]) with its dtype when not float32/int64/bool.
template <class T, class B>
std::ostream& operator<<(std::ostream& os, const Tensor<T, B>& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const bool summarize = t.numel() > 1000;
  std::vector<double> vals;
  if (t.numel() > 0) detail::collect_shown(t, summarize, vals);
  const auto f = detail::choose_format<T>(vals);
  os << "tensor(";
  if (t.numel() == 0) {
    os << "[]";
    if (t.rank() != 1) {
      os << ", size=(";
      for (int d = 0; d < t.rank(); ++d) os << (d ? ", " : "") << t.size(d);
      os << (t.rank() == 1 ? ",)" : ")");
    }
  } else {
    detail::print_nested(os, t, f, summarize, 7);
  }
  constexpr dtype id = dtype_traits<T>::id;
  if (id != dtype::float32 && id != dtype::int64 && id != dtype::boolean) os << ", dtype=" << dtype_name(id);
  return os << ')';
}

/// The printed form as a string.
template <class T, class B>
std::string to_string(const Tensor<T, B>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace dsm
