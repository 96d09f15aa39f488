// Internal: the canonical byte encoding of a layout, used both for the
// layout hash and inside the weights file header, so the two cannot drift.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shoal/base/byte_io.h"
#include "shoal/weights/layout.h"

namespace shoal::weights::detail {

using base::append_le;
using base::append_u8;
using base::ByteReader;

// tensor count u32, then per tensor: name length u16, name, kind u8,
// dtype u8, rank u8, dims i64.
void append_layout(std::vector<std::uint8_t>& out, const std::vector<TensorSpec>& tensors);

// Which encoding a header holds: weights format 1 had no kind byte (every
// tensor was a parameter).
enum class LayoutEncoding { without_kinds, with_kinds };

// Parses what append_layout wrote; error messages name the tensor.
Result<std::vector<TensorSpec>> read_layout(ByteReader& reader, LayoutEncoding encoding = LayoutEncoding::with_kinds);

}  // namespace shoal::weights::detail
