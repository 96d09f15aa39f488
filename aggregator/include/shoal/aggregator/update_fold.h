// Combining a round's updates into one.
//
// The default, the sample-weighted mean, folds each part of an update into a
// running sum as it arrives (sum += weight * part), so memory stays one
// model's worth whatever the cohort size, and a part's buffer can be
// released as soon as it is folded. The sum keeps a total weight per part
// (of `part_values` values): a device that stops part-way through its
// upload leaves the parts it delivered in, each weighted over the devices
// that delivered it, since taking them out again would need them held.
// Coordinate-wise median and trimmed mean (Yin et al. 2018), for plain mode
// against outlying or poisoned updates, must hold every update of the round
// until it closes: memory grows with the cohort, they ignore sample counts,
// and an update never finished is left out.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::aggregator {

enum class CombinerKind { mean, median, trimmed_mean };

std::string_view combiner_name(CombinerKind kind);
// "mean", "median", "trimmed_mean"; an unknown name is an error listing these.
Result<CombinerKind> parse_combiner(std::string_view name);

class UpdateCombiner {
 public:
  virtual ~UpdateCombiner() = default;
  // Adds values [offset, offset + part.size()) of update number `update`
  // (numbered by the caller, one per device and round), whose weight is
  // `weight`. Parts come in order and cover whole parts of `part_values`
  // (the last may end at the model's end). Refused when a part does not fit,
  // the weight is not positive and finite, or a value is NaN or infinite; a
  // refused part leaves the combiner as it was (the mean: up to rounding in
  // the last bit).
  virtual Status add_part(std::size_t update, std::size_t offset, std::span<const float> part, double weight) = 0;
  // Counts update `update` once its last part is in. The held combiners
  // refuse an incomplete one; the mean, which keeps no parts, trusts the caller.
  virtual Status finish_update(std::size_t update, double weight) = 0;
  // Adds one whole update in one part, as update number count().
  Status add(std::span<const float> update, double weight);

  virtual std::size_t count() const = 0;  // finished updates
  virtual double total_weight() const = 0;
  // The combined update; REQUIRES count() > 0.
  virtual std::vector<float> result() const = 0;
  // The same, leaving the combiner spent; the mean hands over its own sum
  // buffer, so closing a round needs no second model-sized vector.
  virtual std::vector<float> take_result() { return result(); }
};

// trim_fraction: the share of updates dropped at each end of every
// coordinate for trimmed_mean, in [0, 0.5). part_values: 0 for whole updates only.
Result<std::unique_ptr<UpdateCombiner>> make_combiner(CombinerKind kind, std::size_t parameter_count,
                                                      double trim_fraction = 0.1, std::size_t part_values = 0);

// The streaming weighted mean, exposed for the fold benchmark.
class WeightedMeanFold final : public UpdateCombiner {
 public:
  // part_values: 0 for whole updates only.
  explicit WeightedMeanFold(std::size_t parameter_count, std::size_t part_values = 0);
  Status add_part(std::size_t update, std::size_t offset, std::span<const float> part, double weight) override;
  Status finish_update(std::size_t update, double weight) override;
  std::size_t count() const override { return count_; }
  double total_weight() const override { return total_weight_; }
  std::vector<float> result() const override;
  std::vector<float> take_result() override;

 private:
  void divide_by_part_weights(std::span<float> values) const;

  std::vector<float> sum_;
  std::size_t part_values_;
  std::vector<double> part_weights_;  // the weight folded into each part of the sum
  std::size_t count_ = 0;
  double total_weight_ = 0;
};

}  // namespace shoal::aggregator
