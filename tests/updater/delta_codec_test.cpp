#include "shoal/updater/delta_codec.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <cmath>
#include <limits>
#include <random>

using namespace shoal;
using namespace shoal::updater;

namespace {

weights::Layout test_layout() {
  return *weights::Layout::create({{"moved", {5000}}, {"same", {300}}, {"replaced", {2000}}, {"scalar", {}}});
}

// Version 1 and version 2 of a model as training makes them: most weights
// move a little, one tensor does not move, one is re-initialised.
std::pair<weights::Weights, weights::Weights> version_pair() {
  const auto layout = test_layout();
  std::mt19937 rng(7);
  std::normal_distribution<float> init(0.0f, 0.1f);
  std::normal_distribution<float> step(0.0f, 1e-4f);
  std::vector<float> v1(layout.value_count());
  for (auto& v : v1) v = init(rng);
  auto v2 = v1;
  for (std::size_t i = 0; i < 5000; ++i) v2[i] += step(rng);
  for (std::size_t i = 5300; i < 7300; ++i) v2[i] = init(rng);
  v2.back() = -0.0f;  // a signed zero must survive bit for bit
  return {*weights::Weights::from_values(layout, 1, v1), *weights::Weights::from_values(layout, 2, v2)};
}

bool bit_identical(const weights::Weights& a, const weights::Weights& b) {
  return a.version() == b.version() && a.values().size() == b.values().size() &&
         std::memcmp(a.values().data(), b.values().data(), a.values().size_bytes()) == 0;
}

}  // namespace

TEST_CASE("a delta rebuilds the target bit for bit, smaller than the target, each tensor by its best transform") {
  const auto [base, target] = version_pair();
  auto delta = encode_delta(base, target, 3);
  REQUIRE(delta);
  auto rebuilt = apply_delta(base, *delta, "v1-v2.delta");
  REQUIRE(rebuilt);
  CHECK(bit_identical(*rebuilt, target));
  // The moved tensor's two low bytes and the replaced tensor are all that is left: about 0.6 of the raw bytes.
  CHECK(delta->size() < target.values().size_bytes() * 7 / 10);

  auto info = read_delta_info(*delta, "v1-v2.delta");
  REQUIRE(info);
  CHECK(info->base_version == 1);
  CHECK(info->target_version == 2);
  CHECK(info->base_hash == values_hash(base));
  CHECK(info->target_hash == values_hash(target));
  REQUIRE(info->transforms.size() == 4);
  CHECK(info->transforms[0] != DeltaTransform::full);  // small steps: a difference of the bits wins
  CHECK(info->transforms[1] != DeltaTransform::full);  // unchanged: all zero
  CHECK(info->transforms[2] == DeltaTransform::full);  // re-initialised: nothing to gain from the base
}

TEST_CASE("a delta applied to another base is refused, naming both versions") {
  const auto [base, target] = version_pair();
  auto delta = encode_delta(base, target, 1);
  REQUIRE(delta);
  auto other = target;  // same layout, other values
  auto wrong = apply_delta(other, *delta, "v1-v2.delta");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().message.find("v1-v2.delta: the delta applies to version 1") != std::string::npos);
  CHECK(wrong.error().message.find("the base is version 2") != std::string::npos);

  auto same_version = base;
  same_version.values()[17] += 1.0f;  // same version number, different values
  auto tampered_base = apply_delta(same_version, *delta, "v1-v2.delta");
  REQUIRE_FALSE(tampered_base);
  CHECK_THAT(tampered_base.error().message, Catch::Contains("the base is version 1 (values "));

  auto foreign = *weights::Weights::from_values(*weights::Layout::create({{"w", {3}}}), 1, {1, 2, 3});
  auto layout = apply_delta(foreign, *delta, "v1-v2.delta");
  REQUIRE_FALSE(layout);
  CHECK(layout.error().message.find("the delta is for layout") != std::string::npos);
  CHECK_FALSE(encode_delta(foreign, target, 1));
}

TEST_CASE("a truncated or damaged delta is an error, never a wrong model") {
  const auto [base, target] = version_pair();
  auto encoded = encode_delta(base, target, 1);
  REQUIRE(encoded);
  const auto& delta = *encoded;
  for (std::size_t length = 0; length < delta.size(); length += 1 + length / 3) {
    auto truncated = apply_delta(base, std::span(delta).first(length), "cut.delta");
    REQUIRE_FALSE(truncated);
    CHECK(truncated.error().message.find("cut.delta: ") == 0);
  }
  // A flipped bit anywhere: refused by a header check, zstd, or the target hash.
  for (std::size_t at = 0; at < delta.size(); at += 1 + at / 5) {
    auto damaged = delta;
    damaged[at] ^= 0x10;
    auto result = apply_delta(base, damaged, "damaged.delta");
    INFO("flipped byte " << at);
    REQUIRE_FALSE(result);
  }
  auto longer = delta;
  longer.push_back(0);
  auto trailing = apply_delta(base, longer, "long.delta");
  REQUIRE_FALSE(trailing);
  CHECK(trailing.error().message.find("1 bytes after the last tensor") != std::string::npos);
}

