// The tcp transport of shoal-sim: the real AggregatorServer and one real
// client::Agent per device (one thread each), over loopback CurveZMQ, in
// real time. It exists as an end-to-end check of the socket path for small
// fleets; the fleet engine is what scales.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>

#include "shoal/aggregator/aggregator_config.h"
#include "shoal/client/dataset.h"
#include "shoal/simulations/partition.h"
#include "shoal/simulations/simulation.h"

namespace shoal::simulations {

using TcpRoundObserver =
    std::function<Status(const aggregator::RoundRecord&, const aggregator::RoundCosts&, const weights::Weights&)>;

// The most devices the tcp transport runs on this machine (each agent holds
// threads and file descriptors); its error says why a fleet is too large.
Status check_tcp_fleet_size(std::size_t devices);

// Runs `server` (its state_dir, initial weights, round and strategy set;
// keys and enrolment are made here in `work_dir`) with one agent per part
// of `partition`, until the last round.
Status run_tcp_fleet(const SimulationConfig& config, aggregator::AggregatorConfig server, const client::Dataset& train,
                     const Partition& partition, const std::filesystem::path& work_dir, std::ostream& server_log,
                     const TcpRoundObserver& on_round);

}  // namespace shoal::simulations
