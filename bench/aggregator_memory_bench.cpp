// aggregator_memory_bench: peak memory of the aggregator's round logic over a
// whole round, for cohorts of 10 and 1000 updates of a 10M-parameter model
// (target: <= 4x the model's size in both modes). Each cohort runs in a
// fresh child process, whose peak resident set the parent reads from wait4().
//
// The round is driven through RoundCoordinator as the server drives it:
// hello from every device, the tasks go out, then each update arrives part
// by part (protocol::kUpdatePartValues values each), every part its own
// buffer as a received message would be, folded and freed.
//
// Plain mode folds each part into the running sum. Secure mode runs SecAgg+
// with every phase: the bench plays the devices at the protocol level (real
// signed keys, real Shamir shares of each self-mask seed, inputs masked
// with the real self-mask stream; with no dropouts the pairwise masks would
// cancel, so they are left out). Every device tries to upload at once: each
// sends its first part as soon as the masking phase opens, and the server
// refuses those whose turn has not come (flow control, secure.upload_memory_mb),
// then lets them upload one turn at a time. The recovered mean must equal
// the devices' common update.
//
// The figure is the child's peak RSS, printed raw and above its baseline
// before the model existed (the process's code and libraries). The floor is
// two models: the global weights and the running sum; secure mode adds the
// inputs in flight, each held whole until complete.
//
// Usage: aggregator_memory_bench [--parameters 10000000] [--cohorts 10,1000] [--mode plain,secure]
//        aggregator_memory_bench --smoke    (1M parameters, cohort 10, both modes)
#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "shoal/aggregator/round_coordinator.h"
#include "shoal/crypto/key_file.h"
#include "shoal/crypto/shamir.h"
#include "shoal/protocol/secagg_contract.h"
#include "shoal/weights/modular_quantizer.h"

using namespace shoal;
using namespace shoal::aggregator;

