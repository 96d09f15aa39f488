#include "shoal/aggregator/update_fold.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
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

Status check_weight(double weight) {
  if (!(weight > 0.0) || !std::isfinite(weight)) {
    return make_error(ErrorCode::invalid_argument, "update weight " + std::to_string(weight) + " is not positive");
  }
  return ok_status();
}

// A part covers whole parts of `part_values`, the last of which may end at the model's end.
Status check_part(std::size_t offset, std::size_t size, std::size_t parameter_count, std::size_t part_values) {
  const std::size_t end = offset + size;
  if (size == 0 || offset >= parameter_count || size > parameter_count - offset || offset % part_values != 0 ||
      (end % part_values != 0 && end != parameter_count)) {
    return make_error(ErrorCode::invalid_argument,
                      "update part of " + std::to_string(size) + " values at offset " + std::to_string(offset) +
                          " does not fit: the model has " + std::to_string(parameter_count) + " values, in parts of " +
                          std::to_string(part_values));
  }
  return ok_status();
}

Error not_finite(std::span<const float> x, std::size_t offset) {
  const auto at = std::find_if(x.begin(), x.end(), [](float v) { return !std::isfinite(v); });
  return make_error(ErrorCode::invalid_argument,
                    "update has a NaN or infinite value at index " + std::to_string(offset + (at - x.begin())));
}

// Holds every update; the result is computed per coordinate over the column.
class HeldUpdates final : public UpdateCombiner {
 public:
  HeldUpdates(CombinerKind kind, std::size_t parameter_count, double trim_fraction, std::size_t part_values)
      : kind_(kind), parameter_count_(parameter_count), part_values_(part_values), trim_fraction_(trim_fraction) {}

  Status add_part(std::size_t update, std::size_t offset, std::span<const float> part, double weight) override {
    if (auto status = check_weight(weight); !status) return status;
    if (auto status = check_part(offset, part.size(), parameter_count_, part_values_); !status) return status;
    auto& held = pending_[update];
    if (offset != held.size()) {
      return make_error(ErrorCode::invalid_argument, "update part at offset " + std::to_string(offset) +
                                                         " out of order: " + std::to_string(held.size()) +
                                                         " values of this update are in");
    }
    if (!all_finite(part)) return not_finite(part, offset);
    if (held.empty()) held.reserve(parameter_count_);
    held.insert(held.end(), part.begin(), part.end());
    return ok_status();
  }

  Status finish_update(std::size_t update, double weight) override {
    const auto held = pending_.find(update);
    if (held == pending_.end() || held->second.size() != parameter_count_) {
      return make_error(ErrorCode::invalid_argument, "update " + std::to_string(update) + " is not complete");
    }
    updates_.push_back(std::move(held->second));
    pending_.erase(held);
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
  std::size_t part_values_;
  double trim_fraction_;
  std::map<std::size_t, std::vector<float>> pending_;  // updates still arriving, by number
  std::vector<std::vector<float>> updates_;
  double total_weight_ = 0;
};

}  // namespace

std::string_view combiner_name(CombinerKind kind) { return detail::name_of(kNames, kind); }

Result<CombinerKind> parse_combiner(std::string_view name) { return detail::parse_name(kNames, name, "combiner"); }

Status UpdateCombiner::add(std::span<const float> update, double weight) {
  const std::size_t number = count();
  if (auto status = add_part(number, 0, update, weight); !status) return status;
  return finish_update(number, weight);
}

Result<std::unique_ptr<UpdateCombiner>> make_combiner(CombinerKind kind, std::size_t parameter_count,
                                                      double trim_fraction, std::size_t part_values) {
  if (kind == CombinerKind::mean) {
    return std::unique_ptr<UpdateCombiner>(new WeightedMeanFold(parameter_count, part_values));
  }
  if (!(trim_fraction >= 0.0 && trim_fraction < 0.5)) {
    return make_error(ErrorCode::invalid_argument, "trim_fraction must be in [0, 0.5), got " + std::to_string(trim_fraction));
  }
  return std::unique_ptr<UpdateCombiner>(
      new HeldUpdates(kind, parameter_count, trim_fraction, part_values > 0 ? part_values : parameter_count));
}

WeightedMeanFold::WeightedMeanFold(std::size_t parameter_count, std::size_t part_values)
    : sum_(parameter_count, 0.0f),
      part_values_(part_values > 0 ? part_values : std::max<std::size_t>(parameter_count, 1)),
      part_weights_((parameter_count + part_values_ - 1) / part_values_, 0.0) {}

Status WeightedMeanFold::add_part(std::size_t /*update*/, std::size_t offset, std::span<const float> part,
                                  double weight) {
  if (auto status = check_weight(weight); !status) return status;
  if (auto status = check_part(offset, part.size(), sum_.size(), part_values_); !status) return status;
  const auto w = static_cast<float>(weight);
  const auto sum = std::span(sum_).subspan(offset, part.size());
  if (!fold_finite(w, part, sum)) {
    // Take the finite part back out; what remains is rounding in the last
    // bit of the sums, not the refused part.
    fold_finite(-w, part, sum);
    return not_finite(part, offset);
  }
  const std::size_t end = offset + part.size();
  for (std::size_t p = offset / part_values_; p * part_values_ < end; ++p) part_weights_[p] += weight;
  return ok_status();
}

Status WeightedMeanFold::finish_update(std::size_t /*update*/, double weight) {
  ++count_;
  total_weight_ += weight;
  return ok_status();
}

void WeightedMeanFold::divide_by_part_weights(std::span<float> values) const {
  for (std::size_t p = 0; p < part_weights_.size(); ++p) {
    const auto inverse = part_weights_[p] > 0 ? static_cast<float>(1.0 / part_weights_[p]) : 0.0f;
    const std::size_t end = std::min(values.size(), (p + 1) * part_values_);
    for (std::size_t i = p * part_values_; i < end; ++i) values[i] *= inverse;
  }
}

std::vector<float> WeightedMeanFold::result() const {
  std::vector<float> mean(sum_);
  divide_by_part_weights(mean);
  return mean;
}

std::vector<float> WeightedMeanFold::take_result() {
  divide_by_part_weights(sum_);
  count_ = 0;
  total_weight_ = 0;
  std::fill(part_weights_.begin(), part_weights_.end(), 0.0);
  return std::move(sum_);
}

}  // namespace shoal::aggregator
