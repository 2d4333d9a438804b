// Backward products in two parallel passes. The first prepares operands: the activations of a
// weight gradient packed into panels once per product (not once per block of its many output
// rows) and, in bf16 training, the operands rounded to bf16 — as pairs for the bf16 dot-product
// kernels, or as rounded fp32 where the CPU lacks them. The second cuts every product into blocks
// of its output (up to kInputRowBlock rows x kBackwardInputCols columns of an input gradient,
// kRowBlock x kBackwardWeightCols of a weight gradient), which the pool threads take from one
// shared counter, so a pass of uneven products (experts with different token counts) ends
// together. A block owns its output elements and sums over k in order, so neither the cut nor
// the threads change a result bit.
#include "kernels/backward_products.h"

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/work_queue.h"

namespace jetmoe::ops {
namespace {

using kernels::cpu::KernelTable;
using kernels::cpu::kBackwardInputCols;
using kernels::cpu::kBackwardWeightCols;
using Kind = BackwardProduct::Kind;

// Output rows per block: a multiple of every ISA's tile rows (12, 6, 4). A weight gradient
// block's C (192 x 256) stays in L2 while each kBackwardWeightDepth-token pass runs.
constexpr int64_t kRowBlock = 192;
// An input gradient block packs its columns of W (all of W's rows) for itself, so it takes
// more rows to spread that copy over: 576 rows ran the 512-token experts and the head's
// 1024-token chunks at 73-80% of the bf16 peak, against 62-73% with 192 (bench/kernel_lab.sh train).
constexpr int64_t kInputRowBlock = 576;
// Rows of dy rounded, or columns of dy paired, per preparation item.
constexpr int64_t kPrepareRows = 64;
constexpr int64_t kPrepareColumns = 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

int64_t row_block(const BackwardProduct& p) { return p.kind == Kind::Input ? kInputRowBlock : kRowBlock; }

int64_t block_cols(const BackwardProduct& p) {
  return p.kind == Kind::Input ? kBackwardInputCols : kBackwardWeightCols;
}
bool is_empty(const BackwardProduct& p) { return p.m == 0 || p.n == 0 || (p.kind == Kind::Weight && p.k == 0); }

void check_sizes(const char* op, int64_t T, int64_t out, int64_t in) {
  if (T < 0 || out < 0 || in < 0) fail(op, ": negative size (T ", T, ", out ", out, ", in ", in, ")");
}

// How one product runs, and the operand copies it reads (in the pass's arena, 4-byte units).
struct Plan {
  enum class Path : uint8_t { F32, RoundedF32, Bf16Dot } path = Path::F32;
  const float* a = nullptr;  // dy as the fp32 kernels read it (the product's, or its rounded copy)
  int64_t lda = 0;
  float* rounded_a = nullptr;      // RoundedF32: dy rounded to bf16, [rows of dy, lda]
  uint32_t* a_pairs = nullptr;     // Bf16Dot: dy as pairs (input: rows of pairs; weight: token pairs)
  int64_t lda_pairs = 0;
  float* packed_b = nullptr;       // weight gradients: x in fp32 panels (F32 / RoundedF32)
  uint32_t* packed_b_pairs = nullptr;  // weight gradients on Bf16Dot: x in pair panels
};

// One item of the preparation pass: rows [begin, end) of a product's dy, or its column block
// `begin` of x, or columns [begin, end) of its dy as token pairs.
struct PrepareItem {
  enum class Task : uint8_t { RoundRows, PackB, PairColumns } task;
  size_t product;
  int64_t begin, end;
};

Plan::Path choose_path(const BackwardProduct& p, const MatmulOptions& options, const KernelTable& kt) {
  const bool bf16 = options.activations == Activations::BF16 && (p.kind == Kind::Weight || p.b_dtype == DType::BF16);
  if (!bf16) return Plan::Path::F32;
  return kt.backward_weight_block_bf16 != nullptr ? Plan::Path::Bf16Dot : Plan::Path::RoundedF32;
}

// Chooses each product's path, lays out its operand copies in one per-thread arena (kept from
// call to call, like the kernels' scratch) and lists the items that fill them.
std::vector<Plan> plan_products(std::span<const BackwardProduct> products, const MatmulOptions& options,
                                const KernelTable& kt, std::vector<PrepareItem>& items) {
  std::vector<Plan> plans(products.size());
  int64_t used = 0;
  const auto take = [&](int64_t units) {
    const int64_t at = used;
    used += units;
    return at;
  };
  struct Layout {
    int64_t a = -1, b = -1;
  };
  std::vector<Layout> layout(products.size());
  for (size_t i = 0; i < products.size(); ++i) {
    const BackwardProduct& p = products[i];
    Plan& plan = plans[i];
    plan.path = choose_path(p, options, kt);
    plan.a = p.a, plan.lda = p.lda;
    if (is_empty(p)) continue;
    const int64_t dy_rows = p.kind == Kind::Input ? p.m : p.k, dy_cols = p.kind == Kind::Input ? p.k : p.m;
    if (plan.path == Plan::Path::RoundedF32) {
      plan.lda = dy_cols;
      layout[i].a = take(dy_rows * dy_cols);
      for (int64_t r = 0; r < dy_rows; r += kPrepareRows)
        items.push_back({PrepareItem::Task::RoundRows, i, r, std::min(dy_rows, r + kPrepareRows)});
    } else if (plan.path == Plan::Path::Bf16Dot && p.kind == Kind::Input) {
      plan.lda_pairs = ceil_div(p.k, 2);
      layout[i].a = take(p.m * plan.lda_pairs);
      for (int64_t r = 0; r < p.m; r += kPrepareRows)
        items.push_back({PrepareItem::Task::RoundRows, i, r, std::min(p.m, r + kPrepareRows)});
    } else if (plan.path == Plan::Path::Bf16Dot) {
      plan.lda_pairs = round_up(p.m, 16);  // pack_pair_columns writes whole vectors of columns
      layout[i].a = take(ceil_div(p.k, 2) * plan.lda_pairs);
      for (int64_t c = 0; c < p.m; c += kPrepareColumns)
        items.push_back({PrepareItem::Task::PairColumns, i, c, std::min(p.m, c + kPrepareColumns)});
    }
    if (p.kind == Kind::Weight) {
      const int64_t depth = plan.path == Plan::Path::Bf16Dot ? ceil_div(p.k, 2) : p.k;
      layout[i].b = take(round_up(p.n, kt.backward_panel_cols) * depth);
      for (int64_t block = 0; block < ceil_div(p.n, kBackwardWeightCols); ++block)
        items.push_back({PrepareItem::Task::PackB, i, block, block + 1});
    }
  }
  thread_local std::vector<float> arena;
  if (int64_t(arena.size()) < used) arena.resize(size_t(used));
  for (size_t i = 0; i < products.size(); ++i) {
    Plan& plan = plans[i];
    float* a = layout[i].a >= 0 ? arena.data() + layout[i].a : nullptr;
    float* b = layout[i].b >= 0 ? arena.data() + layout[i].b : nullptr;
    if (plan.path == Plan::Path::Bf16Dot) {
      plan.a_pairs = reinterpret_cast<uint32_t*>(a);
      plan.packed_b_pairs = reinterpret_cast<uint32_t*>(b);
    } else {
      if (plan.path == Plan::Path::RoundedF32) plan.rounded_a = a, plan.a = a;
      plan.packed_b = b;
    }
  }
  return plans;
}

// v rounded to bf16 (nearest even) and back: what a bf16 operand holds.
float bf16_value(float v) { return bf16_to_f32(f32_to_bf16(v)); }

void prepare(const PrepareItem& item, const BackwardProduct& p, const Plan& plan, const KernelTable& kt) {
  switch (item.task) {
    case PrepareItem::Task::RoundRows: {
      const int64_t n = p.kind == Kind::Input ? p.k : p.m;  // values per row of dy
      for (int64_t r = item.begin; r < item.end; ++r) {
        const float* src = p.a + r * p.lda;
        if (plan.path == Plan::Path::RoundedF32) {
          std::transform(src, src + n, plan.rounded_a + r * plan.lda, bf16_value);
        } else {  // a row of pairs is the row in bf16, with a zero after an odd count
          auto* row = reinterpret_cast<uint16_t*>(plan.a_pairs + r * plan.lda_pairs);
          kt.round_to_bf16(src, row, n);
          if (n % 2 != 0) row[n] = 0;
        }
      }
      return;
    }
    case PrepareItem::Task::PairColumns:
      kt.backward_pack_pair_columns(p.a, p.lda, p.k, item.begin, item.end - item.begin, plan.a_pairs + item.begin,
                                    plan.lda_pairs);
      return;
    case PrepareItem::Task::PackB: {
      const int64_t c0 = item.begin * kBackwardWeightCols, cols = std::min(kBackwardWeightCols, p.n - c0);
      const auto* x = static_cast<const float*>(p.b);
      if (plan.path == Plan::Path::Bf16Dot) {
        kt.backward_pack_pair_rows(x, p.ldb, p.k, c0, cols, plan.packed_b_pairs + c0 * ceil_div(p.k, 2));
        return;
      }
      float* panels = plan.packed_b + c0 * p.k;
      kt.backward_pack_rows(x, p.ldb, p.k, c0, cols, panels);
      if (plan.path == Plan::Path::RoundedF32)  // rounding commutes with packing
        std::transform(panels, panels + round_up(cols, kt.backward_panel_cols) * p.k, panels, bf16_value);
      return;
    }
  }
}

void run_block(const BackwardProduct& p, const Plan& plan, const KernelTable& kt, int64_t m0, int64_t rows,
               int64_t c0, int64_t cols, float* scratch) {
  float* c = p.c + m0 * p.ldc + c0;
  if (p.kind == Kind::Input) {
    if (plan.path == Plan::Path::Bf16Dot)
      kt.backward_input_block_bf16(plan.a_pairs + m0 * plan.lda_pairs, plan.lda_pairs, rows, p.k,
                                   static_cast<const uint16_t*>(p.b), p.ldb, c0, cols, c, p.ldc, scratch);
    else
      kt.backward_input_block(plan.a + m0 * plan.lda, plan.lda, rows, p.k, p.b, p.b_dtype, p.ldb, c0, cols, c, p.ldc,
                              scratch);
  } else if (plan.path == Plan::Path::Bf16Dot) {
    kt.backward_weight_block_bf16(plan.a_pairs + m0, plan.lda_pairs, rows, p.k,
                                  plan.packed_b_pairs + c0 * ceil_div(p.k, 2), cols, c, p.ldc);
  } else {
    kt.backward_weight_block(plan.a + m0, plan.lda, rows, p.k, plan.packed_b + c0 * p.k, cols, c, p.ldc);
  }
}

}  // namespace

BackwardProduct input_gradient(const float* dy, int64_t ldy, int64_t T, const TensorView& W, float* dx, int64_t ldx) {
  JM_CHECK(W.shape.size() == 2, "backward weight must be 2-D, got ", shape_str(W.shape));
  if (W.dtype != DType::F32 && W.dtype != DType::BF16 && W.dtype != DType::F16)
    fail("input gradient through a ", dtype_name(W.dtype), " weight: convert it to F32 first");
  check_sizes("input_gradient", T, W.shape[0], W.shape[1]);
  BackwardProduct p;
  p.kind = Kind::Input;
  p.a = dy, p.lda = ldy;
  p.b = W.data, p.b_dtype = W.dtype, p.ldb = W.shape[1];
  p.c = dx, p.ldc = ldx;
  p.m = T, p.n = W.shape[1], p.k = W.shape[0];
  return p;
}

BackwardProduct weight_gradient(const float* dy, int64_t ldy, const float* x, int64_t ldx, int64_t T, int64_t out,
                                int64_t in, float* dW) {
  check_sizes("weight_gradient", T, out, in);
  BackwardProduct p;
  p.kind = Kind::Weight;
  p.a = dy, p.lda = ldy;
  p.b = x, p.b_dtype = DType::F32, p.ldb = ldx;
  p.c = dW, p.ldc = in;
  p.m = out, p.n = in, p.k = T;
  return p;
}

void backward_products(std::span<const BackwardProduct> products, ThreadPool& pool, const MatmulOptions& options) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(options.isa);
  std::vector<PrepareItem> items;
  const std::vector<Plan> plans = plan_products(products, options, kt, items);
  kernels::cpu::for_each_item(pool, int64_t(items.size()), 0, [&](int64_t i, float*) {
    const PrepareItem& item = items[size_t(i)];
    prepare(item, products[item.product], plans[item.product], kt);
  });

