// Backward products: every product is cut into blocks of up to kRowBlock rows x
// kBackwardInputCols or kBackwardWeightCols columns of its output, and the pool threads take
// blocks from one shared counter, so a pass of uneven products (experts with different token
// counts) ends together. Each block runs on the kernel table's backward kernels
// (backward_gemm-inl.h). A block owns its output elements and sums over k in order, so neither
// the cut nor the threads change a result bit.
#include "kernels/backward_products.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/work_queue.h"
#include "kernels/ops.h"

namespace jetmoe::ops {
namespace {

using kernels::cpu::KernelTable;
using kernels::cpu::kBackwardInputCols;
using kernels::cpu::kBackwardWeightCols;

// Output rows per block: a multiple of every ISA's tile rows (12, 6, 4). With 256-deep panels a
// block's A (192 x 256) and C (192 x 128) stay in L2 while it runs.
constexpr int64_t kRowBlock = 192;
constexpr int64_t kTile = 32;

int64_t row_blocks(const BackwardProduct& p) { return (p.m + kRowBlock - 1) / kRowBlock; }
int64_t block_cols(const BackwardProduct& p) {
  return p.kind == BackwardProduct::Kind::Input ? kBackwardInputCols : kBackwardWeightCols;
}
int64_t col_blocks(const BackwardProduct& p) { return (p.n + block_cols(p) - 1) / block_cols(p); }
bool is_empty(const BackwardProduct& p) {
  return p.m == 0 || p.n == 0 || (p.kind == BackwardProduct::Kind::Weight && p.k == 0);
}

// Item i of a list of products cut into `count(p)` items each: (product index, item within it).
class ItemIndex {
 public:
  template <class Count>
  ItemIndex(std::span<const BackwardProduct> products, const Count& count) : first_{0} {
    for (const BackwardProduct& p : products) first_.push_back(first_.back() + (is_empty(p) ? 0 : count(p)));
  }
  int64_t total() const { return first_.back(); }
  std::pair<size_t, int64_t> locate(int64_t item) const {
    const size_t i = size_t(std::upper_bound(first_.begin(), first_.end(), item) - first_.begin() - 1);
    return {i, item - first_[i]};
  }

 private:
  std::vector<int64_t> first_;
};

void check_sizes(const char* op, int64_t T, int64_t out, int64_t in) {
  if (T < 0 || out < 0 || in < 0) fail(op, ": negative size (T ", T, ", out ", out, ", in ", in, ")");
}

// One tile of transpose(); restrict and by-value sizes let the compiler keep them in registers.
void transpose_tile(const float* __restrict a, int64_t rows, int64_t cols, float* __restrict at, int64_t r0, int64_t r1,
                    int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t r = r0; r < r1; ++r) at[c * rows + r] = a[r * cols + c];
}

}  // namespace

BackwardProduct input_gradient(const float* dy, int64_t ldy, int64_t T, const TensorView& W, float* dx, int64_t ldx) {
  JM_CHECK(W.shape.size() == 2, "backward weight must be 2-D, got ", shape_str(W.shape));
  if (W.dtype != DType::F32 && W.dtype != DType::BF16 && W.dtype != DType::F16)
    fail("input gradient through a ", dtype_name(W.dtype), " weight: convert it to F32 first");
  check_sizes("input_gradient", T, W.shape[0], W.shape[1]);
  BackwardProduct p;
  p.kind = BackwardProduct::Kind::Input;
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
  p.kind = BackwardProduct::Kind::Weight;
  p.a = dy, p.lda = ldy;
  p.b = x, p.b_dtype = DType::F32, p.ldb = ldx;
  p.c = dW, p.ldc = in;
  p.m = out, p.n = in, p.k = T;
  return p;
}

