#include <catch2/catch.hpp>

#include "shoal/base/durable_file.h"
#include "shoal/client/dataset.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::client;
using shoal::testing::TempDir;

namespace {

Result<Dataset> load_text(const TempDir& dir, const std::string& text) {
  REQUIRE(base::write_file_durably(dir / "data.csv", text));
  return load_csv(dir / "data.csv");
}

}  // namespace

TEST_CASE("a CSV file with a header loads features and the last column as label") {
  TempDir dir;
  auto data = load_text(dir, "height,weight,class\n1.5, 60,0\n1.8,80.5,1\r\n\n2,-1e2,2\n");
  REQUIRE(data);
  CHECK(data->size() == 3);
  CHECK(data->sample_shape == std::vector<std::int64_t>{2});
  CHECK(data->features == std::vector<float>{1.5f, 60.0f, 1.8f, 80.5f, 2.0f, -100.0f});
  CHECK(data->labels == std::vector<std::int64_t>{0, 1, 2});
}

TEST_CASE("malformed CSV lines are errors naming the line and column") {
  TempDir dir;
  CHECK(load_text(dir, "1,2,0\n3,x,1\n").error().message.find("line 2 column 2: 'x' is not a number") != std::string::npos);
  CHECK(load_text(dir, "1,2,0\n3,4,5,1\n").error().message.find("line 2 column 4: 4 fields") != std::string::npos);
  CHECK(load_text(dir, "1,2,0\n3,4,-1\n").error().message.find("label '-1'") != std::string::npos);
  CHECK(load_text(dir, "1,2,0.5\n").error().message.find("label '0.5'") != std::string::npos);
  CHECK(load_text(dir, "a,b,c\n").error().message.find("no samples") != std::string::npos);
  CHECK(load_csv(dir / "absent.csv").error().code == ErrorCode::not_found);
}