TEST_CASE("a lossy version stays within its bound and its delta is small integers, rebuilt bit for bit") {
  const auto [base, target] = version_pair();
  const float bound = 5e-5f;
  auto quantized = quantize_towards(base, target, bound);
  REQUIRE(quantized);
  CHECK(quantized->step == 2 * bound);
  CHECK(quantized->max_error <= bound * 1.001f);
  CHECK(quantized->weights.version() == target.version());
  float largest = 0;
  for (std::size_t i = 0; i < target.values().size(); ++i) {
    largest = std::max(largest, std::fabs(quantized->weights.values()[i] - target.values()[i]));
  }
  CHECK(largest == quantized->max_error);

  auto exact = encode_delta(base, quantized->weights, 3);
  auto lossy = encode_delta(base, quantized->weights, 3, quantized->step);
  REQUIRE(exact);
  REQUIRE(lossy);
  CHECK(lossy->size() < exact->size() / 2);
  auto info = read_delta_info(*lossy, "lossy.delta");
  REQUIRE(info);
  CHECK(info->transforms[0] == DeltaTransform::quantized);  // moved a little: a few steps
  auto rebuilt = apply_delta(base, *lossy, "lossy.delta");
  REQUIRE(rebuilt);
  CHECK(bit_identical(*rebuilt, quantized->weights));
  // The same step does not describe the unquantised target: the encoder keeps it exact.
  auto not_quantized = encode_delta(base, target, 3, quantized->step);
  REQUIRE(not_quantized);
  CHECK(read_delta_info(*not_quantized, "x")->transforms[0] != DeltaTransform::quantized);
  CHECK(bit_identical(*apply_delta(base, *not_quantized, "x"), target));
}

TEST_CASE("a lossy version keeps buffers exact: running statistics and counters are not quantised") {
  using weights::DType, weights::TensorKind;
  const auto layout = *weights::Layout::create({{"w", {100}},
                                                {"bn.running_var", {100}, DType::float32, TensorKind::buffer},
                                                {"bn.num_batches_tracked", {}, DType::int64, TensorKind::buffer}});
  std::vector<float> v1(layout.value_count(), 0.5f), v2(layout.value_count());
  for (std::size_t i = 0; i < v2.size(); ++i) v2[i] = 0.5f + 1e-5f * static_cast<float>(i);
  v2.back() = 1234.0f;
  const auto base = *weights::Weights::from_values(layout, 1, v1);
  const auto target = *weights::Weights::from_values(layout, 2, v2);
  auto quantized = quantize_towards(base, target, 1e-3f);
  REQUIRE(quantized);
  const auto values = quantized->weights.values();
  CHECK(values[1] != target.values()[1]);  // a parameter moved by less than the bound is quantised
  CHECK(std::memcmp(values.data() + 100, target.values().data() + 100, 101 * sizeof(float)) == 0);
  auto delta = encode_delta(base, quantized->weights, 3, quantized->step);
  REQUIRE(delta);
  CHECK(bit_identical(*apply_delta(base, *delta, "bn.delta"), quantized->weights));
}

TEST_CASE("a lossy error bound must be a positive number") {
  const auto [base, target] = version_pair();
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::infinity()}) {
    auto refused = quantize_towards(base, target, bad);
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message, Catch::Contains("error bound"));
  }
}

TEST_CASE("a trained matrix is sorted by its rows' and columns' step sizes, and rebuilt bit for bit") {
  // A layer's change as gradient steps make it: row scale x column scale x noise.
  const auto layout = *weights::Layout::create({{"fc.weight", {256, 128}}, {"fc.bias", {256}}});
  std::mt19937 rng(5);
  std::normal_distribution<float> init(0.0f, 0.1f), noise(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_scale(-4.0f, 4.0f);
  std::vector<float> row(256), col(128);
  for (auto& r : row) r = std::exp2(log_scale(rng));
  for (auto& c : col) c = std::exp2(log_scale(rng));
  std::vector<float> v1(layout.value_count());
  for (auto& v : v1) v = init(rng);
  auto v2 = v1;
  for (std::size_t i = 0; i < 256 * 128; ++i) v2[i] += 1e-4f * row[i / 128] * col[i % 128] * noise(rng);
  const auto base = *weights::Weights::from_values(layout, 1, v1);
  const auto target = *weights::Weights::from_values(layout, 2, v2);

  auto delta = encode_delta(base, target, 3);
  REQUIRE(delta);
  auto info = read_delta_info(*delta, "sorted.delta");
  REQUIRE(info);
  CHECK(info->transforms[0] == DeltaTransform::sorted_diff);
  CHECK(info->transforms[1] != DeltaTransform::sorted_diff);  // a vector is never sorted
  auto rebuilt = apply_delta(base, *delta, "sorted.delta");
  REQUIRE(rebuilt);
  CHECK(bit_identical(*rebuilt, target));

  // Hints that do not fit the tensor are a clear error. The first tensor's
  // entry starts after the 128-byte header: transform, length, then rows.
  auto damaged = *delta;
  damaged[128 + 1 + 8] ^= 0x01;
  auto refused = apply_delta(base, damaged, "sorted.delta");
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message, Catch::Contains("tensor fc.weight: 257 x 128 hints for 32768 values"));
}

TEST_CASE("a delta claiming more tensors than its bytes can hold is refused before anything is sized by the claim") {
  // Found by fuzz_delta: a 127-byte delta made the decoder allocate 4 GiB.
  const auto [base, target] = version_pair();
  auto delta = *encode_delta(base, target, 1);
  // magic, format version, layout hash, base version and hash, target version and hash, then the count.
  constexpr std::size_t count_at = 8 + 4 + 32 + 8 + 32 + 8 + 32;
  for (std::size_t i = 0; i < 4; ++i) delta[count_at + i] = 0xff;
  auto info = read_delta_info(delta, "huge.delta");
  REQUIRE_FALSE(info);
  CHECK(info.error().message.find("huge.delta: ") == 0);
  CHECK(info.error().message.find("claims 4294967295 tensors") != std::string::npos);
  CHECK_FALSE(apply_delta(base, delta, "huge.delta"));
}