void backward_products(std::span<const BackwardProduct> products, ThreadPool& pool, kernels::cpu::Isa isa) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  // Weight gradients first pack their activations (B) whole, in panels, one item per column
  // block; packed[i] is product i's first panel.
  const auto padded_cols = [&](const BackwardProduct& p) {
    return (p.n + kt.backward_panel_cols - 1) / kt.backward_panel_cols * kt.backward_panel_cols;
  };
  std::vector<float*> packed(products.size(), nullptr);
  {
    int64_t floats = 0;
    std::vector<int64_t> offset(products.size(), 0);
    for (size_t i = 0; i < products.size(); ++i)
      if (products[i].kind == BackwardProduct::Kind::Weight && !is_empty(products[i])) {
        offset[i] = floats;
        floats += padded_cols(products[i]) * products[i].k;
      }
    thread_local std::vector<float> storage;
    if (int64_t(storage.size()) < floats) storage.resize(size_t(floats));
    for (size_t i = 0; i < products.size(); ++i)
      if (products[i].kind == BackwardProduct::Kind::Weight) packed[i] = storage.data() + offset[i];
  }
  const ItemIndex packs(products, [](const BackwardProduct& p) {
    return p.kind == BackwardProduct::Kind::Weight ? col_blocks(p) : int64_t(0);
  });
  kernels::cpu::for_each_item(pool, packs.total(), 0, [&](int64_t item, float*) {
    const auto [i, block] = packs.locate(item);
    const BackwardProduct& p = products[i];
    const int64_t c0 = block * kBackwardWeightCols, cols = std::min(kBackwardWeightCols, p.n - c0);
    kt.backward_pack_rows(static_cast<const float*>(p.b), p.ldb, p.k, c0, cols, packed[i] + c0 * p.k);
  });

  // Then every block of every product, rows x columns.
  const ItemIndex blocks(products, [](const BackwardProduct& p) { return row_blocks(p) * col_blocks(p); });
  kernels::cpu::for_each_item(pool, blocks.total(), kernels::cpu::kBackwardGemmScratchFloats,
                              [&](int64_t item, float* scratch) {
    const auto [i, block] = blocks.locate(item);
    const BackwardProduct& p = products[i];
    const int64_t cols_blocks = col_blocks(p);
    const int64_t m0 = (block / cols_blocks) * kRowBlock, c0 = (block % cols_blocks) * block_cols(p);
    const int64_t rows = std::min(kRowBlock, p.m - m0), cols = std::min(block_cols(p), p.n - c0);
    if (p.kind == BackwardProduct::Kind::Input)
      kt.backward_input_block(p.a + m0 * p.lda, p.lda, rows, p.k, p.b, p.b_dtype, p.ldb, c0, cols,
                              p.c + m0 * p.ldc + c0, p.ldc, scratch);
    else
      kt.backward_weight_block(p.a + m0, p.lda, rows, p.k, packed[i] + c0 * p.k, cols, p.c + m0 * p.ldc + c0, p.ldc);
  });
}

void transpose(const float* a, int64_t rows, int64_t cols, float* at, ThreadPool& pool) {
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  pool.parallel_for(row_tiles, [=](int64_t begin, int64_t end) {
    for (int64_t r0 = begin * kTile; r0 < std::min(rows, end * kTile); r0 += kTile)
      for (int64_t c0 = 0; c0 < cols; c0 += kTile)
        transpose_tile(a, rows, cols, at, r0, std::min(rows, r0 + kTile), c0, std::min(cols, c0 + kTile));
  });
}

TransposedWeight::TransposedWeight(const float* W, int64_t out, int64_t in, ThreadPool& pool)
    : out_(out), in_(in), values_(size_t(out * in)) {
  check_sizes("TransposedWeight", 0, out, in);
  transpose(W, out, in, values_.data(), pool);
}

void matmul_backward_input(const float* dy, int64_t T, const TransposedWeight& Wt, float* dx, ThreadPool& pool,
                           kernels::cpu::Isa isa) {
  check_sizes("matmul_backward_input", T, Wt.out(), Wt.in());
  if (T == 0 || Wt.in() == 0) return;
  if (Wt.out() == 0) {
    std::fill(dx, dx + T * Wt.in(), 0.0f);
    return;
  }
  const TensorView view{DType::F32, Shape{Wt.in(), Wt.out()}, Wt.data()};
  matmul_xwT(dy, Wt.out(), T, view, dx, Wt.in(), pool, MatmulOptions{Activations::F32, isa});
}

void matmul_backward_input(const float* dy, int64_t T, const float* W, int64_t out, int64_t in, float* dx,
                           ThreadPool& pool, kernels::cpu::Isa isa) {
  check_sizes("matmul_backward_input", T, out, in);
  const BackwardProduct p = input_gradient(dy, out, T, TensorView{DType::F32, Shape{out, in}, W}, dx, in);
  backward_products({&p, 1}, pool, isa);
}

void matmul_backward_weight(const float* dy, const float* x, int64_t T, int64_t out, int64_t in, float* dW,
                            ThreadPool& pool, kernels::cpu::Isa isa) {
  const BackwardProduct p = weight_gradient(dy, out, x, in, T, out, in, dW);
  backward_products({&p, 1}, pool, isa);
}

}  // namespace jetmoe::ops
