// Shared by the message decoders: read a header field into a struct member.
#pragma once

#include <optional>
#include <utility>

#include "shoal/protocol/header.h"

namespace shoal::protocol::detail {

// Moves a decoded field into `target`; returns the error if decoding failed.
template <typename T, typename V>
std::optional<DecodeError> assign(T& target, Decoded<V> value) {
  if (!value) return value.error();
  target = std::move(value).value();
  return std::nullopt;
}

}  // namespace shoal::protocol::detail
