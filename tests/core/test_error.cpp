// Error messages: fail() joins its arguments as an ostream would print them.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include <dsm/dsm.hpp>

namespace {
struct Streamed {  // a type known only through its operator<<
  int v;
};
std::ostream& operator<<(std::ostream& os, const Streamed& s) { return os << "<" << s.v << ">"; }

template <class E, class... Args>
std::string message_of(const Args&... args) {
  try {
    dsm::fail<E>("op", args...);
  } catch (const E& e) {
    return e.what();
  }
  return "(nothing thrown)";
}
}  // namespace

TEST_CASE("fail joins text, integers, floating point, characters, shapes and streamable types") {
  const std::string s = "str";
  const std::string_view sv = "view";
  const char* c_text = "c-string";
  CHECK(message_of<dsm::error>("a", s, sv, c_text) == "op: astrviewc-string");
  CHECK(message_of<dsm::error>(-3, " ", 7u, " ", std::int64_t{-9'000'000'000}, " ", std::uint64_t{18'000'000'000'000'000'000u}) ==
        "op: -3 7 -9000000000 18000000000000000000");
  CHECK(message_of<dsm::error>(true, false) == "op: 10");
  CHECK(message_of<dsm::error>('x', ' ', std::int8_t{-5}) == "op: x -5");  // char prints as a character, int8 as a number
  CHECK(message_of<dsm::error>(0.5, " ", 1e-7f, " ", 123456789.0, " ", 2.0) == "op: 0.5 1e-07 1.23457e+08 2");  // %g, 6 digits
  CHECK(message_of<dsm::error>(std::numeric_limits<double>::infinity(), " ", -std::numeric_limits<float>::infinity()) == "op: inf -inf");
  CHECK(message_of<dsm::error>(dsm::Shape{2, 3}, " and ", dsm::Shape{}) == "op: [2, 3] and []");
  CHECK(message_of<dsm::error>(Streamed{4}) == "op: <4>");
  CHECK(message_of<dsm::error>() == "op: ");
  CHECK(message_of<dsm::error>("name ", static_cast<const char*>(nullptr)) == "op: name (null)");
}

TEST_CASE("fail throws the requested subclass, catchable as dsm::error") {
  CHECK(message_of<dsm::shape_error>("bad shape ", dsm::Shape{1}) == "op: bad shape [1]");
  CHECK_THROWS_AS(dsm::fail<dsm::index_error>("gather", "index ", 5), dsm::index_error);
  CHECK_THROWS_WITH_AS(dsm::fail<dsm::io_error>("load", "x"), "load: x", dsm::error);
}
