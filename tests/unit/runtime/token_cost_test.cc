// token_cost: the bytes one decoding step reads and the FLOPs of one prompt token, against the
// spec §1.8 arithmetic written out here independently of the library.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "model/model.h"
#include "runtime/bench/token_cost.h"
#include "runtime/random_checkpoint.h"

namespace jetmoe {
namespace {

TEST(TokenCost, MatchesActiveParameterArithmetic) {
  JetMoeConfig c;
  c.vocab_size = 300;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 24;
  c.max_position_embeddings = 64;
  for (const bool tied : {true, false}) {
    c.tie_word_embeddings = tied;
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("jetmoe_token_cost_" + std::to_string(tied))).string();
    std::filesystem::remove_all(dir);
    RandomCheckpointOptions options;
    options.dtype = DType::BF16;
    write_random_checkpoint(c, dir, options);
    const std::unique_ptr<Model> model = Model::load(dir);
    const TokenCost cost = token_cost(*model);

    const int64_t d = c.hidden_size, hd = c.num_kv_heads * c.head_dim, F = c.intermediate_size, E = c.num_experts,
                  k = c.top_k, V = c.vocab_size;
    // Per layer: k experts' Wq, Wo, W_in, W_out; shared kv_proj; two routers, two biases, two norms.
    const int64_t layer = k * (2 * hd * d + 3 * F * d) + 2 * hd * d + 2 * E * d + 2 * d + 2 * d;
    const int64_t read_params = c.num_layers * layer + d /* final norm */ + V * d /* head */ + d /* embedding row */;
    EXPECT_DOUBLE_EQ(cost.weight_bytes_per_generated_token, 2.0 * double(read_params)) << "tied " << tied;
    EXPECT_DOUBLE_EQ(cost.flops_per_prompt_token, 2.0 * double(c.num_layers * layer + d)) << "tied " << tied;
    // Training also runs the head over every token, tied to the embedding or not.
    EXPECT_DOUBLE_EQ(cost.flops_per_trained_token, 6.0 * double(c.num_layers * layer + d + c.vocab_size * d))
        << "tied " << tied;
    // A cached position: fp32 K and V rows of H x D in every layer; QK^T and PV for each of the
    // k x H query heads.
    EXPECT_DOUBLE_EQ(cost.kv_bytes_per_cached_position, 4.0 * double(c.num_layers * 2 * hd)) << "tied " << tied;
    EXPECT_DOUBLE_EQ(cost.attention_flops_per_cached_position, double(c.num_layers * k * hd * 2 * 2))
        << "tied " << tied;
    // An F16 cache stores the same K and V values in 2 bytes each; nothing else changes.
    const TokenCost f16 = token_cost(*model, DType::F16);
    EXPECT_DOUBLE_EQ(f16.kv_bytes_per_cached_position, 2.0 * double(c.num_layers * 2 * hd)) << "tied " << tied;
    EXPECT_DOUBLE_EQ(f16.weight_bytes_per_generated_token, cost.weight_bytes_per_generated_token);
    EXPECT_DOUBLE_EQ(f16.attention_flops_per_cached_position, cost.attention_flops_per_cached_position);
    EXPECT_THROW(token_cost(*model, DType::BF16), Error);  // no cache holds BF16
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace jetmoe
