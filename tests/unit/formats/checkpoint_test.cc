// Checkpoint directories: single file and HF-style shards with model.safetensors.index.json,
// written and read back, the HF fixtures, and broken indexes.
#include "formats/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format_test_util.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::contains_all;
using testing::error_message;
using testing::fixture;
using testing::TempDir;

// A small model-like set of tensors that owns its bytes (all stored as raw uint16/float).
class TensorSet {
 public:
  void add(const std::string& name, DType dtype, Shape shape) {
    const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
    auto storage = std::make_unique<std::vector<unsigned char>>(bytes);
    for (size_t i = 0; i < bytes; ++i) (*storage)[i] = static_cast<unsigned char>((i * 131 + name.size() * 7) & 0xff);
    tensors_.push_back(NamedTensor{name, TensorView{dtype, std::move(shape), storage->data()}});
    storage_.push_back(std::move(storage));
  }
  const std::vector<NamedTensor>& tensors() const { return tensors_; }
  size_t total_bytes() const {
    size_t total = 0;
    for (const auto& t : tensors_) total += t.view.nbytes();
    return total;
  }

 private:
  std::vector<NamedTensor> tensors_;
  std::vector<std::unique_ptr<std::vector<unsigned char>>> storage_;
};

TensorSet small_model() {
  TensorSet set;
  set.add("model.embed_tokens.weight", DType::BF16, {64, 16});                           // 2048 bytes
  set.add("model.layers.0.input_layernorm.weight", DType::F32, {16});                    // 64
  set.add("model.layers.0.mlp.input_linear.weight", DType::BF16, {4, 24, 16});           // 3072
  set.add("model.layers.0.mlp.output_linear.weight", DType::F16, {4, 16, 12});           // 1536
  set.add("model.layers.0.self_attention.kv_proj.weight", DType::F32, {8, 16});          // 512
  set.add("model.norm.weight", DType::F32, {16});                                        // 64
  return set;
}

void expect_same_tensors(const TensorStore& store, const std::vector<NamedTensor>& expected) {
  ASSERT_EQ(store.names().size(), expected.size());
  for (const NamedTensor& t : expected) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(store.contains(t.name));
    const TensorView& view = store.get(t.name);
    EXPECT_EQ(view.dtype, t.view.dtype);
    EXPECT_EQ(view.shape, t.view.shape);
    EXPECT_EQ(std::memcmp(view.data, t.view.data, t.view.nbytes()), 0);
  }
}

json read_json(const std::string& path) { return json::parse(testing::read_bytes(path)); }
void write_json(const std::string& path, const json& j) { testing::write_bytes(path, j.dump(2)); }

