#include "shoal/simulations/fleet_engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "fleet_releases.h"
#include "shoal/client/local_tensors.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/hash.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/protocol/round_messages.h"
#include "shoal/updater/delta_codec.h"

namespace shoal::simulations {
namespace {

using std::chrono::duration;
using std::chrono::duration_cast;

VirtualTime from_seconds(double seconds) { return duration_cast<VirtualTime>(duration<double>(seconds)); }
double to_seconds(VirtualTime time) { return duration<double>(time).count(); }

// A seed for one purpose of one party, from the fleet's.
crypto::RandomSeed derive_seed(std::uint64_t fleet_seed, std::string_view purpose, std::uint64_t a, std::uint64_t b) {
  std::uint8_t numbers[24];
  for (int i = 0; i < 8; ++i) {
    numbers[i] = static_cast<std::uint8_t>(fleet_seed >> (8 * i));
    numbers[8 + i] = static_cast<std::uint8_t>(a >> (8 * i));
    numbers[16 + i] = static_cast<std::uint8_t>(b >> (8 * i));
  }
  const auto digest = crypto::Blake2b256().update(purpose).update(numbers).finish();
  return crypto::RandomSeed(std::span<const std::uint8_t, 32>(digest.data(), 32));
}

// A number in [0, 1) for one purpose of one party, from the fleet's seed.
double derive_unit(std::uint64_t fleet_seed, std::string_view purpose, std::uint64_t a, std::uint64_t b) {
  const auto seed = derive_seed(fleet_seed, purpose, a, b);
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= static_cast<std::uint64_t>(seed.span()[i]) << (8 * i);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// Adds the wall time of its scope to a total.
class Stopwatch {
 public:
  explicit Stopwatch(double& total) : total_(total), start_(Clock::now()) {}
  ~Stopwatch() { total_ += duration<double>(Clock::now() - start_).count(); }

 private:
  double& total_;
  Clock::time_point start_;
};

bool is_secure_phase(protocol::MessageType type) {
  switch (type) {
    case protocol::MessageType::advertise_keys:
    case protocol::MessageType::key_roster:
    case protocol::MessageType::share_keys:
    case protocol::MessageType::share_bundle:
    case protocol::MessageType::masked_input:
    case protocol::MessageType::unmask_request:
    case protocol::MessageType::unmask_response: return true;
    default: return false;
  }
}

// The phase a device must get through to act on a message of this type.
DropPhase phase_of(protocol::MessageType type) {
  switch (type) {
    case protocol::MessageType::key_roster: return DropPhase::sharing;
    case protocol::MessageType::share_bundle: return DropPhase::masking;
    case protocol::MessageType::unmask_request: return DropPhase::unmasking;
    default: return DropPhase::none;
  }
}

std::size_t size_of(const client::Frames& frames) {
  std::size_t bytes = 0;
  for (const auto& frame : frames) bytes += frame.size();
  return bytes;
}

// One global model version, shared by every device that holds it.
struct SharedModel {
  explicit SharedModel(weights::Weights model) : weights(std::move(model)) {}
  const crypto::Blake2b256Digest& values_hash() {
    std::call_once(hashed, [&] { hash = updater::values_hash(weights); });
    return hash;
  }
  weights::Weights weights;
  std::once_flag hashed;
  crypto::Blake2b256Digest hash{};
};

}  // namespace

// Interns received models: a device that decodes the version others hold
// keeps a reference to their copy and frees its own.
class SharedModelLibrary {
 public:
  std::shared_ptr<SharedModel> intern(weights::Weights model) {
    std::shared_ptr<SharedModel> existing;
    {
      std::lock_guard lock(mutex_);  // devices adopt models from several threads at once
      existing = by_version_[model.version()].lock();
    }
    if (existing && same(existing->weights, model)) return existing;
    auto fresh = std::make_shared<SharedModel>(std::move(model));
    std::lock_guard lock(mutex_);
    by_version_[fresh->weights.version()] = fresh;
    return fresh;
  }

 private:
  static bool same(const weights::Weights& a, const weights::Weights& b) {
    return a.layout().hash() == b.layout().hash() && a.values().size() == b.values().size() &&
           std::memcmp(a.values().data(), b.values().data(), a.values().size() * sizeof(float)) == 0;
  }


