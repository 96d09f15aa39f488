#include "shoal/config/config_file.h"

#include <catch2/catch.hpp>

using namespace shoal;
using namespace std::chrono_literals;

namespace {

config::ConfigFile parse(std::string_view text) { return *config::ConfigFile::parse(text, "/etc/shoal/test.toml"); }

}  // namespace

TEST_CASE("config values fill their targets, absent keys keep the defaults") {
  auto file = parse(R"(
[server]
bind = "tcp://127.0.0.1:7400"
state_dir = "state"
key = "/keys/server.key"
[round]
min_devices = 3
fraction = 0.5
learning_rate = 1
deadline_s = 2.5
eligible = false
)");
  std::string bind;
  std::filesystem::path state, key;
  std::size_t min_devices = 2, max_devices = 100;
  double fraction = 1, learning_rate = 0.1;
  std::chrono::milliseconds deadline{60'000};
  bool eligible = true;
  file.read("server.bind", bind);
  file.read_path("server.state_dir", state);
  file.read_path("server.key", key);
  file.read("round.min_devices", min_devices);
  file.read("round.max_devices", max_devices);
  file.read("round.fraction", fraction);
  file.read("round.learning_rate", learning_rate);
  file.read_seconds("round.deadline_s", deadline);
  file.read("round.eligible", eligible);
  REQUIRE(file.finish());
  CHECK(bind == "tcp://127.0.0.1:7400");
  CHECK(state == "/etc/shoal/state");  // relative to the file
  CHECK(key == "/keys/server.key");
  CHECK(min_devices == 3);
  CHECK(max_devices == 100);
  CHECK(fraction == 0.5);
  CHECK(learning_rate == 1.0);
  CHECK(deadline == 2500ms);
  CHECK_FALSE(eligible);
}

TEST_CASE("config errors name the file and the key") {
  std::size_t count = 0;
  auto mistyped = parse("[round]\nmin_devices = \"3\"\n");
  mistyped.read("round.min_devices", count);
  CHECK(mistyped.finish().error().message == "/etc/shoal/test.toml: key 'round.min_devices': expected an integer");

  auto negative = parse("[round]\nmin_devices = -1\n");
  negative.read("round.min_devices", count);
  CHECK(negative.finish().error().message ==
        "/etc/shoal/test.toml: key 'round.min_devices': -1 is out of range (must not be negative)");

  std::chrono::milliseconds deadline{1};
  auto zero = parse("[round]\ndeadline_s = 0\n");
  zero.read_seconds("round.deadline_s", deadline);
  CHECK(zero.finish().error().message == "/etc/shoal/test.toml: key 'round.deadline_s': must be a positive number of seconds");

  auto misspelt = parse("[round]\nmin_device = 3\n");
  misspelt.read("round.min_devices", count);
  CHECK(misspelt.finish().error().message ==
        "/etc/shoal/test.toml: unknown key 'round.min_device' (misspelt, or not a setting of this command)");
}

TEST_CASE("an array of strings is read whole, and anything else in its place is refused") {
  std::vector<std::string> patterns{"default"};
  auto file = parse("[aggregation]\nlocal_tensors = [\"bn1.*\", \"*.running_var\"]\n");
  file.read("aggregation.local_tensors", patterns);
  REQUIRE(file.finish());
  CHECK(patterns == std::vector<std::string>{"bn1.*", "*.running_var"});
  for (const char* bad : {"local_tensors = \"bn1.*\"\n", "local_tensors = [\"bn1.*\", 3]\n"}) {
    auto refused = parse(std::string("[aggregation]\n") + bad);
    refused.read("aggregation.local_tensors", patterns);
    CHECK(refused.finish().error().message ==
          "/etc/shoal/test.toml: key 'aggregation.local_tensors': expected an array of strings");
  }
  CHECK(patterns == std::vector<std::string>{"bn1.*", "*.running_var"});  // left as it was
}

TEST_CASE("a file that is not TOML is refused with its line") {
  auto broken = config::ConfigFile::parse("[round]\nmin_devices = = 3\n", "broken.toml");
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message.rfind("broken.toml:2: ", 0) == 0);
  auto missing = config::ConfigFile::load("/nonexistent/shoal.toml");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "/nonexistent/shoal.toml: cannot open config file");
}
