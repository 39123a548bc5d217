// dsm/core/error.hpp: the exception hierarchy and message helpers.
//
// Every run-time mismatch throws a subclass of dsm::error whose message names the operation and
// the offending values, e.g. "matmul: inner dimensions differ: [32, 512] x [256, 64]".
//
//   try { auto c = dsm::matmul(a, b); }
//   catch (const dsm::shape_error& e) { std::cerr << e.what() << '\n'; }
#pragma once

#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <memory>
#include <string_view>
#include <type_traits>
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
// A message argument, captured without formatting: fail() stores its arguments in an array of
// these and hands it to one non-template function that builds the string. A variadic
// ostringstream per argument list had cost a model TU about 70 instantiations (7% of its object
// code) for messages built only when something has already gone wrong.
struct MessagePart {
  enum class Kind : unsigned char { text, signed_int, unsigned_int, real, character, streamed };
  Kind kind;
  union {
    struct { const char* data; std::size_t size; } text;
    long long i;
    unsigned long long u;
    double d;
    char c;
    struct { const void* object; void (*append)(std::string&, const void*); } streamed;
  };
};

template <class X>
void append_streamed(std::string& s, const void* x) {  // a type with operator<< (Shape, ...)
  std::ostringstream os;
  os << *static_cast<const X*>(x);
  s.append(os.str());
}

template <class X>
MessagePart message_part(const X& x) {
  MessagePart p;
  if constexpr (std::is_same_v<X, char>) { p.kind = MessagePart::Kind::character; p.c = x; }
  else if constexpr (std::is_integral_v<X> && std::is_signed_v<X>) { p.kind = MessagePart::Kind::signed_int; p.i = x; }
  else if constexpr (std::is_integral_v<X>) { p.kind = MessagePart::Kind::unsigned_int; p.u = x; }  // bool: 0 / 1
  else if constexpr (std::is_floating_point_v<X>) { p.kind = MessagePart::Kind::real; p.d = static_cast<double>(x); }
  else if constexpr (std::is_convertible_v<const X&, std::string_view>) {
    std::string_view v;
    if constexpr (std::is_pointer_v<X>) v = x ? std::string_view(x) : std::string_view("(null)");  // a null C string
    else v = x;
    p.kind = MessagePart::Kind::text;
    p.text = {v.data(), v.size()};
  } else {
    p.kind = MessagePart::Kind::streamed;
    p.streamed = {std::addressof(x), &append_streamed<X>};
  }
  return p;
}

/// The message the parts spell, numbers printed as an ostream prints them.
inline std::string join_message(const MessagePart* parts, std::size_t n) {
  std::string s;
  for (std::size_t k = 0; k < n; ++k) {
    const MessagePart& p = parts[k];
    switch (p.kind) {
      case MessagePart::Kind::text: s.append(p.text.data, p.text.size); break;
      case MessagePart::Kind::signed_int: s.append(std::to_string(p.i)); break;
      case MessagePart::Kind::unsigned_int: s.append(std::to_string(p.u)); break;
      case MessagePart::Kind::character: s.push_back(p.c); break;
      case MessagePart::Kind::streamed: p.streamed.append(s, p.streamed.object); break;
      case MessagePart::Kind::real: {
        char buf[32];  // %g with 6 significant digits: an ostream's default
        const int len = std::snprintf(buf, sizeof buf, "%g", p.d);
        s.append(buf, static_cast<std::size_t>(len > 0 ? len : 0));
        break;
      }
    }
  }
  return s;
}

template <class E>
[[noreturn, gnu::cold, gnu::noinline]] void throw_message(const MessagePart* parts, std::size_t n) {
  throw E(join_message(parts, n));
}
}  // namespace detail

/// Throws E with a message made of the arguments, prefixed by the operation's name.
template <class E = error, class... Args>
[[noreturn, gnu::cold, gnu::noinline]] void fail(const char* op, const Args&... args) {
  const detail::MessagePart parts[] = {detail::message_part(op), detail::message_part(": "), detail::message_part(args)...};
  detail::throw_message<E>(parts, 2 + sizeof...(Args));
}

}  // namespace dsm
