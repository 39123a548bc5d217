// Tests of the Brown corpus reader on the committed sample (tests/data/brown_sample).
#include <doctest/doctest.h>

#include <algorithm>

#include <dsm/data/brown.hpp>

namespace {
const std::string sample_dir = std::string(DSM_FIXTURE_DIR) + "/../../data/brown_sample";
}

TEST_CASE("parse_brown splits word/tag at the last slash, one sentence per non-blank line") {
  const auto s = dsm::data::parse_brown("\n\n\tThe/at jury/nn said/vbd ./.\n\n\t1/2/cd ``/`` hi/uh ''/''\n");
  REQUIRE(s.size() == 2);
  REQUIRE(s[0].size() == 4);
  CHECK(s[0][1].word == "jury");
  CHECK(s[0][1].tag == "nn");
  CHECK(s[1][0].word == "1/2");
  CHECK(s[1][0].tag == "cd");
  CHECK_THROWS_WITH_AS(dsm::data::parse_brown("ok/at broken\n", "cz99"), doctest::Contains("cz99 line 1: token 'broken' is not word/tag"), dsm::io_error);
}

TEST_CASE("load_brown, split_brown and plain_text on the committed sample") {
  const auto files = dsm::data::load_brown(sample_dir);
  REQUIRE(files.size() == 11);
  CHECK(files.front().name == "ca01");
  CHECK(files.back().name == "cb01");
  const auto split = dsm::data::split_brown(files);
  // category a has ca01..ca10: the 9th goes to validation, the 10th to test; cb01 to train
  CHECK(split.train.size() == 9);
  REQUIRE(split.validation.size() == 1);
  REQUIRE(split.test.size() == 1);
  CHECK(split.validation[0].name == "ca09");
  CHECK(split.test[0].name == "ca10");
  const std::string text = dsm::data::plain_text({files[0]});
  CHECK(text.rfind("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced \" no evidence \"", 0) == 0);
  CHECK(text.find("/at") == std::string::npos);
  CHECK_THROWS_WITH_AS(dsm::data::load_brown("/nonexistent/brown"), doctest::Contains("no corpus folder"), dsm::io_error);
}

TEST_CASE("coarse_tag reduces Brown tags to the 12-tag set by the documented rules") {
  using dsm::data::coarse_tag;
  CHECK(coarse_tag("nn") == "NOUN");
  CHECK(coarse_tag("np-tl") == "NOUN");
  CHECK(coarse_tag("nns$-hl") == "NOUN");
  CHECK(coarse_tag("vbd") == "VERB");
  CHECK(coarse_tag("md*") == "VERB");
  CHECK(coarse_tag("ppss+bem") == "PRON");
  CHECK(coarse_tag("pp$$") == "PRON");
  CHECK(coarse_tag("wdt") == "DET");
  CHECK(coarse_tag("at-tl-hl") == "DET");
  CHECK(coarse_tag("od") == "ADJ");
  CHECK(coarse_tag("*") == "ADV");
  CHECK(coarse_tag("ql") == "ADV");
  CHECK(coarse_tag("cs") == "CONJ");
  CHECK(coarse_tag("to") == "PRT");
  CHECK(coarse_tag("``") == ".");
  CHECK(coarse_tag("--") == ".");
  CHECK(coarse_tag("fw-nn") == "X");
  CHECK(coarse_tag("uh") == "X");
  CHECK(dsm::data::coarse_tagset().size() == 12);
  // Every tag of the committed sample maps into the set, and only foreign words, interjections
  // and nil fall to X.
  const auto files = dsm::data::load_brown(sample_dir);
  std::size_t tokens = 0;
  for (const auto& f : files)
    for (const auto& s : f.sentences)
      for (const auto& w : s) {
        ++tokens;
        const std::string c = coarse_tag(w.tag);
        CHECK(std::find(dsm::data::coarse_tagset().begin(), dsm::data::coarse_tagset().end(), c) != dsm::data::coarse_tagset().end());
        if (c == "X") CHECK_MESSAGE((w.tag.rfind("fw-", 0) == 0 || w.tag.rfind("uh", 0) == 0 || w.tag == "nil"), w.tag);
      }
  CHECK(tokens == 3155);  // the 11 sample files
}
