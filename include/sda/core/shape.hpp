// sda/core/shape.hpp: arithmetic and printing of shapes, independent of any
// tensor library (backends share it).
#pragma once

#include <cstddef>
#include <functional>
#include <numeric>
#include <string>

#include "sda/core/error.hpp"
#include "sda/fwd.hpp"

namespace sda {

/// Number of elements of a tensor of this shape (1 for rank 0).
inline std::size_t element_count(const Shape& shape) {
    return std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>{});
}

/// "[2, 33, 4]"
inline std::string format_shape(const Shape& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(shape[i]);
    }
    return out + "]";
}

/// Elements a shape read from outside (a file, a configuration) may declare: 2^48, far above
/// any memory, far below where counts in bytes could wrap.
inline constexpr std::size_t max_declared_elements = std::size_t{1} << 48;

/// `element_count(shape)` for a shape that comes from outside: throws `sda::error` naming `what`
/// when the product of its non-zero extents exceeds `max_declared_elements` (checked before it
/// could wrap), so that strides, and counts in bytes, cannot overflow either.
inline std::size_t element_count_checked(const Shape& shape, const std::string& what) {
    std::size_t count = 1;
    bool empty = false;
    for (std::size_t extent : shape) {
        if (extent == 0) {
            empty = true;
            continue;
        }
        sda::detail::require(extent <= max_declared_elements / count, what, ": shape ", format_shape(shape),
                             " declares more than 2^48 elements");
        count *= extent;
    }
    return empty ? 0 : count;
}

/// `[batch, event...]`
inline Shape batch_shape(std::size_t batch, const Shape& event) {
    Shape shape{batch};
    shape.insert(shape.end(), event.begin(), event.end());
    return shape;
}

/// The event part `[event...]` of a batched shape `[B, event...]`.
inline Shape event_shape_of(const Shape& batched) {
    return batched.empty() ? Shape{} : Shape(batched.begin() + 1, batched.end());
}

}  // namespace sda
