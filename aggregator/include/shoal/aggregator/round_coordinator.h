// The round state machine of the aggregator (plain and secure mode).
//
// It is driven only by calls: messages from devices (already decoded and
// attributed to a device key by the transport) and clock ticks. It never
// touches a socket; what it wants sent waits in an outbox, and finished
// rounds wait for the caller to checkpoint and log them. The same code thus
// runs under the server's socket loop, the simulator and unit tests.
//
// A round: when at least min_devices connected devices are eligible, pick a
// cohort (a seeded random sample: fraction of them, at most max_devices),
// send each a train task (with the model when its copy is older), fold each
// valid update as it arrives, and close when every member has reported or
// the deadline passes. With at least min_devices reports the mean update goes
// through the server optimiser and the model version goes up by one;
// otherwise the round is abandoned and nothing is applied.
//
// Every evaluate_every applied rounds, an evaluation round follows: every
// connected device is asked for the new model's loss and accuracy on its
// held-out data, and the sample-weighted result is recorded. No training
// round starts while it is open.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "shoal/aggregator/checkpoint.h"
#include "shoal/aggregator/rdp_accountant.h"
#include "shoal/aggregator/secure_aggregation_round.h"
#include "shoal/aggregator/server_optimizer.h"
#include "shoal/aggregator/update_fold.h"
#include "shoal/crypto/random_source.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/round_messages.h"
#include "shoal/weights/weights.h"

namespace shoal::aggregator {

using Clock = std::chrono::steady_clock;
using DeviceKey = std::string;  // the device's identity key, as the transport reports it

// Secure aggregation (SecAgg+): the server learns only the sum of a
// cohort's updates. On by default.
struct SecureAggregationConfig {
  bool enabled = true;
  std::size_t neighbours = 0;  // k; 0: 2*ceil(log2 n), at most n-1 (n-1: the complete graph of Bonawitz et al.)
  std::size_t threshold = 0;   // t; 0: floor(k/2)+1; at most k
  std::uint64_t bits = 32;     // inputs are integers modulo 2^bits
  double range = 1.0;          // without a clip norm, each value is clamped to [-range, range]
  std::uint64_t weight_cap = 65536;  // a device's weight is min(samples, cap) / cap
  std::chrono::milliseconds phase_deadline{10'000};  // for each phase after the first
  // Masked inputs are held whole until complete, so at most this many bytes
  // of them arrive at once: the others wait for their turn (at least one is
  // always let through). An upload silent for phase_deadline loses its turn.
  std::size_t upload_memory_bytes = std::size_t{256} << 20;
};
inline constexpr std::uint64_t kMaxMemoryMb = std::uint64_t{1} << 20;  // the largest memory setting, in MiB (1 TiB)

// Differential privacy: clipping (fixed or adaptive), Gaussian noise
// (distributed among devices in secure mode, added centrally in plain mode),
// and a budget in (epsilon, delta) that stops rounds when spent.
struct PrivacyConfig {
  double clip_norm = 0;          // C; 0: no clipping
  double noise_multiplier = 0;   // z: the sum carries N(0, (zC)^2); 0: no noise, no accounting
  bool adaptive_clipping = false;     // Andrew et al. 2021
  double target_quantile = 0.5;       // share of updates meant to be unclipped
  double clip_learning_rate = 0.2;
  double clip_count_stddev = 0;       // noise on the unclipped count; 0: cohort / 20
  double epsilon_budget = 0;     // 0: no budget
  double delta = 1e-5;

