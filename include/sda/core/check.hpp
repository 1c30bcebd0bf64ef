// sda/core/check.hpp: validation of data where it enters sda.
//
// These run at boundaries (constructors, loaders, the sampling entry points),
// never inside hot loops. Each failure throws `sda::error` naming `what`.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"

namespace sda::detail {

/// Throws unless every element of `x` is finite; names the first bad entry.
template <class E>
void check_finite(const E& x, std::string_view what) {
    std::size_t index = 0;
    for (const auto& value : x) {
        if (!std::isfinite(static_cast<double>(value)))
            fail(what, " has a non-finite entry (", value, ") at flat index ", index, " of shape ",
                 format_shape(shape_of(x)));
        ++index;
    }
}

/// Throws unless `value` is finite and strictly positive.
inline void check_positive(double value, std::string_view what) {
    require(std::isfinite(value) && value > 0.0, what, " must be finite and positive, got ", value);
}

/// Throws unless `value` is finite and non-negative.
inline void check_non_negative(double value, std::string_view what) {
    require(std::isfinite(value) && value >= 0.0, what, " must be finite and non-negative, got ",
            value);
}

/// Throws unless `t` is a diffusion time: finite and in [0, 1].
inline void check_time(double t, std::string_view what) {
    require(std::isfinite(t) && t >= 0.0 && t <= 1.0, what, ": the diffusion time t = ", t, " is outside [0, 1]");
}

/// Throws unless `actual == expected`.
inline void check_shape(const Shape& actual, const Shape& expected, std::string_view what) {
    require(actual == expected, what, " has shape ", format_shape(actual), ", expected ",
            format_shape(expected));
}

/// Throws unless `x` is a batch `[B, event...]` of the given event shape with B >= 1.
template <class E>
void check_batch(const E& x, const Shape& event, std::string_view what) {
    const Shape shape = shape_of(x);
    if (shape.size() == event.size() + 1 && event_shape_of(shape) == event && shape[0] >= 1) return;
    Shape expected = batch_shape(0, event);
    std::string text = format_shape(expected);
    text.replace(1, 1, "B");  // "[0, 33, 4]" -> "[B, 33, 4]"
    fail(what, " has shape ", format_shape(shape), ", expected ", text, " with B >= 1");
}

}  // namespace sda::detail
