#include "shoal/weights/weights_file.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/hash.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::weights;
using shoal::testing::TempDir;

namespace {

// Parameters and buffers, an int64 counter among them.
Weights sample_weights(std::uint64_t version) {
  auto layout = *Layout::create({{"fc.weight", {3, 4}, DType::float32},
                                 {"fc.bias", {3}, DType::bfloat16},
                                 {"bn.running_var", {3}, DType::float32, TensorKind::buffer},
                                 {"bn.num_batches_tracked", {}, DType::int64, TensorKind::buffer}});
  std::vector<float> values(layout.value_count());
  std::mt19937 rng(static_cast<unsigned>(version));
  std::normal_distribution<float> normal;
  for (auto& v : values) v = normal(rng);
  values[0] = -0.0f;  // bit patterns must survive, not just values
  values.back() = 16777216.0f;  // 2^24: the largest count float32 holds with every smaller one
  return *Weights::from_values(std::move(layout), version, std::move(values));
}

void append_u32(std::string& out, std::uint32_t value) { out.append(reinterpret_cast<const char*>(&value), 4); }

// A file as format 1 wrote it: no tensor kinds, every tensor a parameter.
std::string format1_file(std::uint64_t version, const std::vector<float>& values) {
  std::string header(reinterpret_cast<const char*>(&version), 8);
  append_u32(header, 1);  // one tensor
  const std::string name = "fc.weight";
  const std::uint16_t name_length = static_cast<std::uint16_t>(name.size());
  header.append(reinterpret_cast<const char*>(&name_length), 2);
  header += name;
  header += '\x01';  // float32
  header += '\x01';  // rank 1
  const std::int64_t dim = static_cast<std::int64_t>(values.size());
  header.append(reinterpret_cast<const char*>(&dim), 8);
  const std::string payload(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  const auto payload_hash = crypto::blake2b256(base::text_bytes(payload));
  header.append(reinterpret_cast<const char*>(payload_hash.data()), payload_hash.size());
  std::string file = "SHOALWTS";
  append_u32(file, 1);
  append_u32(file, static_cast<std::uint32_t>(header.size()));
  file += header;
  const auto header_hash = crypto::blake2b256(base::text_bytes(file));
  file.append(reinterpret_cast<const char*>(header_hash.data()), header_hash.size());
  file.resize((file.size() + 63) / 64 * 64, '\0');
  return file + payload;
}

std::string file_bytes(const std::filesystem::path& path) { return *base::read_file(path, 1 << 20); }

void put_bytes(const std::filesystem::path& path, const std::string& bytes) {
  REQUIRE(base::write_file_durably(path, bytes));
}

}  // namespace

TEST_CASE("a weights file round-trips layout, version and every bit of every value") {
  TempDir dir;
  const auto weights = sample_weights(42);
  REQUIRE(write_weights_file(dir / "v42.weights", weights));
  auto loaded = read_weights_file(dir / "v42.weights");
  REQUIRE(loaded);
  CHECK(loaded->version() == 42);
  CHECK(loaded->layout() == weights.layout());
  CHECK(loaded->layout().tensors() == weights.layout().tensors());
  REQUIRE(loaded->values().size() == weights.values().size());
  CHECK(std::memcmp(loaded->values().data(), weights.values().data(), weights.values().size_bytes()) == 0);
}

TEST_CASE("the payload starts on a 64-byte boundary and the file ends with it") {
  TempDir dir;
  const auto weights = sample_weights(1);
  REQUIRE(write_weights_file(dir / "w", weights));
  const auto bytes = file_bytes(dir / "w");
  const std::size_t payload = weights.values().size_bytes();
  CHECK((bytes.size() - payload) % 64 == 0);
  CHECK(std::memcmp(bytes.data() + bytes.size() - payload, weights.values().data(), payload) == 0);
}

TEST_CASE("every truncation of a weights file is refused and names the file") {
  TempDir dir;
  REQUIRE(write_weights_file(dir / "w", sample_weights(1)));
  const auto bytes = file_bytes(dir / "w");
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    put_bytes(dir / "cut", bytes.substr(0, length));
    auto loaded = read_weights_file(dir / "cut");
    REQUIRE_FALSE(loaded);
    REQUIRE(loaded.error().message.find("'" + (dir / "cut").string() + "'") != std::string::npos);
  }
}

