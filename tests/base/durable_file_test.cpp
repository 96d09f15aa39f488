#include "shoal/base/durable_file.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <fstream>

#include "temp_dir.h"

using namespace shoal::base;
using shoal::testing::TempDir;

TEST_CASE("a durable write replaces the old contents and leaves no temporary file") {
  TempDir dir;
  REQUIRE(write_file_durably(dir / "state", std::string_view("first")));
  REQUIRE(write_file_durably(dir / "state", std::string_view("second, longer")));
  CHECK(*read_file(dir / "state", 100) == "second, longer");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 1);
}

TEST_CASE("a failed durable write keeps the previous file intact") {
  TempDir dir;
  REQUIRE(write_file_durably(dir / "state", std::string_view("precious")));
  // A directory in the way of the rename makes the final step fail.
  std::filesystem::create_directory(dir / "blocked");
  std::filesystem::create_directory(dir / "blocked" / "child");
  auto status = write_file_durably(dir / "blocked", std::string_view("new"));
  REQUIRE_FALSE(status);
  CHECK(status.error().message.find("blocked") != std::string::npos);
  CHECK(*read_file(dir / "state", 100) == "precious");
  CHECK(std::filesystem::is_directory(dir / "blocked" / "child"));
}

TEST_CASE("writing into a missing directory names the path") {
  TempDir dir;
  auto status = write_file_durably(dir / "no" / "such" / "file", std::string_view("x"));
  REQUIRE_FALSE(status);
  CHECK(status.error().code == shoal::ErrorCode::not_found);
  CHECK(status.error().message.find("no/such") != std::string::npos);
}

TEST_CASE("read_file refuses files over the limit and non-regular files") {
  TempDir dir;
  REQUIRE(write_file_durably(dir / "big", std::string(100, 'x')));
  auto big = read_file(dir / "big", 99);
  REQUIRE_FALSE(big);
  CHECK(big.error().message.find("limit of 99") != std::string::npos);
  CHECK(read_file(dir / "big", 100)->size() == 100);
  auto directory = read_file(dir.path(), 100);
  REQUIRE_FALSE(directory);
  CHECK(directory.error().message.find("not a regular file") != std::string::npos);
}

TEST_CASE("a writer that is not committed leaves the old file and no temporary behind") {
  TempDir dir;
  REQUIRE(write_file_durably(dir / "model", std::string_view("version 1")));
  {
    auto writer = DurableFileWriter::create(dir / "model");
    REQUIRE(writer);
    const std::string half = "version 2, half writ";
    REQUIRE(writer->write({reinterpret_cast<const std::uint8_t*>(half.data()), half.size()}));
  }  // destroyed mid-write, as by an error on the way
  CHECK(*read_file(dir / "model", 100) == "version 1");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 1);
}

TEST_CASE("a writer fed in pieces commits their concatenation") {
  TempDir dir;
  auto writer = DurableFileWriter::create(dir / "model", 0600);
  REQUIRE(writer);
  for (std::string_view piece : {"ab", "", "cde", "f"}) {
    REQUIRE(writer->write({reinterpret_cast<const std::uint8_t*>(piece.data()), piece.size()}));
  }
  REQUIRE(writer->commit());
  CHECK(*read_file(dir / "model", 100) == "abcdef");
  CHECK_FALSE(writer->commit());  // a second commit is refused, not a crash
}

TEST_CASE("temporary files a crashed process of the same pid left behind do not block a durable write") {
  // In a container the aggregator can be pid 1 after every restart.
  TempDir dir;
  for (int n = 0; n < 100; ++n) {
    std::ofstream(dir / (".state.tmp." + std::to_string(::getpid()) + "." + std::to_string(n))) << "left";
  }
  REQUIRE(write_file_durably(dir / "state", std::string_view("written")));
  CHECK(*read_file(dir / "state", 100) == "written");
}