  std::mutex mutex_;
  std::map<std::uint64_t, std::weak_ptr<SharedModel>> by_version_;
};

namespace {

class SharedModelHolder final : public client::ModelHolder {
 public:
  explicit SharedModelHolder(SharedModelLibrary* library) : library_(library) {}
  const weights::Weights* model() const override { return model_ ? &model_->weights : nullptr; }
  const crypto::Blake2b256Digest& model_hash() override { return model_->values_hash(); }
  void adopt(weights::Weights model) override { model_ = library_->intern(std::move(model)); }
  void forget() override { model_.reset(); }
  const std::shared_ptr<SharedModel>& shared() const { return model_; }

 private:
  SharedModelLibrary* library_;
  std::shared_ptr<SharedModel> model_;
};

// A device's randomness: a ChaCha20 stream per round, seeded by the fleet's
// seed, the device and the round.
class DeviceRandomness final : public client::RoundRandomness {
 public:
  DeviceRandomness(std::uint64_t fleet_seed, std::uint32_t device) : fleet_seed_(fleet_seed), device_(device) {}
  crypto::RandomSource& for_round(std::uint64_t round) override {
    if (!source_ || round != round_) {
      source_.emplace(derive_seed(fleet_seed_, "shoal-sim/device-round", device_, round));
      round_ = round;
    }
    return *source_;
  }

 private:
  std::uint64_t fleet_seed_;
  std::uint32_t device_;
  std::uint64_t round_ = 0;
  std::optional<crypto::DeterministicRandom> source_;
};

// What a device holds of the tensors kept local before it first trains them: nothing.
const std::shared_ptr<const client::LocalValues>& no_local_values() {
  static const auto none = std::make_shared<const client::LocalValues>();
  return none;
}

// Training or evaluation under way for a device; its pool job writes the result.
struct Work {
  client::EvaluateRequest evaluation;  // for an evaluation
  std::uint64_t round = 0;             // for training
  double seconds = 0;                  // virtual
  std::optional<Result<client::TrainingResult>> trained;
  std::optional<Result<client::Evaluation>> evaluated;
  std::optional<client::LocalValues> kept_local;  // FedBN: what training made of the device's local tensors
};

}  // namespace

struct FleetEngine::Device {
  Device(std::uint32_t number, crypto::IdentityKeyPair identity, const FleetModel& fleet,
         SharedModelLibrary* library, std::uint64_t seed)
      : number(number),
        identity(std::move(identity)),
        key(crypto::format_ed25519_public(this->identity.public_identity().ed25519())),
        profile(fleet.profile(number)),
        rng(fleet.generator(number)),
        holder(library),
        randomness(seed, number) {}

