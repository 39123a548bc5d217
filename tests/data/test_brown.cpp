// Tests of the Brown corpus reader on the committed sample (tests/data/brown_sample).
#include <doctest/doctest.h>

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
