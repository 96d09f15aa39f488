#include "shoal/simulations/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <vector>

#include "shoal/base/durable_file.h"

namespace shoal::simulations {
namespace {

constexpr double kPanelWidth = 520, kPanelHeight = 280;
constexpr double kLeft = 60, kRight = 60, kTop = 70, kBottom = 44;  // margins inside a panel; legends sit above the plot

std::string number(double value, const char* format = "%.4g") {
  char text[32];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A "nice" number at or above `value`: 1, 2 or 5 times a power of ten.
double nice_ceiling(double value) {
  if (!(value > 0)) return 1;
  const double power = std::pow(10, std::floor(std::log10(value)));
  for (double step : {1.0, 2.0, 5.0, 10.0}) {
    if (step * power >= value * (1 - 1e-9)) return step * power;
  }
  return 10 * power;
}

// An axis from 0 to a multiple of a nice step, with about four ticks.
struct Axis {
  explicit Axis(double max, bool whole = false) {
    step = nice_ceiling((max > 0 ? max : 1) / 4);
    if (whole) step = std::max(1.0, std::round(step));
    top = std::ceil((max > 0 ? max : 1) / step - 1e-9) * step;
  }
  double step, top;
};

struct Series {
  std::string name;
  std::string colour;
  std::vector<std::pair<double, double>> points;
  bool right_axis = false;
};

// One chart: axes, ticks, polylines or bars, a legend.
class Panel {
 public:
  Panel(std::ostringstream& svg, double x, double y, std::string title) : svg_(svg), x_(x), y_(y) {
    svg_ << "<g transform=\"translate(" << x_ << "," << y_ << ")\">\n"
         << "<rect width=\"" << kPanelWidth << "\" height=\"" << kPanelHeight << "\" fill=\"#fff\" stroke=\"#ddd\"/>\n"
         << "<text x=\"" << kPanelWidth / 2 << "\" y=\"22\" text-anchor=\"middle\" font-weight=\"bold\">"
         << escape(title) << "</text>\n";
  }
  ~Panel() { svg_ << "</g>\n"; }

  // `whole_x`: the x axis counts rounds, so its ticks are whole numbers.
  void axes(double x_max, bool whole_x, double y_max, const std::string& x_label, const std::string& y_label,
            double right_max = 0, const std::string& right_label = "") {
    const Axis x_axis(x_max, whole_x), y_axis(y_max);
    x_max_ = x_axis.top;
    y_max_ = y_axis.top;
    const double bottom = kPanelHeight - kBottom;
    svg_ << "<path d=\"M" << kLeft << "," << kTop << " V" << bottom << " H" << kPanelWidth - kRight
         << "\" fill=\"none\" stroke=\"#333\"/>\n";
    for (double y = 0; y <= y_max_ * (1 + 1e-9); y += y_axis.step) {
      const double at = py(y, false);
      svg_ << "<line x1=\"" << kLeft << "\" x2=\"" << kPanelWidth - kRight << "\" y1=\"" << at << "\" y2=\"" << at
           << "\" stroke=\"#eee\"/>\n"
           << "<text x=\"" << kLeft - 6 << "\" y=\"" << at + 4 << "\" text-anchor=\"end\">" << number(y) << "</text>\n";
    }
    if (right_max > 0) {
      const Axis right_axis(right_max);
      right_max_ = right_axis.top;
      for (double y = 0; y <= right_max_ * (1 + 1e-9); y += right_axis.step) {
        svg_ << "<text x=\"" << kPanelWidth - kRight + 6 << "\" y=\"" << py(y, true) + 4 << "\">" << number(y)
             << "</text>\n";
      }
    }
    for (double x = 0; x <= x_max_ * (1 + 1e-9); x += x_axis.step) {
      svg_ << "<text x=\"" << px(x) << "\" y=\"" << bottom + 16 << "\" text-anchor=\"middle\">" << number(x)
           << "</text>\n";
    }
    svg_ << "<text x=\"" << (kPanelWidth + kLeft - kRight) / 2 << "\" y=\"" << kPanelHeight - 8
         << "\" text-anchor=\"middle\">" << escape(x_label) << "</text>\n"
         << "<text transform=\"translate(14," << (kTop + bottom) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
         << escape(y_label) << "</text>\n";
    if (!right_label.empty()) {
      svg_ << "<text transform=\"translate(" << kPanelWidth - 12 << "," << (kTop + bottom) / 2
           << ") rotate(90)\" text-anchor=\"middle\">" << escape(right_label) << "</text>\n";
    }
  }

  void line(const Series& series) {
    if (series.points.empty()) return;
    svg_ << "<polyline fill=\"none\" stroke=\"" << series.colour << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : series.points) svg_ << px(x) << "," << py(y, series.right_axis) << " ";
    svg_ << "\"/>\n";
    legend(series.name, series.colour);
  }

  // Stacked bars: one per x, the layers bottom to top.
  void stacked_bars(const std::vector<double>& xs, const std::vector<Series>& layers) {
    const double slot = (kPanelWidth - kLeft - kRight) / std::max<double>(1, x_max_);
    const double width = std::max(1.0, slot * 0.7);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      double base = 0;
      for (const auto& layer : layers) {
        const double value = layer.points[i].second;
        if (value <= 0) continue;
        const double top = py(base + value, false), bottom = py(base, false);
        svg_ << "<rect x=\"" << px(xs[i]) - width / 2 << "\" y=\"" << top << "\" width=\"" << width << "\" height=\""
             << bottom - top << "\" fill=\"" << layer.colour << "\"/>\n";
        base += value;
      }
    }
    for (const auto& layer : layers) {
      const bool used = std::any_of(layer.points.begin(), layer.points.end(), [](const auto& p) { return p.second > 0; });
      if (used) legend(layer.name, layer.colour);
    }
  }

