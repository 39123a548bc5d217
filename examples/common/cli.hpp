// examples/common/cli.hpp: what the example programs share: flag parsing, a vocabulary of
// strings, and time formatting.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace examples {

/// The flags a program accepts, each bound to the variable it sets.
struct FlagSet {
  std::map<std::string, std::int64_t*> ints;  // non-negative integers
  std::map<std::string, double*> reals;
  std::map<std::string, std::uint64_t*> seeds;
  std::map<std::string, std::string*> strings;
  std::map<std::string, bool*> switches;  // flags without a value
};

/// Parses argv into the bound variables; --help prints usage() and exits. Unknown flags, missing
/// values and malformed numbers are errors that name the flag.
template <class Usage>
void parse_flags(int argc, char** argv, const FlagSet& flags, Usage usage) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    }
    if (auto s = flags.switches.find(a); s != flags.switches.end()) {
      *s->second = true;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error("flag " + a + " needs a value (see --help)");
    const std::string v = argv[++i];
    try {
      std::size_t used = v.size();
      if (auto it = flags.ints.find(a); it != flags.ints.end()) {
        *it->second = std::stoll(v, &used);
        if (*it->second < 0) throw std::invalid_argument("negative");
      } else if (auto r = flags.reals.find(a); r != flags.reals.end()) {
        *r->second = std::stod(v, &used);
      } else if (auto s = flags.seeds.find(a); s != flags.seeds.end()) {
        *s->second = std::stoull(v, &used);
      } else if (auto t = flags.strings.find(a); t != flags.strings.end()) {
        *t->second = v;
      } else {
        throw std::runtime_error("unknown flag " + a + " (see --help)");
      }
      if (used != v.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::logic_error&) {
      throw std::runtime_error("flag " + a + ": '" + v + "' is not a valid value");
    }
  }
}

/// Strings to dense ids; 0 is <pad> and 1 is <unk>, what get() answers for an unknown string.
struct Vocab {
  static constexpr std::int64_t pad = 0, unk = 1;
  std::unordered_map<std::string, std::int64_t> ids;
  std::vector<std::string> names{"<pad>", "<unk>"};
  std::int64_t get(const std::string& s) const {
    auto it = ids.find(s);
    return it == ids.end() ? unk : it->second;
  }
  std::int64_t add(const std::string& s) {
    auto [it, fresh] = ids.emplace(s, static_cast<std::int64_t>(names.size()));
    if (fresh) names.push_back(s);
    return it->second;
  }
  std::int64_t size() const { return static_cast<std::int64_t>(names.size()); }
};

/// m:ss
inline std::string format_seconds(double s) {
  char buf[32];
  const int m = static_cast<int>(s) / 60;
  std::snprintf(buf, sizeof buf, "%d:%02d", m, static_cast<int>(s) - 60 * m);
  return buf;
}

}  // namespace examples