  std::uint32_t number;
  crypto::IdentityKeyPair identity;
  aggregator::DeviceKey key;
  DeviceProfile profile;
  DeviceRng rng;
  SharedModelHolder holder;
  DeviceRandomness randomness;
  std::unique_ptr<client::DeviceSession> session;
  bool online = false;
  bool eligible = true;
  std::uint64_t epoch = 0;  // goes up each time it goes offline: what was under way is lost
  VirtualTime online_since{0};  // a message sent before this was lost while it was away
  VirtualTime uplink_free{0}, downlink_free{0};
  Clock::time_point wake = Clock::time_point::max();  // what the session last asked for
  VirtualTime wake_event{-1};                          // when its pending wake event is
  DropPhase drop = DropPhase::none;  // where it vanishes from its current round
  // FedBN: its own values of the tensors kept local; replaced, never changed,
  // so a job under way reads the values it started with.
  std::shared_ptr<const client::LocalValues> local = no_local_values();
  DeviceRelease release;  // with settings.releases: the release versions it runs
};

struct FleetEngine::Event {
  enum class Kind : std::uint8_t {
    online, offline, to_device, to_server, wake, trained, evaluated, release_check, release_downloaded
  };
  VirtualTime at{0};
  std::uint64_t sequence = 0;
  Kind kind = Kind::wake;
  std::uint32_t device = 0;
  std::uint64_t epoch = 0;  // a device's own events: its epoch when scheduled
  client::Frames frames;
  std::shared_ptr<Work> work;
  TrainerPool::Ticket ticket;  // the pool job computing `work`, if any
  VirtualTime sent{0};         // to_device: when the server sent it
  std::uint64_t version = 0;   // release_downloaded: the release version
};

// What handling one device's events produced: new events (in the order
// scheduled, without sequence numbers until they are merged) and the
// thread time spent.
struct FleetEngine::Effects {
  VirtualTime now{0};  // the time of the event being handled
  std::vector<Event> scheduled;
  std::vector<std::uint32_t> trained;
  WallClockSplit wall;
  std::uint64_t events = 0;
  void schedule(Event event) { scheduled.push_back(std::move(event)); }
  Clock::time_point clock() const { return Clock::time_point{} + now; }
};

// A min-heap of events by (time, sequence): equal times keep the order they were scheduled in.
struct FleetEngine::Queue {
  static bool later(const Event& a, const Event& b) {
    return a.at != b.at ? a.at > b.at : a.sequence > b.sequence;
  }
  void push(Event event) {
    heap.push_back(std::move(event));
    std::push_heap(heap.begin(), heap.end(), later);
  }
  Event pop() {
    std::pop_heap(heap.begin(), heap.end(), later);
    Event event = std::move(heap.back());
    heap.pop_back();
    return event;
  }
  bool empty() const { return heap.empty(); }
  VirtualTime next() const { return heap.front().at; }
  std::vector<Event> heap;
};

// Threads that run one window's devices side by side (the caller's thread
// takes part too), each device's events in order on one thread.
class FleetEngine::SessionThreads {
 public:
  explicit SessionThreads(std::size_t threads) {
    for (std::size_t i = 1; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~SessionThreads() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }
  // Calls job(i) for every i in [0, count), spread over the threads.
  void run(std::size_t count, const std::function<void(std::size_t)>& job) {
    if (count == 1 || threads_.empty()) {
      for (std::size_t i = 0; i < count; ++i) job(i);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
      count_ = count;
      next_ = 0;
      busy_ = threads_.size();
      ++generation_;
    }
    wake_.notify_all();
    take(job, count);
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
    job_ = nullptr;
  }

 private:
  void take(const std::function<void(std::size_t)>& job, std::size_t count) {
    for (std::size_t i = next_.fetch_add(1); i < count; i = next_.fetch_add(1)) job(i);
  }
  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void(std::size_t)>* job;
      std::size_t count;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        job = job_;
        count = count_;
      }
      take(*job, count);
      {
        std::lock_guard lock(mutex_);
        --busy_;
      }
      done_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t count_ = 0;
  std::atomic<std::size_t> next_{0};
  std::size_t busy_ = 0;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
};

namespace {

// A message's arrival over a link that carries one message at a time.
VirtualTime transfer(VirtualTime now, VirtualTime& link_free, std::size_t bytes, float bytes_per_second,
                     float latency_seconds) {
  const auto start = std::max(now, link_free);
  link_free = start + from_seconds(static_cast<double>(bytes) / bytes_per_second);
  return link_free + from_seconds(latency_seconds);
}

}  // namespace

Result<std::unique_ptr<FleetEngine>> FleetEngine::create(const EngineSettings& settings, const client::Dataset& train,
                                                         const Partition& partition, TrainerPool& pool,
                                                         std::ostream& server_log, client::LogSink device_log) {
  if (auto status = settings.fleet.validate(); !status) return status.error();
  if (partition.empty()) return make_error(ErrorCode::invalid_argument, "fleet.devices must be at least 1");
  std::unique_ptr<FleetEngine> engine(new FleetEngine(settings, train, partition, pool, server_log, std::move(device_log)));
  engine->server_random_ =
      std::make_unique<crypto::DeterministicRandom>(derive_seed(settings.seed, "shoal-sim/server", 0, 0));
  auto service = aggregator::RoundService::open(settings.server, server_log, Clock::time_point{},
                                                {settings.wall_clock_log}, *engine->server_random_);
  if (!service) return service.error();
  engine->service_ = std::move(service).value();
  engine->service_->set_observer([engine = engine.get()](const aggregator::RoundRecord& record,
                                                         const aggregator::RoundCosts& costs,
                                                         const weights::Weights& global) {
    if (!engine->observer_ || !engine->observer_status_) return;
    engine->observer_status_ = engine->observer_(record, costs, global, engine->server_now_);
  });
  if (settings.releases) {
    if (!(settings.run_for_s > 0)) {
      return make_error(ErrorCode::invalid_argument,
                        "a fleet that checks releases never runs out of events: give it run_for_s");
    }
    auto releases = FleetReleaseChannel::open(*settings.releases, settings.server.state_dir / "simulated-release-trust");
    if (!releases) return releases.error();
    engine->releases_ = std::move(releases).value();
  }
  const auto layout = engine->service_->coordinator().global().layout();
  engine->devices_.reserve(partition.size());
  for (std::size_t i = 0; i < partition.size(); ++i) {
    const auto number = static_cast<std::uint32_t>(i);
    const auto seed = derive_seed(settings.seed, "shoal-sim/identity", i, 0);
    auto identity = crypto::IdentityKeyPair::from_seed(crypto::Ed25519Seed(seed.span()));
    engine->devices_.push_back(
        std::make_unique<Device>(number, std::move(identity), engine->fleet_, engine->library_.get(), settings.seed));
    auto& device = *engine->devices_.back();
    if (settings.releases) device.release.active = settings.releases->installed_version;
    engine->device_by_key_.emplace(device.key, number);
    engine->trusted_peers_.insert(device.identity.public_identity().ed25519());
  }
  for (auto& device : engine->devices_) {
    client::SessionSettings session;
    session.model = settings.model_name;
    session.eligible = [device = device.get()] { return device->eligible; };
    session.trusted_peers = &engine->trusted_peers_;
    auto log = [engine = engine.get(), number = device->number](const std::string& line) {
      engine->device_log_("device-" + std::to_string(number) + ": " + line);
    };
    device->session = std::make_unique<client::DeviceSession>(std::move(session), device->identity, layout,
                                                              device->holder, device->randomness, std::move(log));
  }
  return engine;
}

FleetEngine::FleetEngine(const EngineSettings& settings, const client::Dataset& train, const Partition& partition,
                         TrainerPool& pool, std::ostream& server_log, client::LogSink device_log)
    : settings_(settings),
      train_(train),
      partition_(partition),
      pool_(pool),
      server_log_(server_log),
      device_log_(std::move(device_log)),
      fleet_(settings.fleet, settings.seed),
      library_(std::make_unique<SharedModelLibrary>()),
      queue_(std::make_unique<Queue>()),
      threads_(std::make_unique<SessionThreads>(settings.session_threads == 0
                                                    ? std::max(1u, std::thread::hardware_concurrency())
                                                    : settings.session_threads)),
      // Nothing a device does reaches the server, nor the server a device, in less than a latency:
      // the events of a window that long are independent across devices.
      lookahead_(from_seconds(settings.fleet.latency_ms / 1000)) {
  // Devices take what the server sends, whole models included; the server
  // takes nothing larger than an update part, as over a socket.
  server_limits_.max_payload_bytes = protocol::kUpdatePartValues * sizeof(float);
}

FleetEngine::~FleetEngine() = default;

void FleetEngine::schedule(Event event) {
  event.sequence = sequence_++;
  queue_->push(std::move(event));
}

Status FleetEngine::run() {
  for (auto& device : devices_) {
    // Each device starts online as often as the fleet is online; the rest join later.
    double join = 0;
    if (!fleet_.always_online() &&
        std::uniform_real_distribution<double>(0, 1)(device->rng) >= fleet_.online_share_at(device->profile, 0)) {
      join = fleet_.offline_session(device->profile, 0, device->rng);
    }
    schedule({from_seconds(join), 0, Event::Kind::online, device->number, device->epoch, {}, nullptr, nullptr});
    if (releases_) {
      const double first = derive_unit(settings_.seed, "shoal-sim/release-check", device->number, 0) *
                           releases_->settings().check_every_s;
      schedule({from_seconds(first), 0, Event::Kind::release_check, device->number, 0, {}, nullptr, nullptr});
    }
  }
  const VirtualTime stop_at = settings_.run_for_s > 0 ? from_seconds(settings_.run_for_s) : VirtualTime::max();
  VirtualTime ticked_at{-1};
  // With releases the fleet runs for run_for_s, whether rounds are left or not.
  while (releases_ || !service_->done()) {
    const auto next_event = queue_->empty() ? VirtualTime::max() : queue_->next();
    // The server ticks once the messages of an instant are in, as its socket loop does.
    if (server_dirty_ && next_event > server_now_) {
      if (auto status = tick_server(); !status) return status;
      ticked_at = server_now_;
      continue;
    }
    const auto deadline = service_->coordinator().next_deadline();
    if (deadline != Clock::time_point::max()) {
      const auto due = std::max(deadline == Clock::time_point::min() ? server_now_ : deadline - Clock::time_point{},
                                server_now_);
      if (due <= next_event && due > ticked_at && due <= stop_at) {
        server_now_ = due;
        if (auto status = tick_server(); !status) return status;
        ticked_at = server_now_;
        continue;
      }
    }
    if (next_event > stop_at && stop_at != VirtualTime::max()) break;
    if (next_event == VirtualTime::max()) {
      return make_error(ErrorCode::invalid_argument,
                        "the simulated fleet has nothing left to do and no round can start: are enough devices "
                        "eligible and online for cohort.min_devices and cohort.min_available?");
    }
    auto event = queue_->pop();
    if (event.kind == Event::Kind::to_server) {
      server_now_ = event.at;
      ++events_;
      deliver_to_server(event);
      continue;
    }
    // Every device event of the window [t, t + lookahead): server events in
    // it wait, since neither side can reach the other within the window.
    const auto window_end = event.at + std::max(lookahead_, VirtualTime{1});
    std::vector<Event> window, server_side;
    window.push_back(std::move(event));
    while (!queue_->empty() && queue_->next() < window_end) {
      auto next = queue_->pop();
      (next.kind == Event::Kind::to_server ? server_side : window).push_back(std::move(next));
    }
    for (auto& waiting : server_side) queue_->push(std::move(waiting));  // sequence numbers kept
    run_devices(std::move(window), window_end);
  }
  wall_.worker_busy = pool_.busy_seconds();
  service_->log_done();
  return observer_status_;
}

void FleetEngine::run_devices(std::vector<Event> window, VirtualTime window_end) {
  // Each device's events, in time order.
  std::map<std::uint32_t, std::vector<Event>> by_device;
  for (auto& event : window) by_device[event.device].push_back(std::move(event));
  std::vector<std::pair<Device*, std::vector<Event>>> work;
  for (auto& [number, events] : by_device) work.emplace_back(devices_[number].get(), std::move(events));
  std::vector<Effects> effects(work.size());
  const auto start = Clock::now();
  threads_->run(work.size(), [&](std::size_t i) { handle_window(*work[i].first, work[i].second, window_end, effects[i]); });
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  // Merged in device order: the same whatever thread ran which device.
  WallClockSplit spent;
  for (auto& out : effects) {
    for (auto& event : out.scheduled) schedule(std::move(event));
    trained_devices_.insert(trained_devices_.end(), out.trained.begin(), out.trained.end());
    events_ += out.events;
    spent.training += out.wall.training;
    spent.secure_device += out.wall.secure_device;
    spent.coordination += out.wall.coordination;
  }
  // The threads' time, shared out over the wall time the window took.
  const double total = spent.training + spent.secure_device + spent.coordination;
  if (total > 0) {
    wall_.training += elapsed * spent.training / total;
    wall_.secure_device += elapsed * spent.secure_device / total;
    wall_.coordination += elapsed * spent.coordination / total;
  }
}

void FleetEngine::handle_window(Device& device, std::vector<Event>& events, VirtualTime window_end, Effects& out) {
  // Events this device schedules for itself inside the window are handled here too, in order.
  std::size_t next = 0;
  while (next < events.size()) {
    auto event = std::move(events[next++]);
    out.now = event.at;
    ++out.events;
    const std::size_t before = out.scheduled.size();
    handle(device, event, out);
    for (std::size_t i = before; i < out.scheduled.size();) {
      auto& scheduled = out.scheduled[i];
      if (scheduled.kind != Event::Kind::to_server && scheduled.at < window_end) {
        // Later than everything already handled; after the events pending at the same time.
        auto at = std::upper_bound(events.begin() + static_cast<std::ptrdiff_t>(next), events.end(), scheduled.at,
                                   [](VirtualTime time, const Event& e) { return time < e.at; });
        events.insert(at, std::move(scheduled));
        out.scheduled.erase(out.scheduled.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }
}

Status FleetEngine::tick_server() {
  const bool secure = settings_.server.round.secure.enabled && service_->coordinator().round_open();
  Status status = ok_status();
  {
    Stopwatch watch(secure ? wall_.secure_server : wall_.coordination);
    status = service_->on_tick(Clock::time_point{} + server_now_);
  }
  server_dirty_ = false;
  flush_server();
  if (!status) return status;
  if (releases_ && server_now_ >= next_release_refresh_) {
    // What the server published (a halt) is there for the devices' checks from the next virtual second on.
    next_release_refresh_ = server_now_ + std::chrono::seconds(1);
    if (auto refreshed = releases_->refresh(); !refreshed) {
      return make_error(refreshed.error().code, "the simulated devices' release check: " + refreshed.error().message);
    }
  }
  return observer_status_;
}

void FleetEngine::flush_server() {
  Stopwatch watch(wall_.coordination);
  for (auto& message : service_->take_outgoing()) {
    const auto found = device_by_key_.find(message.device);
    if (found == device_by_key_.end()) continue;
    // The server sends without knowing whether the device is still there:
    // one that went away meanwhile loses the message (checked on arrival).
    auto& device = *devices_[found->second];
    service_->count_sent(message.bytes);
    const auto arrival = transfer(server_now_, device.downlink_free, message.bytes, device.profile.downlink_bytes_s,
                                  device.profile.latency_s);
    schedule({arrival, 0, Event::Kind::to_device, device.number, 0, std::move(message.frames), nullptr, nullptr,
              server_now_});
  }
}

void FleetEngine::deliver_to_server(Event& event) {
  // Already on the wire: it arrives even if the device has gone since.
  const auto& device = *devices_[event.device];
  const std::size_t bytes = size_of(event.frames);
  auto decoded = protocol::decode_envelope(std::move(event.frames), server_limits_);
  const bool secure = decoded && is_secure_phase(decoded->type());
  Stopwatch watch(secure ? wall_.secure_server : wall_.coordination);
  service_->on_message(device.key, decoded, bytes, Clock::time_point{} + server_now_);
  server_dirty_ = true;
}

void FleetEngine::handle(Device& device, Event& event, Effects& out) {
  const bool current = device.online && event.epoch == device.epoch;
  switch (event.kind) {
    case Event::Kind::online:
      if (!device.online && event.epoch == device.epoch) go_online(device, out);
      return;
    case Event::Kind::offline:
      if (current) go_offline(device, false, out);
      return;
    case Event::Kind::to_device:
      if (device.online && device.online_since <= event.sent) to_device(device, event, out);
      return;
    case Event::Kind::to_server: return;  // the server's, never a device's
    case Event::Kind::wake:
      if (current && event.at == device.wake_event) {
        device.wake_event = VirtualTime{-1};
        {
          Stopwatch watch(out.wall.coordination);
          device.session->on_tick(out.clock());
        }
        after_session(device, out);
      }
      return;
    case Event::Kind::trained:
      if (current) on_trained(device, event, out);
      return;
    case Event::Kind::evaluated:
      if (current) on_evaluated(device, event, out);
      return;
    case Event::Kind::release_check:
      // Periodic whether it is online or not; one that is away skips it.
      out.schedule({out.now + from_seconds(releases_->settings().check_every_s), 0, Event::Kind::release_check,
                    device.number, 0, {}, nullptr, nullptr});
      if (device.online && device.release.downloading == 0) check_release(device, out);
      return;
    case Event::Kind::release_downloaded:
      if (current) on_release_downloaded(device, event, out);
      return;
  }
}

void FleetEngine::to_device(Device& device, Event& event, Effects& out) {
  auto decoded = protocol::decode_envelope(std::move(event.frames), device_limits_);
  if (!decoded) {
    device.session->on_undecodable(decoded.error());
    return after_session(device, out);
  }
  const auto type = decoded->type();
  if (type == protocol::MessageType::train_task) {
    device.drop = fleet_.drop_phase(settings_.server.round.secure.enabled, device.rng);
  }
  if (const auto phase = phase_of(type); phase != DropPhase::none && device.drop == phase) {
    return go_offline(device, true, out);  // it vanishes before acting on the message
  }
  {
    Stopwatch watch(is_secure_phase(type) ? out.wall.secure_device : out.wall.coordination);
    device.session->on_message(*decoded, out.clock());
  }
  after_session(device, out);
}

void FleetEngine::after_session(Device& device, Effects& out) {
  Stopwatch watch(out.wall.coordination);
  for (auto& frames : device.session->take_outgoing()) send_to_server(device, std::move(frames), out);
  const auto& samples = partition_[device.number];
  for (auto& request : device.session->take_work()) {
    auto work = std::make_shared<Work>();
    auto model = device.holder.shared();
    const double per_sample = 1.0 / device.profile.speed;
    TrainerPool::Ticket ticket;
    if (const auto* train = std::get_if<client::TrainRequest>(&request)) {
      work->round = train->round;
      work->seconds = settings_.protocol_only ? 0 : per_sample * static_cast<double>(samples.size() * train->plan.epochs);
      const auto due = out.now + from_seconds(work->seconds);
      if (settings_.protocol_only) {
        client::TrainingResult zeros;
        zeros.update.assign(model->weights.values().size(), 0.0f);
        zeros.samples = samples.size();
        work->trained = std::move(zeros);
      } else if (device.drop != DropPhase::training) {  // a device that will vanish first does no work
        auto plan = train->plan;
        plan.evaluate_before_after = false;  // the last epoch's running figures stand in: two passes saved
        out.trained.push_back(device.number);
        ticket = pool_.submit({to_seconds(due), device.number},
                              [&data = train_, &samples, plan, model, work, own = device.local,
                               tensors = train->local_tensors](inference::Model& local) {
                                if (auto status = client::load_personalised(local, model->weights, *own, tensors);
                                    !status) {
                                  work->trained = status.error();
                                  return;
                                }
                                work->trained = client::train(local, data, samples, plan);
                                if (*work->trained && !tensors.empty()) {
                                  work->kept_local = client::take_local(tensors, local.get_weights(0));
                                }
                              });
      }
      out.schedule({due, 0, Event::Kind::trained, device.number, device.epoch, {}, std::move(work), std::move(ticket)});
    } else {
      work->evaluation = std::get<client::EvaluateRequest>(request);
      // Evaluation is a forward pass: about a third of a training epoch.
      work->seconds = per_sample * static_cast<double>(samples.size()) / 3;
      const auto due = out.now + from_seconds(work->seconds);
      ticket = pool_.submit({to_seconds(due), device.number}, [&data = train_, &samples, model, work,
                                                               own = device.local](inference::Model& local) {
        if (auto status = client::load_personalised(local, model->weights, *own, own->tensors); !status) {
          work->evaluated = status.error();
          return;
        }
        work->evaluated = client::evaluate(local, data, samples);
      });
      out.schedule({due, 0, Event::Kind::evaluated, device.number, device.epoch, {}, std::move(work), std::move(ticket)});
    }
  }
  const auto wake = device.session->next_wakeup();
  if (wake != device.wake) {
    device.wake = wake;
    if (wake != Clock::time_point::max()) {
      device.wake_event = std::max(out.now, wake - Clock::time_point{});
      out.schedule({device.wake_event, 0, Event::Kind::wake, device.number, device.epoch, {}, nullptr, nullptr});
    }
  }
}

void FleetEngine::on_trained(Device& device, Event& event, Effects& out) {
  if (device.drop == DropPhase::training) return go_offline(device, true, out);
  auto& work = *event.work;
  if (event.ticket) {
    Stopwatch watch(out.wall.training);
    if (auto status = pool_.wait(event.ticket); !status) work.trained = status.error();
  }
  {
    Stopwatch watch(settings_.server.round.secure.enabled ? out.wall.secure_device : out.wall.coordination);
    if (work.kept_local) device.local = std::make_shared<const client::LocalValues>(std::move(*work.kept_local));
    device.session->on_trained(work.round, std::move(*work.trained), work.seconds, out.clock());
  }
  after_session(device, out);
}

void FleetEngine::on_evaluated(Device& device, Event& event, Effects& out) {
  auto& work = *event.work;
  {
    Stopwatch watch(out.wall.training);
    if (auto status = pool_.wait(event.ticket); !status) work.evaluated = status.error();
  }
  device.session->on_evaluated(work.evaluation, std::move(*work.evaluated), out.clock());
  after_session(device, out);
}

void FleetEngine::send_to_server(Device& device, client::Frames frames, Effects& out) {
  const auto arrival =
      transfer(out.now, device.uplink_free, size_of(frames), device.profile.uplink_bytes_s, device.profile.latency_s);
  out.schedule({arrival, 0, Event::Kind::to_server, device.number, device.epoch, std::move(frames), nullptr, nullptr});
}

void FleetEngine::check_release(Device& device, Effects& out) {
  Stopwatch watch(out.wall.coordination);
  const auto& model = releases_->settings().model;
  auto check = releases_->check(device.release, crypto::to_hex(device.identity.public_identity().ed25519()));
  if (!check) {
    device_log_("device-" + std::to_string(device.number) + ": release check: " + check.error().message);
    return;
  }
  if (check->decision.action == updater::ReleaseAction::roll_back) {
    auto& release = device.release;
    release.rolled_back = release.active;
    std::swap(release.active, release.previous);
    auto report = release_report(model, release, ReleaseEvent::rolled_back, check->decision.version);
    send_to_server(device, protocol::encode(*report), out);
  } else if (check->decision.action == updater::ReleaseAction::install) {
    // The file comes from the mirror over the device's downlink.
    device.release.downloading = check->decision.version;
    const auto arrival = transfer(out.now, device.downlink_free, check->file->length, device.profile.downlink_bytes_s,
                                  device.profile.latency_s);
    Event downloaded{arrival, 0, Event::Kind::release_downloaded, device.number, device.epoch, {}, nullptr, nullptr};
    downloaded.version = check->decision.version;
    out.schedule(std::move(downloaded));
  }
}

void FleetEngine::on_release_downloaded(Device& device, Event& event, Effects& out) {
  auto& release = device.release;
  release.downloading = 0;
  const bool fails =
      derive_unit(settings_.seed, "shoal-sim/smoke-test", device.number, event.version) <
      releases_->settings().smoke_failure_share;
  if (!fails) {
    release.previous = release.active;
    release.active = event.version;
  }
  auto report = release_report(releases_->settings().model, release,
                               fails ? ReleaseEvent::smoke_test_failed : ReleaseEvent::installed, event.version);
  send_to_server(device, protocol::encode(*report), out);
}

void FleetEngine::go_online(Device& device, Effects& out) {
  device.online = true;
  device.online_since = out.now;
  device.eligible = fleet_.eligible(device.rng);
  device.wake = Clock::time_point::max();
  device.session->start(out.clock());
  after_session(device, out);
  if (!fleet_.always_online()) {
    const auto leave = out.now + from_seconds(fleet_.online_session(device.rng));
    out.schedule({leave, 0, Event::Kind::offline, device.number, device.epoch, {}, nullptr, nullptr});
  }
}

void FleetEngine::go_offline(Device& device, bool vanished, Effects& out) {
  device.online = false;
  ++device.epoch;  // messages on their way to it, its timers and its work are lost
  device.drop = DropPhase::none;
  device.session->on_disconnected(out.clock());
  (void)device.session->take_outgoing();
  (void)device.session->take_work();
  device.wake = Clock::time_point::max();
  device.wake_event = VirtualTime{-1};
  device.release.downloading = 0;  // a download under way is lost
  const double t = to_seconds(out.now);
  const double away = vanished ? fleet_.rejoin_after(device.profile, t, device.rng)
                               : fleet_.offline_session(device.profile, t, device.rng);
  out.schedule({out.now + from_seconds(away), 0, Event::Kind::online, device.number, device.epoch, {}, nullptr, nullptr});
}

}  // namespace shoal::simulations
