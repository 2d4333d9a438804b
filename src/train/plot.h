// A self-contained HTML page (inline SVG, no scripts or network) with the curves of a run:
// training loss and cross-entropy with the held-out loss, learning rate, gradient norm and
// tokens/s, read from metrics.jsonl.
#pragma once

#include <string>

namespace jetmoe {

// Reads `metrics_path` and writes `html_path` (atomically). Malformed lines are skipped.
void write_training_plot(const std::string& metrics_path, const std::string& html_path);

}  // namespace jetmoe