 private:
  double px(double x) const { return kLeft + x / x_max_ * (kPanelWidth - kLeft - kRight); }
  double py(double y, bool right) const {
    const double max = right ? right_max_ : y_max_;
    const double bottom = kPanelHeight - kBottom;
    return bottom - (max > 0 ? std::clamp(y / max, 0.0, 1.0) : 0) * (bottom - kTop);
  }
  void legend(const std::string& name, const std::string& colour) {
    const double lx = kLeft + 150 * (legends_ % 3), ly = 32 + 16 * static_cast<double>(legends_ / 3);
    svg_ << "<rect x=\"" << lx << "\" y=\"" << ly << "\" width=\"10\" height=\"10\" fill=\"" << colour << "\"/>"
         << "<text x=\"" << lx + 14 << "\" y=\"" << ly + 9 << "\">" << escape(name) << "</text>\n";
    ++legends_;
  }

  std::ostringstream& svg_;
  double x_, y_;
  double x_max_ = 1, y_max_ = 1, right_max_ = 0;
  int legends_ = 0;
};

}  // namespace

std::string render_report(const SimulationConfig& config, const SimulationResult& result) {
  const auto& rounds = result.rounds;
  const bool private_rounds = std::any_of(rounds.begin(), rounds.end(), [](const auto& r) { return r.record.delta > 0; });
  const int panels = private_rounds ? 5 : 4;
  const double width = 2 * kPanelWidth + 30, height = 70 + ((panels + 1) / 2) * (kPanelHeight + 10);
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"#f7f7f7\"/>\n"
      << "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">shoal-sim: " << config.devices << " devices, "
      << escape(config.model) << ", " << rounds.size() << " rounds"
      << (config.round.secure.enabled ? ", secure aggregation" : ", plain aggregation") << "</text>\n"
      << "<text x=\"10\" y=\"44\">final test accuracy " << number(result.final_accuracy, "%.4f") << " (from "
      << number(result.initial_accuracy, "%.4f") << "); " << number(result.virtual_seconds / 3600, "%.2f")
      << " virtual hours in " << number(result.seconds, "%.1f") << " s</text>\n";

  const double last_round = rounds.empty() ? 1 : static_cast<double>(rounds.back().record.round);
  auto at = [&](int index) { return std::pair<double, double>{10 + (index % 2) * (kPanelWidth + 10), 60 + (index / 2) * (kPanelHeight + 10)}; };

  Series accuracy{"test accuracy", "#1f77b4", {{0, result.initial_accuracy}}};
  Series loss{"test loss", "#d62728", {{0, result.initial_loss}}, true};
  Series by_hour{"test accuracy", "#1f77b4", {{0, result.initial_accuracy}}};
  Series up{"MB up", "#2ca02c", {}}, down{"MB down", "#9467bd", {}};
  Series epsilon{"epsilon", "#8c564b", {}};
  double max_loss = result.initial_loss, max_mb = 0, max_epsilon = 0;
  for (const auto& round : rounds) {
    const auto x = static_cast<double>(round.record.round);
    accuracy.points.emplace_back(x, round.test_accuracy);
    loss.points.emplace_back(x, round.test_loss);
    by_hour.points.emplace_back(round.virtual_seconds / 3600, round.test_accuracy);
    up.points.emplace_back(x, static_cast<double>(round.costs.bytes_in) / 1e6);
    down.points.emplace_back(x, static_cast<double>(round.costs.bytes_out) / 1e6);
    if (round.record.delta > 0) epsilon.points.emplace_back(x, round.record.epsilon);
    max_loss = std::max(max_loss, round.test_loss);
    max_mb = std::max({max_mb, up.points.back().second, down.points.back().second});
    max_epsilon = std::max(max_epsilon, round.record.epsilon);
  }
  {
    auto [x, y] = at(0);
    Panel panel(svg, x, y, "Test accuracy and loss by round");
    panel.axes(last_round, true, 1, "round", "accuracy", max_loss, "loss");
    panel.line(accuracy);
    panel.line(loss);
  }
  {
    auto [x, y] = at(1);
    Panel panel(svg, x, y, "Test accuracy by virtual hour");
    panel.axes(by_hour.points.back().first, false, 1, "virtual hours", "accuracy");
    panel.line(by_hour);
  }
  {
    auto [x, y] = at(2);
    Panel panel(svg, x, y, "Participation by round");
    std::vector<double> xs;
    std::vector<Series> layers{{"reported", "#1f77b4", {}}, {"refused", "#7f7f7f", {}}};
    const char* phases[] = {"training", "advertising", "sharing", "masking", "unmasking"};
    const char* colours[] = {"#ff7f0e", "#ffbb78", "#d62728", "#ff9896", "#c5b0d5"};
    for (int i = 0; i < 5; ++i) layers.push_back({std::string("dropped: ") + phases[i], colours[i], {}});
    double max_cohort = 1;
    for (const auto& round : rounds) {
      const auto& record = round.record;
      xs.push_back(static_cast<double>(record.round));
      max_cohort = std::max(max_cohort, static_cast<double>(record.cohort));
      std::vector<double> lost(5, 0);
      double before = static_cast<double>(record.cohort);
      for (const auto& phase : record.phases) {
        for (int i = 0; i < 5; ++i) {
          if (std::string(phase.phase) == phases[i]) lost[i] += before - static_cast<double>(phase.members);
        }
        before = static_cast<double>(phase.members);
      }
      const double rejected = record.secure ? 0 : static_cast<double>(record.rejected);
      layers[0].points.emplace_back(record.round, static_cast<double>(record.reported));
      layers[1].points.emplace_back(record.round, rejected);
      for (int i = 0; i < 5; ++i) layers[2 + i].points.emplace_back(record.round, std::max(0.0, lost[i] - (i == 0 ? rejected : 0)));
    }
    panel.axes(last_round + 1, true, max_cohort, "round", "devices picked");
    panel.stacked_bars(xs, layers);
  }
  {
    auto [x, y] = at(3);
    Panel panel(svg, x, y, "Bytes by round");
    panel.axes(last_round, true, max_mb, "round", "MB");
    panel.line(up);
    panel.line(down);
  }
  if (private_rounds) {
    auto [x, y] = at(4);
    Panel panel(svg, x, y, "Privacy spent by round (delta " + number(config.round.privacy.delta, "%g") + ")");
    panel.axes(last_round, true, max_epsilon, "round", "epsilon");
    panel.line(epsilon);
  }
  svg << "</svg>\n";
  return svg.str();
}

Status write_report(const std::filesystem::path& path, const SimulationConfig& config, const SimulationResult& result) {
  return base::write_file_durably(path, render_report(config, result));
}

}  // namespace shoal::simulations
