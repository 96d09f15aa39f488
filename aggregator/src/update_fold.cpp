#include "shoal/aggregator/update_fold.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "enum_names.h"

namespace shoal::aggregator {
namespace {

constexpr detail::NameTable<CombinerKind, 3> kNames = {{
    {CombinerKind::mean, "mean"},
    {CombinerKind::median, "median"},
    {CombinerKind::trimmed_mean, "trimmed_mean"},
}};

// True when no value is NaN or infinite: an all-ones exponent. Written on the
// bit patterns so the loop vectorises.
bool all_finite(std::span<const float> x) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// sum += weight * x in one pass that also checks x: a NaN or infinite value
// adds zero instead (its bits are masked off) and makes the result false.
// Written on bit patterns so it vectorises; one read of x keeps it at memory
// speed.
bool fold_finite(float weight, std::span<const float> x, std::span<float> sum) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    const std::uint32_t not_finite = (bits & 0x7f800000u) == 0x7f800000u;
    bad |= not_finite;
    bits &= not_finite - 1u;  // all ones when finite, zero otherwise
    float value;
    std::memcpy(&value, &bits, sizeof value);
    sum[i] += weight * value;
  }
  return bad == 0;
}

Status check_update(std::span<const float> update, std::size_t expected, double weight) {
  if (update.size() != expected) {
    return make_error(ErrorCode::invalid_argument, "update has " + std::to_string(update.size()) +
                                                       " values, the model has " + std::to_string(expected));
  }
  if (!(weight > 0.0) || !std::isfinite(weight)) {
    return make_error(ErrorCode::invalid_argument, "update weight " + std::to_string(weight) + " is not positive");
  }
  return ok_status();
}

Error not_finite(std::span<const float> x) {
  const auto at = std::find_if(x.begin(), x.end(), [](float v) { return !std::isfinite(v); });
  return make_error(ErrorCode::invalid_argument,
                    "update has a NaN or infinite value at index " + std::to_string(at - x.begin()));
}

// Holds every update; the result is computed per coordinate over the column.
class HeldUpdates final : public UpdateCombiner {
 public:
  HeldUpdates(CombinerKind kind, std::size_t parameter_count, double trim_fraction)
      : kind_(kind), parameter_count_(parameter_count), trim_fraction_(trim_fraction) {}

  Status add(std::span<const float> update, double weight) override {
    if (auto status = check_update(update, parameter_count_, weight); !status) return status;
    if (!all_finite(update)) return not_finite(update);
    updates_.emplace_back(update.begin(), update.end());
    total_weight_ += weight;
    return ok_status();
  }
  std::size_t count() const override { return updates_.size(); }
  double total_weight() const override { return total_weight_; }

  std::vector<float> result() const override {
    const std::size_t n = updates_.size();
    const std::size_t trim = kind_ == CombinerKind::trimmed_mean ? static_cast<std::size_t>(trim_fraction_ * n) : 0;
    std::vector<float> out(parameter_count_);
    std::vector<float> column(n);
    for (std::size_t i = 0; i < parameter_count_; ++i) {
      for (std::size_t j = 0; j < n; ++j) column[j] = updates_[j][i];
      if (kind_ == CombinerKind::median) {
        const auto middle = column.begin() + static_cast<std::ptrdiff_t>(n / 2);
        std::nth_element(column.begin(), middle, column.end());
        float value = *middle;
        if (n % 2 == 0) value = 0.5f * (value + *std::max_element(column.begin(), middle));
        out[i] = value;
      } else {
        std::sort(column.begin(), column.end());
        double sum = 0;
        for (std::size_t j = trim; j < n - trim; ++j) sum += column[j];
        out[i] = static_cast<float>(sum / static_cast<double>(n - 2 * trim));
      }
    }
    return out;
  }

 private:
  CombinerKind kind_;
  std::size_t parameter_count_;
  double trim_fraction_;
  std::vector<std::vector<float>> updates_;
  double total_weight_ = 0;
};

}  // namespace

std::string_view combiner_name(CombinerKind kind) { return detail::name_of(kNames, kind); }

Result<CombinerKind> parse_combiner(std::string_view name) { return detail::parse_name(kNames, name, "combiner"); }

Result<std::unique_ptr<UpdateCombiner>> make_combiner(CombinerKind kind, std::size_t parameter_count,
                                                      double trim_fraction) {
  if (kind == CombinerKind::mean) return std::unique_ptr<UpdateCombiner>(new WeightedMeanFold(parameter_count));
  if (!(trim_fraction >= 0.0 && trim_fraction < 0.5)) {
    return make_error(ErrorCode::invalid_argument, "trim_fraction must be in [0, 0.5), got " + std::to_string(trim_fraction));
  }
  return std::unique_ptr<UpdateCombiner>(new HeldUpdates(kind, parameter_count, trim_fraction));
}

Status WeightedMeanFold::add(std::span<const float> update, double weight) {
  if (auto status = check_update(update, sum_.size(), weight); !status) return status;
  const auto w = static_cast<float>(weight);
  if (!fold_finite(w, update, sum_)) {
    // Take the finite part back out; what remains is rounding in the last
    // bit of the sums, not the refused update.
    fold_finite(-w, update, sum_);
    return not_finite(update);
  }
  ++count_;
  total_weight_ += weight;
  return ok_status();
}

std::vector<float> WeightedMeanFold::result() const {
  std::vector<float> mean(sum_);
  const auto inverse = static_cast<float>(1.0 / total_weight_);
  for (auto& value : mean) value *= inverse;
  return mean;
}

std::vector<float> WeightedMeanFold::take_result() {
  const auto inverse = static_cast<float>(1.0 / total_weight_);
  for (auto& value : sum_) value *= inverse;
  count_ = 0;
  total_weight_ = 0;
  return std::move(sum_);
}

}  // namespace shoal::aggregator
