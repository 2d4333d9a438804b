#include "runtime/penalties.h"

#include <unordered_map>

namespace jetmoe {

void apply_presence_frequency_penalties(std::vector<Candidate>& candidates, std::span<const int32_t> generated,
                                        float presence_penalty, float frequency_penalty) {
  if ((presence_penalty == 0.0f && frequency_penalty == 0.0f) || generated.empty()) return;
  std::unordered_map<int32_t, int64_t> counts;
  for (const int32_t id : generated) ++counts[id];
  for (Candidate& c : candidates) {
    const auto it = counts.find(c.id);
    if (it == counts.end()) continue;
    c.logit -= float(double(it->second) * frequency_penalty + presence_penalty);
  }
}

}  // namespace jetmoe