  bool enabled() const { return noise_multiplier > 0; }
};

// The most samples one device may claim for an update or an evaluation:
// with at most 2^31 reports a round, no total can wrap.
inline constexpr std::uint64_t kMaxDeviceSamples = std::uint64_t{1} << 32;

struct RoundConfig {
  std::size_t min_devices = 2;  // fewer reports than this abandons the round
  std::size_t max_devices = 100;
  std::size_t min_available = 0;  // connected eligible devices a round waits for; below min_devices means min_devices
  double fraction = 1.0;        // share of the eligible devices picked for a cohort
  bool require_eligible = true; // only devices that say they may train (charging, idle)
  std::chrono::milliseconds train_deadline{60'000};
  std::chrono::milliseconds device_timeout{30'000};  // silence after which a device counts as gone
  protocol::WirePlan plan;
  CombinerKind combiner = CombinerKind::mean;
  double trim_fraction = 0.1;
  // Plain mode's poisoning guard: an update whose L2 norm exceeds this is
  // refused with the reason; 0: no limit. (Secure mode cannot see updates;
  // its clamp is secure.range.)
  double max_update_norm = 0;
  std::uint64_t seed = 0;  // cohort sampling
  std::uint64_t evaluate_every = 0;  // applied rounds between evaluation rounds; 0: none
  std::chrono::milliseconds evaluation_deadline{30'000};
  std::uint64_t final_version = 0;  // no round starts once the model has this version; 0: no end
  SecureAggregationConfig secure;
  PrivacyConfig privacy;
  // FedBN (Li et al. 2021): glob patterns naming tensors that stay on each
  // device, e.g. ["bn*"]. Devices train with their own values of them and
  // send zeros in their place; the global model keeps its values of them.
  std::vector<std::string> local_tensors;

  Status validate() const;
};

struct Outgoing {
  DeviceKey device;
  std::variant<protocol::Welcome, protocol::TrainTask, protocol::EvaluateTask, protocol::Refusal, protocol::KeyRoster,
               protocol::ShareBundle, protocol::UnmaskRequest>
      message;
  bool with_model = false;  // attach the current global model as the payload
};

// When a phase of a round closed, in seconds after the round's tasks went
// out, and how many cohort members were still in the round after it.
struct PhaseTime {
  const char* phase;  // "training" (plain), or a secure round's "advertising", "sharing", "masking", "unmasking"
  double seconds;
  std::size_t members;
};

struct RoundRecord {
  std::uint64_t round = 0;
  Clock::time_point started{};  // when the tasks went out, on the caller's clock
  std::uint64_t version_before = 0;
  std::uint64_t version_after = 0;  // version_before when abandoned
  std::size_t cohort = 0;
  std::size_t reported = 0;
  std::size_t stragglers = 0;  // cohort members still connected that had not reported at the deadline
  std::size_t dropped = 0;     // cohort members that went silent before reporting
  std::size_t rejected = 0;    // updates refused (wrong round, size, base version, ...)
  // Secure rounds: the sum of min(samples, weight_cap) that the secure sum's
  // total weight gives (to within its quantisation); 0 with DP's uniform weights.
  std::uint64_t samples = 0;
  double mean_loss_after = 0;      // sample-weighted, as the devices measured it
  double mean_accuracy_after = 0;
  bool applied = false;
  std::string abandon_reason;  // empty when applied
  double seconds = 0;        // from the tasks going out to the close
  std::vector<PhaseTime> phases;  // the phases that closed, in order
  double apply_seconds = 0;  // combining and the server optimiser step (wall-clock time)
  bool secure = false;
  double clip_norm = 0;      // the round's C (0: none)
  double epsilon = 0;        // privacy spent after this round (DP rounds; 0 otherwise)
  double delta = 0;
};

struct EvaluationRecord {
  std::uint64_t round = 0;  // the training round whose result was evaluated
  std::uint64_t model_version = 0;
  std::size_t asked = 0;
  std::size_t reported = 0;
  std::uint64_t samples = 0;
  double loss = 0;  // sample-weighted means of the devices' reports
  double accuracy = 0;
  double seconds = 0;
};

class RoundCoordinator {
 public:
  // `rounds_started` continues the round numbering of a restored checkpoint.
  // Round nonces and central DP noise draw from `random` (a real server:
  // the operating system's), which must outlive the coordinator.
  static Result<RoundCoordinator> create(const RoundConfig& config, weights::Weights global, ServerOptimizer optimizer,
                                         std::uint64_t rounds_started,
                                         crypto::RandomSource& random = crypto::system_random());

  void on_hello(const DeviceKey& device, const protocol::Hello& hello, Clock::time_point now);
  // A heartbeat from a device without a session (the aggregator restarted)
  // is answered with an "unknown device" refusal, asking it to say hello.
  // A sequence number that does not exceed the last one from the device
  // (since its hello) is refused, and does not count as a sign of life.
  void on_heartbeat(const DeviceKey& device, std::uint64_t sequence, Clock::time_point now);
  // Folds one part of a device's update if it is valid; otherwise returns
  // why not (and queues a Refusal to the device, which then has no further
  // part of that update taken). `payload` is the part's frame bytes. The
  // device has reported once its last part is folded.
  std::optional<std::string> on_update(const DeviceKey& device, const protocol::UpdateReport& report,
                                       std::span<const std::uint8_t> payload, Clock::time_point now);
  std::optional<std::string> on_evaluation(const DeviceKey& device, const protocol::EvaluationReport& report,
                                           Clock::time_point now);
  // The phases of a secure round; each returns why a message was refused
  // (and queues a Refusal), or nullopt.
  std::optional<std::string> on_advertise(const DeviceKey& device, const protocol::AdvertiseKeys& message,
                                          Clock::time_point now);
  std::optional<std::string> on_shares(const DeviceKey& device, const protocol::ShareKeys& message,
                                       Clock::time_point now);
  std::optional<std::string> on_masked_input(const DeviceKey& device, const protocol::MaskedInput& message,
                                             std::span<const std::uint8_t> payload, Clock::time_point now);
  std::optional<std::string> on_unmask(const DeviceKey& device, const protocol::UnmaskResponse& message,
                                       Clock::time_point now);
  // Queues a refusal for a message the caller could not decode.
  void refuse_message(const DeviceKey& device, const std::string& fault, const std::string& detail) {
    refuse(device, fault, detail);
  }
  // Forgets a device whose enrolment was revoked: it leaves the open round
  // (whatever of its update was folded stays, as for any refused update) and
  // the open evaluation, and is never picked again unless it says hello.
  void on_revoked(const DeviceKey& device, Clock::time_point now);
  // Starts and closes rounds as devices and deadlines allow. No round
  // starts while a finished one waits in take_finished().
  void on_tick(Clock::time_point now);
  // The next time a tick has a deadline to act on, if no message comes
  // first (Clock::time_point::max(): none). A round that enough devices
  // allow starts at the first tick after their messages.
  Clock::time_point next_deadline() const;

  std::vector<Outgoing> take_outgoing();
  std::vector<RoundRecord> take_finished();
  std::vector<EvaluationRecord> take_evaluations();

  const weights::Weights& global() const { return global_; }
  // The layout indices of the tensors that stay on the devices (FedBN).
  const std::vector<std::uint64_t>& local_tensors() const { return local_tensors_; }
  const ServerOptimizer& optimizer() const { return optimizer_; }
  std::uint64_t rounds_started() const { return rounds_started_; }
  bool round_open() const { return round_.has_value(); }
  // A finished round or evaluation waits to be taken.
  bool has_finished() const { return !finished_.empty() || !evaluations_.empty(); }
  // Why no further round will start (the privacy budget is spent, a secure
  // round cannot be set up); empty while rounds go on.
  const std::string& stopped_reason() const { return stopped_; }
  bool evaluation_open() const { return evaluation_.has_value(); }
  std::size_t connected_devices() const { return devices_.size(); }
  double clip_norm() const { return clip_norm_; }
  const RdpAccountant& accountant() const { return accountant_; }
  // What a checkpoint keeps of privacy; nullopt while no round has been
  // private and the clip norm does not adapt.
  std::optional<PrivacyState> privacy_state() const;
  // Continues a checkpoint's privacy accounting, and adaptive clipping from
  // its clip norm. Fails, changing nothing, when it used other RDP orders.
  Status restore_privacy(const PrivacyState& state);

 private:
  struct DeviceState {
    std::uint64_t model_version = 0;
    bool eligible = false;
    Clock::time_point last_seen;
    std::uint64_t last_heartbeat = 0;  // sequence number; the device counts from 1
  };
  struct Upload {  // one cohort member's update, arriving part by part
    std::size_t number;     // the combiner's number for it
    std::uint64_t samples;  // its weight, as the first part gave it
    std::size_t received = 0;  // values folded so far
    double squared_norm = 0;   // of the values folded so far
  };
  struct OpenRound {
    std::uint64_t id = 0;
    std::set<DeviceKey> cohort;
    std::set<DeviceKey> reported;
    std::set<DeviceKey> refused;  // members whose update was refused; no more parts are taken
    std::map<DeviceKey, Upload> uploads;
    std::unique_ptr<UpdateCombiner> combiner;
    Clock::time_point started;
    Clock::time_point deadline;
    std::size_t rejected = 0;
    std::uint64_t samples = 0;
    double loss_sum = 0;
    double accuracy_sum = 0;
    // Secure mode:
    std::optional<SecureAggregationRound> secure;
    protocol::SecureParams secure_params;
    Clock::time_point phase_deadline;
    std::vector<PhaseTime> phases;
    std::set<DeviceKey> metrics_from;  // members whose masked input's metrics are in the sums
    std::map<DeviceKey, Clock::time_point> upload_deadlines;  // masking: when a member's upload loses its turn
    // DP:
    double sampling_rate = 0;
    double update_noise_multiplier = 0;  // z for the updates (above the configured z when C adapts)
    double count_noise_stddev = 0;
    std::uint64_t unclipped = 0;         // plain mode: reports that said they were not clipped
    std::string abandon_reason;          // set when a secure phase fails
  };
  struct OpenEvaluation {
    EvaluationRecord record;
    std::set<DeviceKey> asked;
    std::set<DeviceKey> reported;
    Clock::time_point started;
    Clock::time_point deadline;
  };

  RoundCoordinator(const RoundConfig& config, weights::Weights global, ServerOptimizer optimizer,
                   std::uint64_t rounds_started, crypto::RandomSource& random);
  bool is_candidate(const DeviceState& state) const { return state.eligible || !config_.require_eligible; }
  void set_device(const DeviceKey& device, DeviceState state);
  void erase_device(std::map<DeviceKey, DeviceState>::iterator device);
  bool touch(const DeviceKey& device, Clock::time_point now);  // false for an unknown device
  void forget_silent_devices(Clock::time_point now);
  void try_start_round(Clock::time_point now);
  void close_round(Clock::time_point now);
  void close_round_if_all_answered(Clock::time_point now);  // every member reported or was refused
  void start_evaluation(Clock::time_point now);
  void close_evaluation(Clock::time_point now);
  bool send_model_if_behind(const DeviceKey& device);
  std::optional<std::string> check_update(const DeviceKey& device, const protocol::UpdateReport& report,
                                          std::span<const std::uint8_t> payload) const;
  std::optional<std::string> fold_part(const DeviceKey& device, const protocol::UpdateReport& report,
                                       std::span<const std::uint8_t> payload);
  void refuse(const DeviceKey& device, const std::string& fault, const std::string& detail);
  // Secure rounds (round_coordinator_secure.cpp).
  std::optional<std::string> start_secure(OpenRound& round, protocol::TrainTask& task,
                                          const std::vector<DeviceKey>& cohort);
  std::optional<std::string> secure_problem(const DeviceKey& device, std::optional<std::string> problem,
                                            Clock::time_point now);
  void advance_secure_if_due(Clock::time_point now);
  // Queues a secure round's messages; a share bundle starts its member's upload clock.
  void send_secure(std::vector<std::pair<std::string, SecureMessage>> messages, Clock::time_point now);
  // Masking: gives up on uploads silent past their deadline, so the next members may upload.
  void expire_uploads(Clock::time_point now);
  // The mean update and unclipped fraction from the recovered sum, or why not.
  Result<std::vector<float>> secure_mean(double& unclipped_fraction);
  // DP and clipping: the plan for devices, the noise and clip step at the close.
  std::optional<std::string> plan_privacy(OpenRound& round, protocol::TrainTask& task, std::size_t candidates);
  // Plain mode with DP: adds a part to the update's norm, or says why the
  // update would then exceed the round's clip norm.
  std::optional<std::string> add_to_norm(Upload& upload, std::span<const float> part) const;
  void add_central_noise(std::vector<float>& mean, std::size_t reports);
  void adapt_clip(double unclipped_fraction);
  // Moves the global model (and the optimiser's moments) one step along `mean`.
  void step_global(std::span<const float> mean);
  // Zeroes the mean's local tensors (FedBN), before it is checked and applied.
  void drop_local_tensors(std::span<float> mean) const;
  // The first value of the global model that the step along `mean` would make non-finite.
  std::optional<std::size_t> first_non_finite_step(std::span<const float> mean) const;
  // Applies the round's mean, or says why it cannot (a value not finite):
  // the global model and the optimiser change only when all is finite.
  std::optional<std::string> apply_mean(std::vector<float> mean, RoundRecord& record);

  RoundConfig config_;
  weights::Weights global_;
  std::vector<std::uint64_t> local_tensors_;
  ServerOptimizer optimizer_;
  std::uint64_t rounds_started_;
  std::mt19937_64 rng_;
  std::map<DeviceKey, DeviceState> devices_;
  std::size_t candidates_ = 0;  // devices_ that may be picked for a cohort
  Clock::time_point next_forget_scan_ = Clock::time_point::min();
  std::optional<OpenRound> round_;
  std::optional<OpenEvaluation> evaluation_;
  std::vector<Outgoing> outbox_;
  std::vector<RoundRecord> finished_;
  std::vector<EvaluationRecord> evaluations_;
  double clip_norm_;
  RdpAccountant accountant_;
  std::string stopped_;
  crypto::RandomSource* random_;
  std::mt19937_64 noise_rng_;
};

}  // namespace shoal::aggregator
