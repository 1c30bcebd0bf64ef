// sda/schedule/concepts.hpp: the `NoiseSchedule` concept.
//
// A schedule defines the forward diffusion x(t) = mu(t) x + sigma(t) z,
// z ~ N(0, I), for diffusion time t in [0, 1] (DESIGN.md section 2).
#pragma once

#include <concepts>

namespace sda {

/// Requirements:
/// - `s.mu(t)`: the signal scale at time t in [0, 1], finite and > 0; mu(0) ~= 1.
/// - `s.sigma(t)`: the noise scale at time t, finite and > 0; sigma(0) is small.
/// - sigma(t) / mu(t) increases with t (what every sampler's step assumes).
/// Both are pure functions of t; time and values are `double` whatever the
/// model's scalar.
template <class S>
concept NoiseSchedule = std::copyable<S> && requires(const S& s, double t) {
    { s.mu(t) } -> std::convertible_to<double>;
    { s.sigma(t) } -> std::convertible_to<double>;
};

}  // namespace sda
