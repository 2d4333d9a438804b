#include "runtime/id_list.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace jetmoe {
namespace {

std::string error_of(std::string_view text) {
  try {
    parse_id_list(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(IdList, ParsesCommaSeparatedIds) {
  EXPECT_EQ(parse_id_list("1,306,4658"), (std::vector<int32_t>{1, 306, 4658}));
  EXPECT_EQ(parse_id_list(" 1 , 2,3 "), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parse_id_list("[0, 31999]"), (std::vector<int32_t>{0, 31999}));
  EXPECT_EQ(parse_id_list("7"), (std::vector<int32_t>{7}));
}

TEST(IdList, RejectsAnythingElseQuotingTheEntry) {
  EXPECT_NE(error_of("1,2,x").find("'x'"), std::string::npos);
  EXPECT_NE(error_of("1,,2").find("''"), std::string::npos);
  EXPECT_NE(error_of("1,2,").find("''"), std::string::npos);
  EXPECT_NE(error_of("-3").find("'-3'"), std::string::npos);
  EXPECT_NE(error_of("1.5").find("'1.5'"), std::string::npos);
  EXPECT_NE(error_of("12abc").find("'12abc'"), std::string::npos);
  EXPECT_NE(error_of("99999999999").find("'99999999999'"), std::string::npos);  // beyond int32
  EXPECT_NE(error_of("1 2").find("'1 2'"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("[]").find("empty"), std::string::npos);
}

TEST(IdList, FormatsAsJsonAndChecksTheVocabulary) {
  EXPECT_EQ(format_id_list(std::vector<int32_t>{1, 2, 30}), "[1,2,30]");
  EXPECT_EQ(format_id_list(std::vector<int32_t>{}), "[]");
  EXPECT_NO_THROW(check_ids_in_vocab(std::vector<int32_t>{0, 511}, 512));
  try {
    check_ids_in_vocab(std::vector<int32_t>{0, 5, 512}, 512);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("512 at position 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace jetmoe