namespace {

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Runs one round with `cohort` devices; returns 0 when every update was folded and applied.
constexpr std::uint64_t kSamples = 100;

// Every device's update value at index `i`.
float update_value(std::size_t i) { return 0.001f * static_cast<float>(i % 7); }

Result<RoundCoordinator> make_coordinator(std::size_t parameters, std::size_t cohort, bool secure) {
  auto layout = weights::Layout::create({{"w", {static_cast<std::int64_t>(parameters)}}});
  if (!layout) return layout.error();
  weights::Weights global(*layout, 0);
  RoundConfig config;
  config.min_devices = cohort;
  config.max_devices = cohort;
  config.secure.enabled = secure;
  // One masked input in flight: its size is the budget's unit.
  config.secure.upload_memory_bytes = (parameters + 2) * sizeof(std::uint32_t);
  auto optimizer = ServerOptimizer::create({}, parameters);
  return RoundCoordinator::create(config, std::move(global), std::move(optimizer).value(), 0);
}

// Plain mode: every device's update, part by part, folded as it comes.
int run_plain_round(std::size_t parameters, std::size_t cohort) {
  auto coordinator = make_coordinator(parameters, cohort, false);
  if (!coordinator) return 1;
  const auto now = Clock::now();
  for (std::size_t d = 0; d < cohort; ++d) coordinator->on_hello("device-" + std::to_string(d), {"bench", 1, true}, now);
  coordinator->on_tick(now);
  (void)coordinator->take_outgoing();
  for (std::size_t d = 0; d < cohort; ++d) {
    protocol::UpdateReport report{1, 0, kSamples, 1, 0.1, 1, 0.1};
    for (report.offset = 0; report.offset < parameters; report.offset += protocol::kUpdatePartValues) {
      const std::size_t values = std::min(protocol::kUpdatePartValues, parameters - report.offset);
      std::vector<std::uint8_t> payload(values * sizeof(float));  // one received part at a time
      for (std::size_t i = 0; i < values; ++i) {
        const float value = update_value(report.offset + i);
        std::memcpy(&payload[i * sizeof(float)], &value, sizeof value);
      }
      if (coordinator->on_update("device-" + std::to_string(d), report, payload, now)) return 1;
    }
  }
  const auto finished = coordinator->take_finished();
  return finished.size() == 1 && finished[0].applied ? 0 : 1;
}

int fail(const char* why) {
  std::fprintf(stderr, "secure round: %s\n", why);
  return 1;
}

// One device of a secure round, as far as the bench plays it.
struct SecureDevice {
  crypto::IdentityKeyPair identity = crypto::IdentityKeyPair::generate();
  std::string key = crypto::format_ed25519_public(identity.public_identity().ed25519());
  crypto::MaskSeed self_seed;
  protocol::MemberIndex index = 0;
  std::map<protocol::MemberIndex, crypto::ShamirShare> held;  // shares of neighbours' seeds, by owner
};

// The device's masked input part at `offset`: its quantised update (values,
// then the weight and the clip indicator) plus its self-mask.
std::vector<std::uint8_t> masked_part(const SecureDevice& device, const protocol::SecureParams& params,
                                      std::size_t parameters, std::size_t offset) {
  const std::size_t words = std::min(protocol::kUpdatePartValues, parameters + 2 - offset);
  const float weight = static_cast<float>(kSamples) / 65536.0f;  // min(samples, weight_cap) / weight_cap
  std::vector<float> values(words);
  for (std::size_t i = 0; i < words; ++i) {
    const std::size_t at = offset + i;
    values[i] = at < parameters ? update_value(at) * weight : at == parameters ? weight : 0.5f;
  }
  std::vector<std::uint32_t> out(words);
  const weights::ModularQuantizer quantizer{static_cast<unsigned>(params.bits), params.scale, params.range};
  quantizer.quantize(values, out, device.index * 1'000'003ull + offset);
  protocol::secagg::apply_mask(out, offset, protocol::secagg::self_mask_stream(device.self_seed), false);
  std::vector<std::uint8_t> bytes(words * sizeof(std::uint32_t));
  std::memcpy(bytes.data(), out.data(), bytes.size());
  return bytes;
}

// Secure mode: every phase of SecAgg+, every device uploading at once.
int run_secure_round(std::size_t parameters, std::size_t cohort) {
  auto coordinator = make_coordinator(parameters, cohort, true);
  if (!coordinator) return fail("coordinator");
  const auto now = Clock::now();
  std::vector<SecureDevice> devices(cohort);
  std::map<std::string, std::size_t> device_of;
  for (std::size_t d = 0; d < cohort; ++d) {
    crypto::system_random().fill(devices[d].self_seed.span());
    device_of[devices[d].key] = d;
    coordinator->on_hello(devices[d].key, {"bench", 1, true}, now);
  }
  coordinator->on_tick(now);
  protocol::SecureParams params;
  std::uint64_t round = 0;
  for (auto& out : coordinator->take_outgoing()) {
    if (auto* task = std::get_if<protocol::TrainTask>(&out.message); task && task->secure) {
      params = *task->secure;
      round = task->round;
    }
  }
  if (round == 0) return fail("no secure task");
  for (auto& device : devices) {  // phase 1: keys, signed for this round
    const auto cipher = crypto::X25519KeyPair::generate(), mask = crypto::X25519KeyPair::generate();
    protocol::AdvertiseKeys keys{round, cipher.public_key, mask.public_key, {}};
    keys.signature = device.identity.sign(
        protocol::secagg::advertisement_transcript(round, params.nonce, cipher.public_key, mask.public_key));
    if (coordinator->on_advertise(device.key, keys, now)) return fail("advertise refused");
  }
  // Phase 2: each device splits its self-mask seed among its neighbours.
  // The sealed boxes are opaque to the server, so the bench hands the shares
  // over directly and relays zeros.
  std::vector<std::pair<std::string, protocol::KeyRoster>> rosters;
  for (auto& out : coordinator->take_outgoing()) {
    if (auto* roster = std::get_if<protocol::KeyRoster>(&out.message)) rosters.emplace_back(out.device, *roster);
  }
  if (rosters.size() != cohort) return fail("rosters");
  std::map<protocol::MemberIndex, std::size_t> device_at;
  for (auto& [key, roster] : rosters) device_at[roster.index] = device_of[key];
  for (auto& [key, roster] : rosters) {
    auto& device = devices[device_of[key]];
    device.index = roster.index;
    auto shares = crypto::shamir_split(device.self_seed, static_cast<unsigned>(params.threshold),
                                       static_cast<unsigned>(roster.neighbours.size()));
    if (!shares) return fail("share split");
    protocol::ShareKeys message{round, {}};
    for (std::size_t n = 0; n < roster.neighbours.size(); ++n) {
      const auto peer = roster.neighbours[n].index;
      devices[device_at[peer]].held.emplace(roster.index, (*shares)[n]);
      message.shares.push_back({peer, {}});
    }
    if (coordinator->on_shares(key, message, now)) return fail("shares refused");
  }
  // Phase 3: everyone tries at once; the server lets one upload at a time.
  std::deque<std::string> turns;
  std::vector<Outgoing> requests;  // phase 4's, once the last input is in
  auto take_turns = [&] {
    for (auto& out : coordinator->take_outgoing()) {
      if (std::holds_alternative<protocol::ShareBundle>(out.message)) turns.push_back(out.device);
      if (std::holds_alternative<protocol::UnmaskRequest>(out.message)) requests.push_back(std::move(out));
    }
  };
  take_turns();
  const std::set<std::string> first_turns(turns.begin(), turns.end());
  std::size_t refused = 0;
  for (auto& device : devices) {
    if (first_turns.contains(device.key)) continue;
    const auto part = masked_part(device, params, parameters, 0);
    if (coordinator->on_masked_input(device.key, {round, 0, 1, 0.1}, part, now)) ++refused;
  }
  take_turns();  // (and the refusals, dropped)
  if (refused != cohort - first_turns.size()) return fail("first parts not refused");
  for (std::size_t uploads = 0; !turns.empty(); ++uploads) {
    const auto& device = devices[device_of[turns.front()]];
    turns.pop_front();
    for (std::size_t offset = 0; offset < parameters + 2; offset += protocol::kUpdatePartValues) {
      const auto part = masked_part(device, params, parameters, offset);
      if (coordinator->on_masked_input(device.key, {round, offset, 1, 0.1}, part, now)) return fail("masked part refused");
    }
    take_turns();
  }
  // Phase 4: each survivor reveals the self-mask shares it holds.
  for (auto& out : requests) {
    auto* request = std::get_if<protocol::UnmaskRequest>(&out.message);
    const auto& device = devices[device_of[out.device]];
    protocol::UnmaskResponse response{round, {}};
    for (auto owner : request->self_mask_of) {
      const auto share = device.held.at(owner).to_bytes();
      protocol::RevealedShare revealed{owner, protocol::ShareKind::self_mask, {}};
      std::memcpy(revealed.share.data(), share.data(), revealed.share.size());
      response.shares.push_back(revealed);
    }
    if (coordinator->on_unmask(out.device, response, now)) return fail("unmask refused");
  }
  const auto finished = coordinator->take_finished();
  if (finished.size() != 1) return fail("the round did not close");
  if (!finished[0].applied) return fail(finished[0].abandon_reason.c_str());
  // FedAvg moves the model by the mean update: every device's, within the quantiser's rounding.
  const auto values = coordinator->global().values();
  for (std::size_t i = 0; i < parameters; i += 9973) {
    if (std::abs(values[i] - update_value(i)) > 1e-4f) return fail("mean differs");
  }
  return 0;
}

int run_round(std::size_t parameters, std::size_t cohort, bool secure) {
  return secure ? run_secure_round(parameters, cohort) : run_plain_round(parameters, cohort);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t parameters = 10'000'000;
  std::vector<std::size_t> cohorts = {10, 1000};
  CLI::App app{"aggregator peak memory over a round"};
  app.add_option("--parameters", parameters, "model size")->check(CLI::Range(1, 1'000'000'000));
  app.add_option("--cohorts", cohorts, "cohort sizes, one child process each")->delimiter(',');
  std::vector<std::string> modes = {"plain", "secure"};
  app.add_option("--mode", modes, "plain, secure or both")->delimiter(',')->check(CLI::IsMember({"plain", "secure"}));
  bool smoke = false;
  app.add_flag("--smoke", smoke, "1M parameters, cohort 10: a check that it runs");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    parameters = 1'000'000;
    cohorts = {10};
  }

  const double model_mb = static_cast<double>(parameters) * sizeof(float) / 1e6;
  std::printf("round of a %zu-parameter model (%.0f MB), fedavg; secure mode lets one masked input arrive at a time\n",
              parameters, model_mb);
  std::printf("%8s %8s %14s %16s %14s %20s\n", "mode", "cohort", "peak RSS MB", "baseline MB", "x model",
              "above baseline x");
  for (const auto& mode : modes) for (const auto cohort : cohorts) {
    int channel[2];
    if (pipe(channel) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(channel[0]);
      const long baseline = peak_rss_kb();
      const int status = run_round(parameters, cohort, mode == "secure");
      if (write(channel[1], &baseline, sizeof baseline) != sizeof baseline) _exit(1);
      _exit(status);
    }
    close(channel[1]);
    long baseline_kb = 0;
    const bool read_baseline = read(channel[0], &baseline_kb, sizeof baseline_kb) == sizeof baseline_kb;
    close(channel[0]);
    int status = 0;
    rusage usage{};
    wait4(child, &status, 0, &usage);
    if (!read_baseline || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "%s, cohort %zu: the round failed\n", mode.c_str(), cohort);
      return 1;
    }
    const double peak_mb = static_cast<double>(usage.ru_maxrss) * 1024 / 1e6;
    const double baseline_mb = static_cast<double>(baseline_kb) * 1024 / 1e6;
    std::printf("%8s %8zu %14.1f %16.1f %14.2f %20.2f\n", mode.c_str(), cohort, peak_mb, baseline_mb, peak_mb / model_mb,
                (peak_mb - baseline_mb) / model_mb);
  }
  return 0;
}
