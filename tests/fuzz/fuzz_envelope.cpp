// Fuzzes the envelope decoder and every typed message decoder. The input is
// split into frames: each frame is a 2-byte little-endian length and that many
// bytes; the first frame is the msgpack header.
#include <cstddef>
#include <cstdint>

#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/protocol/round_messages.h"

using namespace shoal::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<zmq::message_t> frames;
  while (size >= 2 && frames.size() < 70) {
    const std::size_t length = std::min<std::size_t>(data[0] | data[1] << 8, size - 2);
    frames.emplace_back(data + 2, length);
    data += 2 + length;
    size -= 2 + length;
  }
  Limits limits;
  limits.max_header_bytes = 4096;
  limits.max_payload_bytes = 4096;
  auto envelope = decode_envelope(std::move(frames), limits);
  if (!envelope) return 0;
  (void)decode<Hello>(*envelope);
  (void)decode<Welcome>(*envelope);
  (void)decode<Heartbeat>(*envelope);
  (void)decode<Refusal>(*envelope);
  (void)decode<TrainTask>(*envelope);
  (void)decode<UpdateReport>(*envelope);
  (void)decode<EvaluateTask>(*envelope);
  (void)decode<EvaluationReport>(*envelope);
  (void)decode<FetchFile>(*envelope);
  (void)decode<FileChunk>(*envelope);
  (void)decode<HealthReport>(*envelope);
  (void)decode<AdvertiseKeys>(*envelope);
  (void)decode<KeyRoster>(*envelope);
  (void)decode<ShareKeys>(*envelope);
  (void)decode<ShareBundle>(*envelope);
  (void)decode<MaskedInput>(*envelope);
  (void)decode<UnmaskRequest>(*envelope);
  (void)decode<UnmaskResponse>(*envelope);
  return 0;
}
