// The window plan of the perplexity evaluation, checked by the properties the recipe promises
// rather than by listing windows: every token but the first is scored once (with overlap), each
// scored token sees at least context - stride tokens of its window before it, and no window is
// longer than the context.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "runtime/perplexity.h"

namespace jetmoe {
namespace {

struct Plan {
  int64_t n, context, stride;
};

std::vector<int> times_scored(const Plan& p, const std::vector<PerplexityWindow>& windows) {
  std::vector<int> times(size_t(p.n), 0);
  for (const PerplexityWindow& w : windows)
    for (int64_t t = w.first_scored; t < w.end; ++t) ++times[size_t(t)];
  return times;
}

TEST(PerplexityWindows, OverlappingWindowsScoreEveryTokenOnceWithEnoughContext) {
  for (const Plan p : {Plan{10, 4, 2}, Plan{150, 32, 12}, Plan{150, 7, 1}, Plan{101, 40, 39}, Plan{5, 8, 3},
                       Plan{2, 2, 1}, Plan{1000, 512, 256}}) {
    SCOPED_TRACE(testing::Message() << "n " << p.n << " context " << p.context << " stride " << p.stride);
    const std::vector<PerplexityWindow> windows = perplexity_windows(p.n, p.context, p.stride);
    const std::vector<int> times = times_scored(p, windows);
    EXPECT_EQ(times[0], 0);
    for (int64_t t = 1; t < p.n; ++t) EXPECT_EQ(times[size_t(t)], 1) << "token " << t;
    for (const PerplexityWindow& w : windows) {
      EXPECT_EQ(w.begin % p.stride, 0);
      EXPECT_LE(w.end - w.begin, p.context);
      EXPECT_GT(w.end, w.first_scored);
      EXPECT_GT(w.first_scored, w.begin);
      // Context inside the window before each scored token: all of it from the start of the text,
      // else at least context - stride.
      EXPECT_GE(w.first_scored - w.begin, std::min(w.first_scored, p.context - p.stride));
    }
    EXPECT_EQ(windows.back().end, p.n);
  }
}

TEST(PerplexityWindows, DisjointWindowsSkipEachWindowsFirstToken) {
  for (const Plan p : {Plan{10, 4, 4}, Plan{9, 4, 4}, Plan{8, 4, 4}, Plan{3, 512, 512}, Plan{1025, 512, 512}}) {
    SCOPED_TRACE(testing::Message() << "n " << p.n << " context " << p.context);
    const std::vector<PerplexityWindow> windows = perplexity_windows(p.n, p.context, p.stride);
    const std::vector<int> times = times_scored(p, windows);
    for (int64_t t = 0; t < p.n; ++t) EXPECT_EQ(times[size_t(t)], t % p.context == 0 ? 0 : 1) << "token " << t;
    // A 1-token tail (n = k * context + 1) scores nothing and is not run.
    EXPECT_EQ(int64_t(windows.size()), (p.n - 2) / p.context + 1);
  }
}

TEST(PerplexityWindows, RejectsBadContextAndStride) {
  EXPECT_THROW(perplexity_windows(10, 1, 1), Error);
  EXPECT_THROW(perplexity_windows(10, 4, 0), Error);
  EXPECT_THROW(perplexity_windows(10, 4, 5), Error);
  try {
    perplexity_windows(10, 4, 5);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stride"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace jetmoe