  // Then every block of every product, rows x columns: block b of product i is item first[i] + b.
  std::vector<int64_t> first{0};
  for (const BackwardProduct& p : products)
    first.push_back(first.back() + (is_empty(p) ? 0 : ceil_div(p.m, row_block(p)) * ceil_div(p.n, block_cols(p))));
  kernels::cpu::for_each_item(pool, first.back(), kernels::cpu::kBackwardGemmScratchFloats,
                              [&](int64_t item, float* scratch) {
    const size_t i = size_t(std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1);
    const BackwardProduct& p = products[i];
    const int64_t block = item - first[i], col_blocks = ceil_div(p.n, block_cols(p));
    const int64_t m0 = (block / col_blocks) * row_block(p), c0 = (block % col_blocks) * block_cols(p);
    run_block(p, plans[i], kt, m0, std::min(row_block(p), p.m - m0), c0, std::min(block_cols(p), p.n - c0), scratch);
  });
}

void matmul_backward_input(const float* dy, int64_t T, const TensorView& W, float* dx, ThreadPool& pool,
                           const MatmulOptions& options) {
  const BackwardProduct p = input_gradient(dy, W.shape.size() == 2 ? W.shape[0] : 0, T, W, dx,
                                           W.shape.size() == 2 ? W.shape[1] : 0);
  backward_products({&p, 1}, pool, options);
}

void matmul_backward_weight(const float* dy, const float* x, int64_t T, int64_t out, int64_t in, float* dW,
                            ThreadPool& pool, const MatmulOptions& options) {
  const BackwardProduct p = weight_gradient(dy, out, x, in, T, out, in, dW);
  backward_products({&p, 1}, pool, options);
}

}  // namespace jetmoe::ops
