// dsm/io/detail/json.hpp: a small, strict JSON reader and writer for checkpoint headers.
//
// The reader is written for hostile input: it never reads past the end of its buffer, limits
// nesting depth, rejects trailing garbage, and reports the byte offset of the first problem.
// Numbers are kept as their text (safetensors needs exact 64-bit integers, not doubles).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dsm::io::json {

struct Value {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  std::string text;                                   // number text or string contents
  std::vector<Value> items;                           // array
  std::vector<std::pair<std::string, Value>> members; // object, in file order

  // Declared here, defaulted below: members' element type, std::pair<std::string, Value>, needs
  // Value complete, which it is only after the class (Clang with libstdc++ instantiates the
  // vector's destructor at the implicit declarations otherwise).
  Value();
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  ~Value();

  const Value* find(std::string_view key) const {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
};
inline Value::Value() = default;
inline Value::Value(const Value&) = default;
inline Value::Value(Value&&) noexcept = default;
inline Value& Value::operator=(const Value&) = default;
inline Value& Value::operator=(Value&&) noexcept = default;
inline Value::~Value() = default;

/// Thrown by parse(); the caller turns it into a dsm::io_error naming the file.
struct ParseError {
  std::string what;
  std::size_t offset;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  Value parse_document() {
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) throw ParseError{"unexpected text after the JSON value", pos_};
    return v;
  }

 private:
  static constexpr int max_depth = 64;

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() {
    if (pos_ >= s_.size()) throw ParseError{"unexpected end of the JSON text", pos_};
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) throw ParseError{std::string("expected '") + c + "'", pos_};
    ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  Value parse_value(int depth) {
    if (depth > max_depth) throw ParseError{"JSON nested too deeply", pos_};
    skip_ws();
    Value v;
    const char c = peek();
    if (c == '{') {
      v.kind = Value::Kind::object;
      ++pos_;
      skip_ws();
      if (peek() == '}') return ++pos_, v;
      for (;;) {
        skip_ws();
        std::string key = parse_string();
        for (const auto& [k, ignored] : v.members)
          if (k == key) throw ParseError{"duplicate key \"" + key + "\"", pos_};
        skip_ws();
        expect(':');
        v.members.emplace_back(std::move(key), parse_value(depth + 1));
        skip_ws();
        if (peek() == ',') { ++pos_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Value::Kind::array;
      ++pos_;
      skip_ws();
      if (peek() == ']') return ++pos_, v;
      for (;;) {
        v.items.push_back(parse_value(depth + 1));
        skip_ws();
        if (peek() == ',') { ++pos_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Value::Kind::string;
      v.text = parse_string();
      return v;
    }
    if (literal("true")) return v.kind = Value::Kind::boolean, v.boolean = true, v;
    if (literal("false")) return v.kind = Value::Kind::boolean, v;
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = Value::Kind::number;
      const std::size_t start = pos_;
      if (s_[pos_] == '-') ++pos_;
      auto digits = [&] {
        const std::size_t b = pos_;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        if (pos_ == b) throw ParseError{"malformed number", pos_};
      };
      digits();
      if (pos_ < s_.size() && s_[pos_] == '.') ++pos_, digits();
      if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
        digits();
      }
      v.text = std::string(s_.substr(start, pos_ - start));
      return v;
    }
    throw ParseError{"unexpected character", pos_};
  }
  std::string parse_string() {
    expect('"');
    std::string out;
    for (;;) {
      const char c = peek();
      ++pos_;
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) throw ParseError{"control character in a string", pos_ - 1};
      if (c != '\\') {
        out += c;
        continue;
      }
      const char e = peek();
      ++pos_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (pos_ + 4 > s_.size()) throw ParseError{"truncated \\u escape", pos_};
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            const char h = s_[pos_++];
            code <<= 4;
            if (h >= '0' && h <= '9') code |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
            else throw ParseError{"bad \\u escape", pos_ - 1};
          }
          // UTF-8 of a BMP code point (surrogate pairs are kept as two 3-byte sequences).
          if (code < 0x80) out += static_cast<char>(code);
          else if (code < 0x800) out += static_cast<char>(0xC0 | (code >> 6)), out += static_cast<char>(0x80 | (code & 0x3F));
          else out += static_cast<char>(0xE0 | (code >> 12)), out += static_cast<char>(0x80 | ((code >> 6) & 0x3F)), out += static_cast<char>(0x80 | (code & 0x3F));
          break;
        }
        default: throw ParseError{"bad escape in a string", pos_ - 1};
      }
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

inline Value parse(std::string_view text) { return Parser(text).parse_document(); }

/// A JSON string literal for `s` (quotes and escapes added).
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xF];
          out += hex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace dsm::io::json
