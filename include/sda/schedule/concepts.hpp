// sda/schedule/concepts.hpp: the `NoiseSchedule` concept.
//
// A schedule defines the forward diffusion x(t) = mu(t) x + sigma(t) z,
// z ~ N(0, I), for diffusion time t in [0, 1] (Rozet & Louppe 2023, section 2).
#pragma once

#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <typeinfo>

namespace sda {

/// Requirements:
/// - `s.mu(t)`: the signal scale at time t in [0, 1], finite and > 0; mu(0) ~= 1.
/// - `s.sigma(t)`: the noise scale at time t, finite and > 0; sigma(0) is small.
/// - sigma(t) / mu(t) increases with t (what every sampler's step assumes).
/// Both are pure functions of t; time and values are `double` whatever the
/// model's scalar. Optional: `s.description()`, a string naming the schedule and
/// its parameters, recorded in checkpoints so that a network is not sampled with
/// a schedule it was not trained for.
template <class S>
concept NoiseSchedule = std::copyable<S> && requires(const S& s, double t) {
    { s.mu(t) } -> std::convertible_to<double>;
    { s.sigma(t) } -> std::convertible_to<double>;
};

/// A number as schedules print it in their descriptions: the shortest of 15 to 17
/// significant digits that reads back as the same double.
inline std::string schedule_number(double value) {
    char buffer[32];
    for (int digits = 15; digits <= 17; ++digits) {
        std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
        if (std::strtod(buffer, nullptr) == value) break;
    }
    return buffer;
}

/// What a schedule is, as checkpoints record it ("sda.schedule"), e.g. "VP(cos, eta=0.001)":
/// `s.description()` when the schedule has one (every schedule of sda does), else its type's name.
template <NoiseSchedule S>
std::string schedule_description(const S& s) {
    if constexpr (requires { { s.description() } -> std::convertible_to<std::string>; }) return s.description();
    else return std::string("unnamed schedule ") + typeid(S).name();
}

}  // namespace sda
