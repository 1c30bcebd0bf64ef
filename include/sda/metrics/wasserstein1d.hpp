// sda/metrics/wasserstein1d.hpp: the 1-Wasserstein distance between two
// one-dimensional empirical distributions, exactly:
//   W1 = integral |F_a(x) - F_b(x)| dx,
// summed over the gaps of the merged sorted samples (any sizes).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "sda/core/error.hpp"

namespace sda::metrics {

inline double wasserstein1_1d(std::vector<double> a, std::vector<double> b) {
    detail::require(!a.empty() && !b.empty(), "sda::metrics::wasserstein1_1d: empty sample");
    const auto finite = [](const std::vector<double>& v) {
        return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
    };
    detail::require(finite(a) && finite(b), "sda::metrics::wasserstein1_1d: sample holds NaN or Inf");
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
    std::size_t i = 0, j = 0;
    double previous = std::min(a.front(), b.front()), distance = 0.0;
    while (i < a.size() || j < b.size()) {
        const double next = (j == b.size() || (i < a.size() && a[i] <= b[j])) ? a[i] : b[j];
        distance += std::abs(double(i) / na - double(j) / nb) * (next - previous);
        previous = next;
        while (i < a.size() && a[i] == next) ++i;
        while (j < b.size() && b[j] == next) ++j;
    }
    return distance;
}

}  // namespace sda::metrics
