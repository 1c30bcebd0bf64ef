// Metrics against brute force and closed forms.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <boost/math/distributions/normal.hpp>

#include "sda/core/random.hpp"
#include "sda/metrics/wasserstein1d.hpp"

namespace {

// W1 as the integral over u in (0, 1) of |F_a^-1(u) - F_b^-1(u)|, the empirical
// quantile functions being step functions with jumps at i/na and j/nb.
double quantile_integral(std::vector<double> a, std::vector<double> b) {
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::vector<double> cuts;
    for (std::size_t i = 0; i <= a.size(); ++i) cuts.push_back(double(i) / double(a.size()));
    for (std::size_t j = 0; j <= b.size(); ++j) cuts.push_back(double(j) / double(b.size()));
    std::sort(cuts.begin(), cuts.end());
    double total = 0.0;
    for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
        const double lo = cuts[k], hi = cuts[k + 1];
        if (hi <= lo) continue;
        const double u = 0.5 * (lo + hi);
        const auto qa = a[std::min(a.size() - 1, std::size_t(u * double(a.size())))];
        const auto qb = b[std::min(b.size() - 1, std::size_t(u * double(b.size())))];
        total += (hi - lo) * std::abs(qa - qb);
    }
    return total;
}

std::vector<double> uniform_sample(std::uint64_t seed, std::size_t n, double scale) {
    std::vector<double> v(n);
    sda::Generator gen(seed);
    sda::fill_uniform(v.data(), 1, n, gen);
    for (auto& x : v) x *= scale;
    return v;
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("wasserstein1_1d: equal sizes give the mean gap of the sorted samples") {
    auto a = uniform_sample(1, 257, 3.0), b = uniform_sample(2, 257, 5.0);
    std::vector<double> sa = a, sb = b;
    std::sort(sa.begin(), sa.end());
    std::sort(sb.begin(), sb.end());
    double expected = 0.0;
    for (std::size_t i = 0; i < sa.size(); ++i) expected += std::abs(sa[i] - sb[i]) / double(sa.size());
    CHECK(sda::metrics::wasserstein1_1d(a, b) == doctest::Approx(expected).epsilon(1e-12));
}

TEST_CASE("wasserstein1_1d: unequal sizes and ties match the quantile integral") {
    auto a = uniform_sample(3, 100, 2.0), b = uniform_sample(4, 37, 2.5);
    a[5] = a[6] = a[7];  // ties inside a sample and across samples
    b[0] = a[7];
    CHECK(sda::metrics::wasserstein1_1d(a, b) == doctest::Approx(quantile_integral(a, b)).epsilon(1e-12));
    CHECK(sda::metrics::wasserstein1_1d(b, a) == doctest::Approx(quantile_integral(a, b)).epsilon(1e-12));
}

TEST_CASE("wasserstein1_1d: zero to itself, |c| to a shifted copy") {
    const auto a = uniform_sample(5, 64, 1.0);
    CHECK(sda::metrics::wasserstein1_1d(a, a) == 0.0);
    auto shifted = a;
    for (auto& x : shifted) x += 0.75;
    CHECK(sda::metrics::wasserstein1_1d(a, shifted) == doctest::Approx(0.75).epsilon(1e-12));
}

TEST_CASE("wasserstein1_1d: Gaussian closed form |1 - s| sqrt(2/pi) + shift") {
    // Quantile points of N(0, 1) and N(mu, s^2) on the same grid: the coupling is
    // monotone, so W1 -> E|(1 - s) Z - mu|; with mu = 0 that is |1 - s| sqrt(2/pi).
    const boost::math::normal standard;
    const std::size_t n = 20000;
    const double s = 1.6;
    std::vector<double> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double z = boost::math::quantile(standard, (double(i) + 0.5) / double(n));
        a[i] = z;
        b[i] = s * z;
    }
    // The grid truncates the tails: the error is below 1e-3 at n = 20000.
    CHECK(sda::metrics::wasserstein1_1d(a, b) ==
          doctest::Approx((s - 1.0) * std::sqrt(2.0 / std::numbers::pi)).epsilon(1e-3));
}

TEST_CASE("wasserstein1_1d: empty or non-finite samples throw sda::error") {
    const std::vector<double> ok{1.0, 2.0};
    CHECK_THROWS_AS(sda::metrics::wasserstein1_1d({}, ok), sda::error);
    CHECK_THROWS_WITH_AS(sda::metrics::wasserstein1_1d(ok, {1.0, std::numeric_limits<double>::quiet_NaN()}),
                         doctest::Contains("NaN"), sda::error);
    CHECK_THROWS_AS(sda::metrics::wasserstein1_1d({std::numeric_limits<double>::infinity()}, ok), sda::error);
}

}  // TEST_SUITE
