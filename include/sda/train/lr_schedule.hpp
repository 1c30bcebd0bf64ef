// sda/train/lr_schedule.hpp: learning-rate schedules, the factors the paper's
// training loop passes to torch's LambdaLR, stepped once per epoch e of E:
//   constant 1,  linear 1 - e / E,  cosine (1 + cos(pi e / E)) / 2,
//   exponential exp(-7 (e / E)^2).
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>
#include <string>
#include <string_view>

#include "sda/core/error.hpp"

namespace sda::train {

enum class LrSchedule { constant, linear, cosine, exponential };

inline std::string_view name_of(LrSchedule s) {
    switch (s) {
        case LrSchedule::constant: return "constant";
        case LrSchedule::linear: return "linear";
        case LrSchedule::cosine: return "cosine";
        case LrSchedule::exponential: return "exponential";
    }
    return "?";
}

inline LrSchedule lr_schedule_from_name(std::string_view name) {
    for (auto s : {LrSchedule::constant, LrSchedule::linear, LrSchedule::cosine, LrSchedule::exponential})
        if (name_of(s) == name) return s;
    sda::detail::fail("sda::train: unknown learning-rate schedule \"", std::string(name),
                 "\" (expected constant, linear, cosine or exponential)");
}

/// The factor multiplying the base learning rate during epoch `epoch` (from 0) of `epochs`.
inline double lr_factor(LrSchedule schedule, std::size_t epoch, std::size_t epochs) {
    const double x = static_cast<double>(epoch) / static_cast<double>(epochs);
    switch (schedule) {
        case LrSchedule::constant: return 1.0;
        case LrSchedule::linear: return 1.0 - x;
        case LrSchedule::cosine: return 0.5 * (1.0 + std::cos(std::numbers::pi * x));
        case LrSchedule::exponential: return std::exp(-7.0 * x * x);
    }
    return 1.0;
}

}  // namespace sda::train
