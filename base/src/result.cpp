#include "shoal/base/result.h"

namespace shoal {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid argument";
    case ErrorCode::not_found: return "not found";
    case ErrorCode::io: return "i/o error";
    case ErrorCode::corrupt: return "corrupt";
    case ErrorCode::permission: return "permission";
    case ErrorCode::verification: return "verification failed";
    case ErrorCode::unsupported: return "unsupported";
  }
  return "error";
}

}  // namespace shoal
