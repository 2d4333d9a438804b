#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "formats/atomic_file.h"

namespace jetmoe {

namespace {

struct Series {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

// One chart: an SVG with axes, min/max labels and a polyline per series.
std::string chart(const std::string& title, const std::vector<Series>& series) {
  constexpr double W = 640, H = 260, left = 60, right = 150, top = 30, bottom = 30;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "'>"
      << "<text x='" << left << "' y='18' font-weight='bold'>" << title << "</text>";
  if (!(x0 <= x1)) return svg.str() + "<text x='60' y='120'>no data yet</text></svg>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  const auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  svg << "<rect x='" << left << "' y='" << top << "' width='" << W - left - right << "' height='" << H - top - bottom
      << "' fill='none' stroke='#999'/>"
      << "<text x='4' y='" << top + 10 << "' font-size='11'>" << number(y1) << "</text>"
      << "<text x='4' y='" << H - bottom << "' font-size='11'>" << number(y0) << "</text>"
      << "<text x='" << left << "' y='" << H - 8 << "' font-size='11'>step " << number(x0) << "</text>"
      << "<text x='" << W - right - 60 << "' y='" << H - 8 << "' font-size='11'>step " << number(x1) << "</text>";
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    svg << "<polyline fill='none' stroke-width='1.5' stroke='" << s.color << "' points='";
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) svg << px(x) << "," << py(y) << " ";
    svg << "'/>";
    const double ly = top + 14 + 16 * double(i);
    svg << "<rect x='" << W - right + 10 << "' y='" << ly - 9 << "' width='10' height='10' fill='" << s.color << "'/>"
        << "<text x='" << W - right + 25 << "' y='" << ly << "' font-size='12'>" << s.label;
    if (!s.points.empty()) svg << " " << number(s.points.back().second);
    svg << "</text>";
  }
  svg << "</svg>";
  return svg.str();
}

}  // namespace

void write_training_plot(const std::string& metrics_path, const std::string& html_path) {
  Series loss{"loss", "#1f77b4", {}}, ce{"ce", "#2ca02c", {}}, eval{"eval loss", "#d62728", {}};
  Series lr{"lr", "#9467bd", {}}, grad{"grad norm", "#ff7f0e", {}}, speed{"tokens/s", "#8c564b", {}};
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || !j["step"].is_number()) continue;
    const double step = j["step"].get<double>();
    const auto add = [&](Series& s, const char* key) {
      if (j.contains(key) && j[key].is_number()) s.points.emplace_back(step, j[key].get<double>());
    };
    add(loss, "loss"), add(ce, "ce"), add(eval, "eval_loss"), add(lr, "lr"), add(grad, "grad_norm");
    add(speed, "tokens_per_s");
  }
  std::ostringstream html;
  html << "<!DOCTYPE html><html><head><meta charset='utf-8'><title>jetmoe training</title></head>"
       << "<body style='font-family:sans-serif'><h2>jetmoe train: " << metrics_path << "</h2>"
       << chart("Loss", {loss, ce, eval}) << "<br>" << chart("Learning rate", {lr}) << "<br>"
       << chart("Gradient norm (before clipping)", {grad}) << "<br>" << chart("Throughput", {speed})
       << "</body></html>\n";
  const std::string text = html.str();
  AtomicFileWriter out(html_path);
  out.write(text.data(), text.size());
  out.commit();
}

}  // namespace jetmoe
