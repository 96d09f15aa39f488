#include <zlib.h>

#include <catch2/catch.hpp>

#include <filesystem>

#include "shoal/base/durable_file.h"
#include "shoal/client/dataset.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::client;
using shoal::testing::TempDir;

namespace {

std::string idx_bytes(std::vector<std::uint32_t> dims, const std::vector<std::uint8_t>& data) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (auto d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(d >> shift));
  }
  bytes.append(data.begin(), data.end());
  return bytes;
}

void write_plain(const std::filesystem::path& path, const std::string& bytes) {
  REQUIRE(base::write_file_durably(path, bytes));
}

void write_gzip(const std::filesystem::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

// Three 2x2 images with labels 0, 1, 2.
const std::vector<std::uint8_t> kPixels = {0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 255, 255};
const std::vector<std::uint8_t> kLabels = {0, 1, 2};

}  // namespace

TEST_CASE("IDX images and labels load from plain and gzip files alike") {
  TempDir dir;
  write_plain(dir / "images", idx_bytes({3, 2, 2}, kPixels));
  write_plain(dir / "labels", idx_bytes({3}, kLabels));
  write_gzip(dir / "images.gz", idx_bytes({3, 2, 2}, kPixels));
  write_gzip(dir / "labels.gz", idx_bytes({3}, kLabels));
  for (auto [images, labels] : {std::pair{"images", "labels"}, {"images.gz", "labels.gz"}}) {
    auto data = load_idx(dir / images, dir / labels);
    REQUIRE(data);
    CHECK(data->size() == 3);
    CHECK(data->sample_shape == std::vector<std::int64_t>{1, 2, 2});
    CHECK(data->labels == std::vector<std::int64_t>{0, 1, 2});
    CHECK(data->sample(0)[1] == 1.0f);
    CHECK(data->sample(0)[2] == Approx(0.2f));
  }
}

TEST_CASE("malformed IDX files are errors naming the file and the byte offset") {
  TempDir dir;
  write_plain(dir / "labels", idx_bytes({3}, kLabels));
  auto error_for = [&](const std::string& images) {
    write_plain(dir / "images", images);
    auto data = load_idx(dir / "images", dir / "labels");
    REQUIRE_FALSE(data);
    CHECK(data.error().message.find((dir / "images").string()) != std::string::npos);
    return data.error().message;
  };
  const auto good = idx_bytes({3, 2, 2}, kPixels);
  CHECK(error_for(good.substr(0, good.size() - 1)).find("(truncated)") != std::string::npos);
  CHECK(error_for(good.substr(0, 10)).find("at byte 10") != std::string::npos);
  CHECK(error_for("PK\3\4zip").find("not an IDX file") != std::string::npos);
  CHECK(error_for(idx_bytes({12}, kPixels)).find("1 dimensions, expected 3") != std::string::npos);
  CHECK(error_for(idx_bytes({4, 1, 3}, kPixels)).find("4 images but 3 labels") != std::string::npos);
  CHECK(error_for(good + "x").find("need") != std::string::npos);
}

TEST_CASE("images and labels of different counts are refused") {
  TempDir dir;
  write_plain(dir / "images", idx_bytes({3, 2, 2}, kPixels));
  write_plain(dir / "labels", idx_bytes({2}, {0, 1}));
  auto data = load_idx(dir / "images", dir / "labels");
  REQUIRE_FALSE(data);
  CHECK(data.error().message.find("3 images but 2 labels") != std::string::npos);
}

TEST_CASE("a truncated gzip file is refused, not read as a short dataset") {
  TempDir dir;
  write_gzip(dir / "images.gz", idx_bytes({3, 2, 2}, kPixels));
  write_plain(dir / "labels", idx_bytes({3}, kLabels));
  const auto compressed = *base::read_file(dir / "images.gz", 1 << 20);
  write_plain(dir / "cut.gz", compressed.substr(0, compressed.size() - 6));
  auto data = load_idx(dir / "cut.gz", dir / "labels");
  REQUIRE_FALSE(data);
  CHECK(data.error().message.find("cut.gz") != std::string::npos);
}

TEST_CASE("the Fashion-MNIST test set from dataset-fashion-mnist loads whole") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed; scripts/install-deps installs it");
    return;
  }
  auto data = load_idx(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  REQUIRE(data);
  CHECK(data->size() == 10000);
  CHECK(data->sample_shape == std::vector<std::int64_t>{1, 28, 28});
  CHECK(data->class_count() == 10);
  std::vector<int> per_class(10, 0);
  for (auto label : data->labels) ++per_class[static_cast<std::size_t>(label)];
  for (int count : per_class) CHECK(count == 1000);  // the test set is balanced
}
