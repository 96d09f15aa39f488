// Combining a round's updates into one.
//
// The default, the sample-weighted mean, folds each update into a running
// sum as it arrives (sum += weight * update), so memory stays one model's
// worth whatever the cohort size and an update's buffer can be released as
// soon as it is folded. Coordinate-wise median and trimmed mean (Yin et al.
// 2018), for plain mode against outlying or poisoned updates, must hold every
// update of the round until it closes: memory grows with the cohort, and
// they ignore sample counts.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/crypto/result.h"

namespace shoal::aggregator {

enum class CombinerKind { mean, median, trimmed_mean };

std::string_view combiner_name(CombinerKind kind);
// "mean", "median", "trimmed_mean"; an unknown name is an error listing these.
Result<CombinerKind> parse_combiner(std::string_view name);

class UpdateCombiner {
 public:
  virtual ~UpdateCombiner() = default;
  // Adds one device's update. Refused when its size is wrong, the weight is
  // not positive and finite, or a value is NaN or infinite; a refused update
  // leaves the combiner as it was (the mean: up to rounding in the last bit).
  virtual Status add(std::span<const float> update, double weight) = 0;
  virtual std::size_t count() const = 0;
  virtual double total_weight() const = 0;
  // The combined update; REQUIRES count() > 0.
  virtual std::vector<float> result() const = 0;
  // The same, leaving the combiner spent; the mean hands over its own sum
  // buffer, so closing a round needs no second model-sized vector.
  virtual std::vector<float> take_result() { return result(); }
};

// trim_fraction: the share of updates dropped at each end of every
// coordinate for trimmed_mean, in [0, 0.5).
Result<std::unique_ptr<UpdateCombiner>> make_combiner(CombinerKind kind, std::size_t parameter_count,
                                                      double trim_fraction = 0.1);

// The streaming weighted mean, exposed for the fold benchmark.
class WeightedMeanFold final : public UpdateCombiner {
 public:
  explicit WeightedMeanFold(std::size_t parameter_count) : sum_(parameter_count, 0.0f) {}
  Status add(std::span<const float> update, double weight) override;
  std::size_t count() const override { return count_; }
  double total_weight() const override { return total_weight_; }
  std::vector<float> result() const override;
  std::vector<float> take_result() override;

 private:
  std::vector<float> sum_;
  std::size_t count_ = 0;
  double total_weight_ = 0;
};

}  // namespace shoal::aggregator
