// FleetEngine: a whole fleet on a virtual clock, in one process.
//
// It runs the real aggregator logic (a RoundService: the RoundCoordinator,
// checkpoints, the metrics log) and one real DeviceSession per device on a
// discrete-event queue. Every message goes through the real encoder, its
// bytes travel a device's link (latency plus size over bandwidth, one
// message at a time each way) and the real decoder reads them on arrival,
// so the wire format is exercised and counted. Secure rounds run the real
// SecAgg+ crypto. Deadlines, transfers and training cost virtual time only:
// a device that vanishes costs the round its deadline in virtual seconds,
// not in wall time.
//
// Devices run side by side: nothing one does reaches the server, nor the
// server a device, in less than a link's latency, so the device events of a
// window that long are handled on several threads at once (each device's
// in order) and what they schedule is merged in device order.
//
// Training and evaluation run on a TrainerPool; a device holds its data
// indices and its session state, and the global model versions it holds
// are shared (one copy per version), so memory grows with devices x session
// state, not devices x model. There are no sockets and no per-device file
// descriptors. What a device draws at random comes from a generator seeded
// by the fleet's seed, the device and the round, and results are consumed
// in virtual-time order, so the same config and seed give the same metrics
// log for any number of workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "shoal/aggregator/aggregator_config.h"
#include "shoal/aggregator/round_service.h"
#include "shoal/client/dataset.h"
#include "shoal/client/device_session.h"
#include "shoal/simulations/fleet_model.h"
#include "shoal/simulations/partition.h"
#include "shoal/simulations/trainer_pool.h"

namespace shoal::simulations {

using Clock = std::chrono::steady_clock;
// Virtual time since the start of a run.
using VirtualTime = std::chrono::nanoseconds;

class SharedModelLibrary;   // fleet_engine.cpp: one copy of each global model version
class FleetReleaseChannel;  // fleet_releases.h: the release repository as the devices see it

// A staged rollout beside training: devices check a release repository
// (built by shoal-release) every check_every_s of virtual time, decide as
// agents do, download the chosen file over their link, and send health
// reports to the round service, whose rollout guard may halt the rollout.
// A device's smoke test is simulated: a seeded share of devices fails each
// new version. Models are not loaded and accuracy is not measured.
struct FleetReleases {
  std::filesystem::path repository;    // its metadata/ and targets/ directories
  std::filesystem::path trusted_root;  // the root.json the devices trust first
  std::string model;
  std::uint64_t installed_version = 0;  // what every device runs at the start (with nothing before it); 0: nothing
  double check_every_s = 600;           // virtual; each device's first check falls at random within it
  double smoke_failure_share = 0;       // in [0, 1]
};

struct EngineSettings {
  aggregator::AggregatorConfig server;  // state_dir, initial_weights, round, strategy; no sockets
  std::filesystem::path wall_clock_log;  // where the metrics log's wall-clock fields go
  FleetModelConfig fleet;
  std::uint64_t seed = 0;        // device identities and randomness, fleet profiles
  std::string model_name;        // for log lines
  bool protocol_only = false;    // train nothing: every device sends an all-zero update at once
  std::size_t session_threads = 0;  // threads that run device sessions side by side; 0: one per core
  std::optional<FleetReleases> releases;
  // Virtual seconds after which run() returns, rounds left or not; 0: no
  // limit. Needed with releases, whose fleet runs for this long even when
  // the rounds are done.
  double run_for_s = 0;
};

// Where the wall time went (time on threads running side by side is
// shared out over the wall time it took).
struct WallClockSplit {
  double training = 0;         // waiting for training results from the pool
  double secure_device = 0;    // the devices' side of secure rounds
  double secure_server = 0;    // the server's side of secure rounds (unmasking included)
  double coordination = 0;     // everything else: events, encoding, decoding, plain folding, checkpoints
  double worker_busy = 0;      // the pool's workers, all together (overlaps the above)
};

class FleetEngine {
 public:
  // Called after each finished round, once it is checkpointed, with the
  // bytes it moved, the global model it left and the virtual time it
  // closed. A failure stops the run with that error.
  using RoundObserver = std::function<Status(const aggregator::RoundRecord&, const aggregator::RoundCosts&,
                                             const weights::Weights& global, VirtualTime)>;

