#include "shoal/protocol/release_messages.h"

#include "assign_field.h"

namespace shoal::protocol {

using detail::assign;

void FetchFile::write(HeaderWriter& header) const {
  header.put("request", request).put("path", path).put("offset", offset).put("max_bytes", max_bytes);
}

Decoded<FetchFile> FetchFile::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  FetchFile fetch{};
  if (auto e = assign(fetch.request, fields.get_uint("request"))) return *e;
  if (auto e = assign(fetch.path, fields.get_string("path"))) return *e;
  if (auto e = assign(fetch.offset, fields.get_uint("offset"))) return *e;
  if (auto e = assign(fetch.max_bytes, fields.get_uint("max_bytes"))) return *e;
  if (fetch.path.empty() || fetch.path.size() > 1024) {
    return DecodeError{DecodeFault::invalid_value, "path", "must be 1 to 1024 bytes"};
  }
  if (fetch.max_bytes < 1 || fetch.max_bytes > kFileChunkBytes) {
    return DecodeError{DecodeFault::invalid_value, "max_bytes", "must be in [1, 1048576]"};
  }
  return fetch;
}

void FileChunk::write(HeaderWriter& header) const {
  header.put("request", request)
      .put("status", status)
      .put("detail", detail)
      .put("offset", offset)
      .put("total_size", total_size);
}

Decoded<FileChunk> FileChunk::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  FileChunk chunk{};
  if (auto e = assign(chunk.request, fields.get_uint("request"))) return *e;
  if (auto e = assign(chunk.status, fields.get_string("status"))) return *e;
  if (auto e = assign(chunk.detail, fields.get_string("detail"))) return *e;
  if (auto e = assign(chunk.offset, fields.get_uint("offset"))) return *e;
  if (auto e = assign(chunk.total_size, fields.get_uint("total_size"))) return *e;
  if (chunk.status != "ok" && chunk.status != "not_found" && chunk.status != "refused") {
    return DecodeError{DecodeFault::invalid_value, "status", "must be ok, not_found or refused"};
  }
  if (chunk.status == "ok" && envelope.payload_count() != 1) {
    return DecodeError{DecodeFault::invalid_value, "payload", "an ok chunk carries its bytes"};
  }
  if (chunk.status == "ok" &&
      (chunk.offset > chunk.total_size || envelope.payload(0).size() > chunk.total_size - chunk.offset)) {
    return DecodeError{DecodeFault::invalid_value, "offset", "the chunk ends past the file's size"};
  }
  return chunk;
}

}  // namespace shoal::protocol
