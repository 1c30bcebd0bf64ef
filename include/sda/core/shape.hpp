// sda/core/shape.hpp: arithmetic and printing of shapes, independent of any
// tensor library (backends share it).
#pragma once

#include <cstddef>
#include <functional>
#include <numeric>
#include <string>

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