TEST_CASE("a change to any single byte of a weights file is detected") {
  TempDir dir;
  REQUIRE(write_weights_file(dir / "w", sample_weights(1)));
  const auto bytes = file_bytes(dir / "w");
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x20);
    put_bytes(dir / "damaged", damaged);
    auto loaded = read_weights_file(dir / "damaged");
    if (loaded) {
      // Only the alignment padding carries no information.
      const auto weights = sample_weights(1);
      REQUIRE(std::memcmp(loaded->values().data(), weights.values().data(), weights.values().size_bytes()) == 0);
      REQUIRE(loaded->version() == 1);
    }
  }
}

TEST_CASE("damage is reported by kind: payload, header, foreign file, newer format, trailing bytes") {
  TempDir dir;
  REQUIRE(write_weights_file(dir / "w", sample_weights(1)));
  const auto bytes = file_bytes(dir / "w");
  auto error_for = [&](const std::string& contents) {
    put_bytes(dir / "x", contents);
    auto loaded = read_weights_file(dir / "x");
    REQUIRE_FALSE(loaded);
    return loaded.error();
  };
  auto payload = bytes;
  payload.back() ^= 1;
  CHECK(error_for(payload).message.find("payload checksum mismatch") != std::string::npos);
  auto header = bytes;
  header[20] ^= 1;
  CHECK(error_for(header).message.find("header checksum mismatch") != std::string::npos);
  CHECK(error_for("PK\x03\x04 a zip file, not weights").message.find("not a shoal weights file") != std::string::npos);
  auto newer = bytes;
  newer[8] = 3;
  CHECK(error_for(newer).code == ErrorCode::unsupported);
  CHECK(error_for(bytes + "extra").message.find("needs exactly") != std::string::npos);
}

TEST_CASE("a format-1 file, written before buffers were stored, is read as parameters only") {
  TempDir dir;
  put_bytes(dir / "old.weights", format1_file(5, {1.5f, -2.0f, 0.25f}));
  auto loaded = read_weights_file(dir / "old.weights");
  REQUIRE(loaded);
  CHECK(loaded->version() == 5);
  REQUIRE(loaded->layout().tensors().size() == 1);
  CHECK(loaded->layout().tensors()[0].kind == TensorKind::parameter);
  CHECK_FALSE(loaded->layout().has_buffers());
  CHECK(std::vector<float>(loaded->values().begin(), loaded->values().end()) == std::vector<float>{1.5f, -2.0f, 0.25f});
  // Written again, it is format 2.
  REQUIRE(write_weights_file(dir / "new.weights", *loaded));
  CHECK(file_bytes(dir / "new.weights")[8] == 2);
}

TEST_CASE("a missing weights file says so") {
  TempDir dir;
  auto loaded = read_weights_file(dir / "nope.weights");
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().code == ErrorCode::not_found);
}

TEST_CASE("values that do not fit the layout are refused") {
  auto layout = *Layout::create({{"w", {2, 2}, DType::float32}});
  auto weights = Weights::from_values(layout, 0, std::vector<float>(5));
  REQUIRE_FALSE(weights);
  CHECK(weights.error().message.find("5 values given") != std::string::npos);
  CHECK(Weights(layout, 3).tensor(0).size() == 4);
}

TEST_CASE("weights encoded in memory are the file's bytes and decode with the given source in errors") {
  TempDir dir;
  const auto weights = sample_weights(7);
  REQUIRE(write_weights_file(dir / "v7.weights", weights));
  const auto encoded = encode_weights(weights);
  const auto on_disk = file_bytes(dir / "v7.weights");
  REQUIRE(std::string(encoded.begin(), encoded.end()) == on_disk);
  auto decoded = decode_weights(encoded, "train task payload");
  REQUIRE(decoded);
  CHECK(std::memcmp(decoded->values().data(), weights.values().data(), weights.values().size_bytes()) == 0);
  auto truncated = decode_weights(std::span(encoded).first(encoded.size() - 1), "train task payload");
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().message.find("train task payload: ") == 0);
  CHECK(truncated.error().message.find("(truncated)") != std::string::npos);
}
