// dsm/core/error.hpp: the exception hierarchy and message helpers.
//
// Every run-time mismatch throws a subclass of dsm::error whose message names the operation and
// the offending values, e.g. "matmul: inner dimensions differ: [32, 512] x [256, 64]".
//
//   try { auto c = dsm::matmul(a, b); }
//   catch (const dsm::shape_error& e) { std::cerr << e.what() << '\n'; }
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace dsm {

/// Base of every error dsm throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Shapes that do not fit the operation (broadcasting, matmul, views, cat...).
class shape_error : public error { public: using error::error; };
/// An element type the operation does not support, or two that do not match.
class dtype_error : public error { public: using error::error; };
/// An index or dimension out of range.
class index_error : public error { public: using error::error; };
/// A file or stream that cannot be read or written, or is malformed.
class io_error : public error { public: using error::error; };
/// An invalid run-time configuration value.
class config_error : public error { public: using error::error; };

namespace detail {
/// Streams every argument into one string: cat("x: ", 3, " > ", 2).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

/// Throws E with a message made of the arguments, prefixed by the operation's name.
template <class E = error, class... Args>
[[noreturn]] void fail(const char* op, const Args&... args) {
  throw E(detail::cat(op, ": ", args...));
}

}  // namespace dsm
