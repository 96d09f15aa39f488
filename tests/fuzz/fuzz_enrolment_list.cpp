// Fuzzes the enrolment list parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shoal/protocol/enrolment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)shoal::protocol::EnrolmentList::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
