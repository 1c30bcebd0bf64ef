// sda/metrics/health.hpp: which posterior samples are sane before any metric is taken.
//
// A guidance or a step size that fails for a few samples can leave them NaN, infinite or
// far outside the range of the data while the others are fine; averaged metrics then say
// nothing useful (one sample at 10^4 dominates a W1 or an RMSE). `sample_health` sorts
// the samples of x [N, ...] into finite ones within a bound and the rest, so that studies
// can report how many went bad and score the others (`take_samples`).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "sda/backend/cpu.hpp"
#include "sda/core/check.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"

namespace sda::metrics {

struct SampleHealth {
    std::vector<std::size_t> healthy;     ///< finite, every entry within the bound
    std::vector<std::size_t> non_finite;  ///< some entry NaN or infinite
    std::vector<std::size_t> outside;     ///< finite, but some |entry| above the bound
    std::size_t bad() const { return non_finite.size() + outside.size(); }
};

/// Sorts the samples of x [N, ...] by their entries: NaN or infinite, |entry| > `bound`, or
/// healthy. For standardised data `bound` is in standard deviations of the data (the
/// examples use 10: a Gaussian draw beyond it has probability 2e-23).
template <class T>
SampleHealth sample_health(const Tensor<T>& x, double bound) {
    detail::require(x.dimension() >= 1, "sda::metrics::sample_health: x has rank 0, expected samples [N, ...]");
    detail::require(std::isfinite(bound) && bound > 0.0, "sda::metrics::sample_health: bound must be finite and positive, got ",
                    bound);
    const std::size_t n = x.shape()[0], size = n == 0 ? 0 : x.size() / n;
    SampleHealth health;
    health.non_finite = CpuBackend<T>::non_finite_samples(x);  // ascending
    auto next_non_finite = health.non_finite.begin();
    for (std::size_t b = 0; b < n; ++b) {
        if (next_non_finite != health.non_finite.end() && *next_non_finite == b) {
            ++next_non_finite;
            continue;
        }
        const T* entries = x.data() + b * size;
        const bool within = std::all_of(entries, entries + size, [&](T v) { return std::abs(double(v)) <= bound; });
        (within ? health.healthy : health.outside).push_back(b);
    }
    return health;
}

/// The samples `which` of x [N, ...], in that order.
template <class T>
Tensor<T> take_samples(const Tensor<T>& x, const std::vector<std::size_t>& which) {
    detail::require(x.dimension() >= 1, "sda::metrics::take_samples: x has rank 0, expected samples [N, ...]");
    const std::size_t n = x.shape()[0], size = n == 0 ? 0 : x.size() / n;
    Shape shape = shape_of(x);
    shape[0] = which.size();
    Tensor<T> out = empty_tensor<T>(shape);
    for (std::size_t j = 0; j < which.size(); ++j) {
        detail::require(which[j] < n, "sda::metrics::take_samples: sample ", which[j], " is out of range for ", n, " samples");
        std::copy_n(x.data() + which[j] * size, size, out.data() + j * size);
    }
    return out;
}

}  // namespace sda::metrics