TEST(Checkpoint, ShardedAndUnshardedHoldTheSameTensors) {
  const TensorSet model = small_model();
  TempDir single_dir, sharded_dir;
  write_checkpoint_tensors(single_dir.path(), model.tensors());
  write_checkpoint_tensors(sharded_dir.path(), model.tensors(), 3500);

  EXPECT_TRUE(fs::exists(single_dir.file("model.safetensors")));
  EXPECT_FALSE(fs::exists(single_dir.file("model.safetensors.index.json")));
  EXPECT_FALSE(fs::exists(sharded_dir.file("model.safetensors")));

  // Greedy in the given order with a 3500-byte limit: [embed, norm0], [mlp.in], [mlp.out, kv, norm].
  const json index = read_json(sharded_dir.file("model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<size_t>(), model.total_bytes());
  const json& map = index["weight_map"];
  EXPECT_EQ(map.size(), model.tensors().size());
  EXPECT_EQ(map["model.embed_tokens.weight"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(map["model.layers.0.input_layernorm.weight"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(map["model.layers.0.mlp.input_linear.weight"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(map["model.norm.weight"], "model-00003-of-00003.safetensors");
  for (int i = 1; i <= 3; ++i) {
    const std::string shard = sharded_dir.file("model-0000" + std::to_string(i) + "-of-00003.safetensors");
    ASSERT_TRUE(fs::exists(shard));
    EXPECT_LE(fs::file_size(shard), 3500u + 1024u) << "a shard holds at most the limit plus its header";
    EXPECT_EQ(SafetensorsFile(shard).metadata().at("format"), "pt");  // transformers requires it
  }

  const TensorStore single = TensorStore::open_dir(single_dir.path());
  const TensorStore sharded = TensorStore::open_dir(sharded_dir.path());
  expect_same_tensors(single, model.tensors());
  expect_same_tensors(sharded, model.tensors());
  EXPECT_EQ(single.names(), sharded.names());
  EXPECT_EQ(sharded.source(), sharded_dir.path());
  EXPECT_EQ(fs::path(sharded.file_of("model.norm.weight")).filename(), "model-00003-of-00003.safetensors");
  EXPECT_EQ(fs::path(single.file_of("model.norm.weight")).filename(), "model.safetensors");
}

TEST(Checkpoint, ATensorLargerThanTheLimitGetsAShardOfItsOwn) {
  const TensorSet model = small_model();
  TempDir dir;
  write_checkpoint_tensors(dir.path(), model.tensors(), 100);
  const json index = read_json(dir.file("model.safetensors.index.json"));
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
  EXPECT_EQ(shards.size(), 6u);  // no two neighbours fit in 100 bytes: one shard per tensor
  expect_same_tensors(TensorStore::open_dir(dir.path()), model.tensors());
}

TEST(Checkpoint, RewritingSwitchesLayoutCleanly) {
  const TensorSet model = small_model();
  TempDir dir;
  write_checkpoint_tensors(dir.path(), model.tensors());
  write_checkpoint_tensors(dir.path(), model.tensors(), 4000);
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors")));
  expect_same_tensors(TensorStore::open_dir(dir.path()), model.tensors());
  write_checkpoint_tensors(dir.path(), model.tensors());
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors.index.json")));
  expect_same_tensors(TensorStore::open_dir(dir.path()), model.tensors());
}

TEST(Checkpoint, CreatesTheDirectoryAndRefusesDuplicates) {
  const TensorSet model = small_model();
  TempDir dir;
  const std::string nested = dir.file("a/b/ckpt");
  write_checkpoint_tensors(nested, model.tensors());
  expect_same_tensors(TensorStore::open_dir(nested), model.tensors());
  std::vector<NamedTensor> twice = model.tensors();
  twice.push_back(twice.front());
  EXPECT_TRUE(contains_all(error_message([&] { write_checkpoint_tensors(dir.file("d"), twice, 3000); }),
                           {"'model.embed_tokens.weight'", "twice"}));
}

TEST(Checkpoint, OpensTheHfReferenceCheckpoints) {
  for (const char* name : {"c1_base_f32", "c4_bf16"}) {
    SCOPED_TRACE(name);
    const std::string dir = fixture(std::string("hf-reference/") + name + "/ckpt");
    const TensorStore store = TensorStore::open_dir(dir);
    EXPECT_EQ(store.names().size(), 24u);  // 11 per layer x 2 layers + embedding + final norm
    EXPECT_EQ(store.get("model.layers.1.mlp.input_linear.weight").shape, (Shape{4, 192, 64}));
    EXPECT_FALSE(store.contains("lm_head.weight"));  // tied (spec P11)
    const TensorStore file = TensorStore::open_file(dir + "/model.safetensors");
    EXPECT_EQ(file.names(), store.names());
  }
}

TEST(Checkpoint, DirectoryWithoutWeightsIsAClearError) {
  TempDir dir;
  EXPECT_TRUE(contains_all(error_message([&] { TensorStore::open_dir(dir.path()); }),
                           {dir.path(), "model.safetensors", "model.safetensors.index.json"}));
  EXPECT_TRUE(contains_all(error_message([&] { TensorStore::open_dir(dir.file("missing")); }), {"missing", "does not exist"}));
  testing::write_bytes(dir.file("plain"), "x");
  EXPECT_TRUE(contains_all(error_message([&] { TensorStore::open_dir(dir.file("plain")); }), {"plain", "not a directory"}));
}

TEST(Checkpoint, BothLayoutsAtOnceIsAmbiguous) {
  const TensorSet model = small_model();
  TempDir dir;
  write_checkpoint_tensors(dir.path(), model.tensors(), 3500);
  write_safetensors(dir.file("model.safetensors"), model.tensors());
  EXPECT_TRUE(contains_all(error_message([&] { TensorStore::open_dir(dir.path()); }), {dir.path(), "both"}));
}

TEST(Checkpoint, MissingTensorIsNamed) {
  const TensorSet model = small_model();
  TempDir dir;
  write_checkpoint_tensors(dir.path(), model.tensors());
  const TensorStore store = TensorStore::open_dir(dir.path());
  EXPECT_TRUE(contains_all(error_message([&] { store.get("lm_head.weight"); }), {dir.path(), "'lm_head.weight'"}));
  EXPECT_TRUE(contains_all(error_message([&] { store.file_of("nope"); }), {"'nope'"}));
}

// Broken indexes, each made from a valid 3-shard checkpoint.
class BrokenIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    write_checkpoint_tensors(dir_.path(), model_.tensors(), 3500);
    index_ = read_json(index_path());
  }
  std::string index_path() const { return dir_.file("model.safetensors.index.json"); }
  std::string open_error(const json& index) {
    write_json(index_path(), index);
    return error_message([&] { TensorStore::open_dir(dir_.path()); });
  }

  TensorSet model_ = small_model();
  TempDir dir_;
  json index_;
};

TEST_F(BrokenIndex, MissingShard) {
  fs::remove(dir_.file("model-00002-of-00003.safetensors"));
  EXPECT_TRUE(contains_all(open_error(index_), {"model.safetensors.index.json", "'model-00002-of-00003.safetensors'",
                                                 "'model.layers.0.mlp.input_linear.weight'", "does not exist"}));
}

TEST_F(BrokenIndex, TensorMappedToTheWrongShard) {
  index_["weight_map"]["model.norm.weight"] = "model-00001-of-00003.safetensors";
  EXPECT_TRUE(contains_all(open_error(index_),
                           {"'model.norm.weight'", "'model-00001-of-00003.safetensors'", "does not contain it"}));
}

TEST_F(BrokenIndex, ShardNamesMustStayInsideTheDirectory) {
  for (const char* shard : {"../model-00001-of-00003.safetensors", "sub/model.safetensors", "/etc/passwd", "..", ".",
                            "", "a\\..\\b"}) {
    SCOPED_TRACE(shard);
    json index = index_;
    index["weight_map"]["model.norm.weight"] = shard;
    EXPECT_TRUE(contains_all(open_error(index), {"'model.norm.weight'", "not a plain file name"}));
  }
}

TEST_F(BrokenIndex, TensorStoredInTwoShards) {
  // Shard 3 gets a second copy of the embedding, which the index maps to shard 1.
  std::vector<NamedTensor> third;
  for (const NamedTensor& t : model_.tensors()) {
    if (index_["weight_map"][t.name] == "model-00003-of-00003.safetensors" || t.name == "model.embed_tokens.weight") {
      third.push_back(t);
    }
  }
  write_safetensors(dir_.file("model-00003-of-00003.safetensors"), third);
  EXPECT_TRUE(contains_all(open_error(index_), {"'model.embed_tokens.weight'", "both", "'model-00001-of-00003.safetensors'",
                                                 "'model-00003-of-00003.safetensors'"}));
}

TEST_F(BrokenIndex, TensorInAShardButNotInTheIndex) {
  index_["weight_map"].erase("model.norm.weight");
  EXPECT_TRUE(contains_all(open_error(index_), {"model-00003-of-00003.safetensors", "'model.norm.weight'", "not listed"}));
}

TEST_F(BrokenIndex, MalformedIndexJson) {
  testing::write_bytes(index_path(), "{\"weight_map\": {");
  EXPECT_TRUE(contains_all(error_message([&] { TensorStore::open_dir(dir_.path()); }),
                           {"model.safetensors.index.json", "not valid JSON"}));
  EXPECT_TRUE(contains_all(open_error(json::array()), {"model.safetensors.index.json", "object"}));
  EXPECT_TRUE(contains_all(open_error(json{{"metadata", json::object()}}), {"no 'weight_map'"}));
  EXPECT_TRUE(contains_all(open_error(json{{"weight_map", json::array()}}), {"'weight_map' must be an object"}));
  EXPECT_TRUE(contains_all(open_error(json{{"weight_map", json::object()}}), {"no tensors"}));
  EXPECT_TRUE(contains_all(open_error(json{{"weight_map", {{"model.norm.weight", 3}}}}), {"'model.norm.weight'", "integer"}));
  EXPECT_TRUE(contains_all(open_error(json{{"metadata", "x"}, {"weight_map", index_["weight_map"]}}), {"'metadata'"}));
  testing::write_bytes(index_path(), R"({"weight_map": {"a": "model-00001-of-00003.safetensors",
                                                         "a": "model-00002-of-00003.safetensors"}})");
  EXPECT_TRUE(contains_all(error_message([&] { TensorStore::open_dir(dir_.path()); }), {"'a' twice"}));
}

}  // namespace
}  // namespace jetmoe
