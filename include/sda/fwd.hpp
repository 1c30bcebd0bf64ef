// sda/fwd.hpp: forward declarations and light aliases of sda.
//
// Nothing heavy is included here (no Eigen, xtensor or oneTBB), so that concept
// headers and user headers that only name sda types stay cheap to compile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sda {

/// Extents of a tensor, outermost first. A batch of events has shape
/// `[B, event...]`; a trajectory event is `[L, D...]` (L states of shape D...).
using Shape = std::vector<std::size_t>;

class Generator;

}  // namespace sda