  // `train` and `partition` (one index list per device) must outlive the
  // engine, as must `pool`, `server_log` and `device_log`'s targets.
  // `device_log` is called from several threads at once.
  static Result<std::unique_ptr<FleetEngine>> create(const EngineSettings& settings, const client::Dataset& train,
                                                     const Partition& partition, TrainerPool& pool,
                                                     std::ostream& server_log, client::LogSink device_log);
  ~FleetEngine();

  void set_observer(RoundObserver observer) { observer_ = std::move(observer); }
  // Runs until the model reaches its final version or no round can start,
  // or to run_for_s.
  Status run();

  // The server's virtual clock: the time of its latest message or tick.
  VirtualTime now() const { return server_now_; }
  const WallClockSplit& wall_clock() const { return wall_; }
  std::uint64_t events() const { return events_; }
  // The device of every training job asked of the pool, in order.
  const std::vector<std::uint32_t>& trained_devices() const { return trained_devices_; }
  const aggregator::RoundService& service() const { return *service_; }

  struct Device;  // one simulated device (fleet_engine.cpp)

 private:
  FleetEngine(const EngineSettings& settings, const client::Dataset& train, const Partition& partition,
              TrainerPool& pool, std::ostream& server_log, client::LogSink device_log);
  struct Event;
  struct Effects;
  struct Queue;
  class SessionThreads;

  void schedule(Event event);
  // The server's side, on the engine's thread.
  void deliver_to_server(Event& event);
  Status tick_server();
  void flush_server();
  // A window of device events: devices side by side, each device's events in order.
  void run_devices(std::vector<Event> window, VirtualTime window_end);
  void handle_window(Device& device, std::vector<Event>& events, VirtualTime window_end, Effects& out);
  // One device's side; what it schedules goes to `out`.
  void handle(Device& device, Event& event, Effects& out);
  void to_device(Device& device, Event& event, Effects& out);
  void after_session(Device& device, Effects& out);
  void go_online(Device& device, Effects& out);
  void go_offline(Device& device, bool vanished, Effects& out);
  void on_trained(Device& device, Event& event, Effects& out);
  void on_evaluated(Device& device, Event& event, Effects& out);
  void send_to_server(Device& device, client::Frames frames, Effects& out);
  void check_release(Device& device, Effects& out);
  void on_release_downloaded(Device& device, Event& event, Effects& out);

  EngineSettings settings_;
  const client::Dataset& train_;
  const Partition& partition_;
  TrainerPool& pool_;
  std::ostream& server_log_;
  client::LogSink device_log_;
  FleetModel fleet_;
  std::unique_ptr<SharedModelLibrary> library_;
  std::unique_ptr<FleetReleaseChannel> releases_;
  std::unique_ptr<aggregator::RoundService> service_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<SessionThreads> threads_;
  VirtualTime lookahead_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::map<aggregator::DeviceKey, std::uint32_t> device_by_key_;
  client::TrustedPeers trusted_peers_;
  crypto::RandomSeed randomness_seed_;
  std::unique_ptr<crypto::DeterministicRandom> server_random_;
  protocol::Limits server_limits_, device_limits_;
  VirtualTime server_now_{0};
  VirtualTime next_release_refresh_{0};  // the release repository is read again at most once a virtual second
  bool server_dirty_ = true;
  std::uint64_t sequence_ = 0;
  std::uint64_t events_ = 0;
  std::vector<std::uint32_t> trained_devices_;
  WallClockSplit wall_;
  RoundObserver observer_;
  Status observer_status_ = ok_status();
};

}  // namespace shoal::simulations
