#include <gtest/gtest.h>

#include <cstring>

#include "data_test_files.h"
#include "train/data_token_stream.h"

namespace jetmoe::test {
namespace {

using DataShardTest = DataDirTest;

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(DataShardTest, Uint16RoundTripAndLayout) {
  const std::vector<int32_t> ids = {0, 1, 65535, 258, 7};
  write_token_shard(path("a.bin"), ids, 65536);
  const std::string bytes = read_bytes(path("a.bin"));
  ASSERT_EQ(bytes.size(), 32u + 2 * ids.size());  // the layout of data_shard.h, written out by hand
  EXPECT_EQ(bytes.substr(0, 8), "JMTOKENS");
  EXPECT_EQ(uint8_t(bytes[12]), 2);
  EXPECT_EQ(uint8_t(bytes[16]), 5);
  EXPECT_EQ(uint8_t(bytes[32 + 3 * 2]), 2);  // 258 little-endian: 02 01
  EXPECT_EQ(uint8_t(bytes[32 + 3 * 2 + 1]), 1);
  const TokenShard shard(path("a.bin"));
  EXPECT_EQ(shard.token_bytes(), 2);
  EXPECT_EQ(shard.vocab_size(), 65536);
  std::vector<int32_t> read;
  shard.append(0, shard.size(), read);
  EXPECT_EQ(read, ids);
  EXPECT_FALSE(std::filesystem::exists(path("a.bin.tmp")));
}

TEST_F(DataShardTest, Uint32ForLargeVocabularies) {
  const std::vector<int32_t> ids = {65536, 99999, 3};
  write_token_shard(path("b.bin"), ids, 100000);
  const TokenShard shard(path("b.bin"));
  EXPECT_EQ(shard.token_bytes(), 4);
  EXPECT_EQ(shard.at(0), 65536);
  EXPECT_EQ(shard.at(1), 99999);
  EXPECT_EQ(std::filesystem::file_size(path("b.bin")), 32u + 4 * 3);
}

TEST_F(DataShardTest, WriterRefusesIdsOutsideTheVocabulary) {
  expect_error([&] { write_token_shard(path("c.bin"), std::vector<int32_t>{5, 30}, 30); }, "token id 30");
  EXPECT_FALSE(std::filesystem::exists(path("c.bin")));
}

TEST_F(DataShardTest, ReaderRejectsTruncatedWrongMagicAndBadIds) {
  write_token_shard(path("good.bin"), std::vector<int32_t>{1, 2, 3, 4}, 10);
  const std::string good = read_bytes(path("good.bin"));

  write("short.bin", good.substr(0, good.size() - 1));
  expect_error([&] { TokenShard shard(path("short.bin")); }, "truncated");
  write("header.bin", good.substr(0, 20));
  expect_error([&] { TokenShard shard(path("header.bin")); }, "truncated");

  std::string magic = good;
  magic[0] = 'X';
  write("magic.bin", magic);
  expect_error([&] { TokenShard shard(path("magic.bin")); }, "wrong magic");

  std::string bad_id = good;
  bad_id[32 + 2 * 2] = 10;  // third token := 10, the vocabulary size
  write("id.bin", bad_id);
  expect_error([&] { TokenShard shard(path("id.bin")); }, "token 2 has id 10");

  std::string version = good;
  version[8] = 9;
  write("version.bin", version);
  expect_error([&] { TokenShard shard(path("version.bin")); }, "version 9");
}

TEST_F(DataShardTest, StreamConcatenatesShardsAcrossBoundaries) {
  std::vector<int32_t> tokens(2500);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i % 1000);
  const std::string dir = write_source("src", tokens, 1000, 700);
  const TokenStream stream(dir);
  EXPECT_EQ(stream.size(), 2500);
  std::vector<int32_t> out;
  stream.append(650, 800, out);  // spans shards 0, 1 and 2
  EXPECT_EQ(out, std::vector<int32_t>(tokens.begin() + 650, tokens.begin() + 1450));
}

TEST_F(DataShardTest, StreamChecksShardsAgainstTheManifest) {
  const std::string dir = write_source("src", std::vector<int32_t>(50, 1), 10, 20);
  std::filesystem::remove(dir + "/shard-1.bin");
  expect_error([&] { TokenStream stream(dir); }, "missing shard");

  const std::string other = write_source("other", std::vector<int32_t>(50, 1), 10, 20);
  write_token_shard(other + "/shard-2.bin", std::vector<int32_t>{1, 2}, 10);  // manifest says 10 tokens
  expect_error([&] { TokenStream stream(other); }, "holds 2 tokens");

  expect_error([&] { TokenStream stream(path("nowhere")); }, "no such shard directory");
  std::filesystem::create_directories(path("plain"));
  expect_error([&] { TokenStream stream(path("plain")); }, "manifest.json: missing");
  const std::string empty = write_source("empty", {}, 10);
  expect_error([&] { TokenStream stream(empty); }, "holds no tokens");
  write("bad/manifest.json", "{\"format\": 3}");
  expect_error([&] { TokenStream stream(path("bad")); }, "field 'format' has the wrong type");
}

}  // namespace
}  // namespace jetmoe::test
