#include <gtest/gtest.h>

#include "core/parallel.h"
#include "data_test_files.h"
#include "train/data_prepare.h"
#include "train/data_token_stream.h"

namespace jetmoe::test {
namespace {

class DataPrepareTest : public DataDirTest {
 protected:
  PrepareOptions options(std::vector<std::string> inputs) {
    PrepareOptions o;
    o.tokenizer = write("tok/tokenizer.json", char_tokenizer_json());
    o.inputs = std::move(inputs);
    o.out_dir = path("out");
    return o;
  }
  PrepareResult prepare(const PrepareOptions& o, int threads = 1) {
    ThreadPool pool(threads);
    return prepare_token_shards(o, pool);
  }
  std::vector<int32_t> stream_of(const std::string& dir) {
    const TokenStream stream(dir);
    std::vector<int32_t> out;
    stream.append(0, stream.size(), out);
    return out;
  }
  void expect_error(const PrepareOptions& o, const std::string& needle) {
    try {
      prepare(o);
      ADD_FAILURE() << "prepare succeeded; expected an error containing '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
};

// Expected stream: each document's ids followed by EOS.
std::vector<int32_t> expected_stream(const std::vector<std::string>& docs) {
  std::vector<int32_t> out;
  for (const std::string& doc : docs) {
    const auto ids = char_ids(doc);
    out.insert(out.end(), ids.begin(), ids.end());
    out.push_back(kCharEos);
  }
  return out;
}

TEST_F(DataPrepareTest, TextFilesAreOneDocumentEachWithEosAfterEach) {
  const auto a = write("in/a.txt", "ab c\n\nd\n"), b = write("in/b.txt", "zz\n");
  const PrepareResult result = prepare(options({a, b}));
  EXPECT_EQ(stream_of(path("out")), expected_stream({"ab c\n\nd", "zz"}));
  EXPECT_EQ(result.documents, 2);
  EXPECT_EQ(result.manifest.total_tokens(), int64_t(expected_stream({"ab c\n\nd", "zz"}).size()));
  EXPECT_EQ(result.manifest.eos_id, kCharEos);
  EXPECT_EQ(result.manifest.vocab_size, kCharVocab);
}

TEST_F(DataPrepareTest, BlankLinesSplitDocumentsWhenAsked) {
  auto o = options({write("in/a.txt", "ab\ncd\n \n\n\nef  \n")});
  o.documents.split_blank_lines = true;
  prepare(o);
  EXPECT_EQ(stream_of(path("out")), expected_stream({"ab\ncd", "ef"}));
}

TEST_F(DataPrepareTest, JsonlReadsTheChosenField) {
  auto o = options({write("in/a.jsonl", "{\"body\": \"ab\", \"text\": \"x\"}\n\n{\"body\": \"c d\"}\n{\"body\": \"\"}\n")});
  o.documents.jsonl_field = "body";
  const PrepareResult result = prepare(o);
  EXPECT_EQ(stream_of(path("out")), expected_stream({"ab", "c d"}));
  EXPECT_EQ(result.documents, 2);
}

TEST_F(DataPrepareTest, DirectoriesExpandSortedAndShardsSplit) {
  write("in/d/2.txt", "bb");
  write("in/d/1.txt", "aa");
  write("in/d/sub/3.txt", "cc");
  auto o = options({path("in/d")});
  o.shard_tokens = 4;
  const PrepareResult result = prepare(o);
  EXPECT_EQ(stream_of(path("out")), expected_stream({"aa", "bb", "cc"}));
  EXPECT_EQ(result.manifest.shards.size(), 3u);  // 12 tokens in shards of 4
}

TEST_F(DataPrepareTest, ThreadsDoNotChangeTheOutput) {
  std::vector<std::string> inputs;
  std::vector<std::string> docs;
  for (int i = 0; i < 40; ++i) {
    docs.push_back(std::string(size_t(1 + i * 7 % 23), char('a' + i % 26)) + " x");
    inputs.push_back(write("in/" + std::to_string(100 + i) + ".txt", docs.back()));
  }
  auto o = options(inputs);
  o.group_bytes = 100;  // several groups
  prepare(o, 3);
  EXPECT_EQ(stream_of(path("out")), expected_stream(docs));
}

TEST_F(DataPrepareTest, ResumeSkipsFinishedInputsAndDropsLeftovers) {
  const auto a = write("in/a.txt", "aaa"), b = write("in/b.txt", "bbb");
  prepare(options({a}));
  // What a run killed after writing a shard but before the manifest leaves behind.
  write("out/shard-00001.bin", "garbage");
  write("out/shard-00002.bin.tmp", "garbage");
  const PrepareResult result = prepare(options({a, b}));
  EXPECT_EQ(result.inputs_skipped, 1);
  EXPECT_EQ(result.inputs_prepared, 1);
  EXPECT_EQ(stream_of(path("out")), expected_stream({"aaa", "bbb"}));
  EXPECT_FALSE(std::filesystem::exists(path("out/shard-00002.bin.tmp")));
  EXPECT_EQ(read_shard_manifest(path("out")).inputs.size(), 2u);

  const PrepareResult again = prepare(options({a, b}));
  EXPECT_EQ(again.inputs_prepared, 0);
  EXPECT_EQ(stream_of(path("out")), expected_stream({"aaa", "bbb"}));
}

TEST_F(DataPrepareTest, ResumeRefusesChangedInputsAndAnotherTokenizer) {
  const auto a = write("in/a.txt", "aaa");
  prepare(options({a}));
  write("in/a.txt", "aaaa");
  expect_error(options({a}), "changed since it was prepared");
  write("in/a.txt", "aaa");
  auto o = options({a});
  o.tokenizer = write("tok2/tokenizer.json", char_tokenizer_json() + " ");
  expect_error(o, "prepared with another tokenizer");
}

TEST_F(DataPrepareTest, BadInputsGiveClearErrors) {
  expect_error(options({path("in/missing.txt")}), "in/missing.txt: no such input file");
  expect_error(options({}), "no input files");
  expect_error(options({write("in/empty.txt", " \n\n")}), "empty.txt: empty input");
  expect_error(options({write("in/bad.jsonl", "{\"text\": \"a\"}\n{\"text\": \n")}), "bad.jsonl:2: invalid JSON");
  expect_error(options({write("in/field.jsonl", "{\"text\": \"a\"}\n\n{\"body\": \"b\"}\n")}), "field.jsonl:3: no field 'text'");
  expect_error(options({write("in/type.jsonl", "{\"text\": 5}\n")}), "type.jsonl:1: field 'text' is a number");
  expect_error(options({write("in/array.jsonl", "[1]\n")}), "array.jsonl:1: expected a JSON object");
  std::filesystem::create_directories(path("in/nothing"));
  expect_error(options({path("in/nothing")}), "holds no input files");
  auto o = options({write("in/a.txt", "a")});
  o.tokenizer = path("tok/nope.json");
  expect_error(o, "nope.json");
}

}  // namespace
}  // namespace jetmoe::test
