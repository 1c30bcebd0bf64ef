// Tests of sda/schedule: every schedule against its defining properties.
#include <doctest/doctest.h>

#include <cmath>

#include "sda/core/error.hpp"
#include "sda/schedule/rectified.hpp"
#include "sda/schedule/ve.hpp"
#include "sda/schedule/vp.hpp"

using Schedules = std::tuple<sda::VPCosine, sda::VPLinear, sda::VPExponential, sda::SubVP<>, sda::SubVP<sda::LinearAlpha>,
                             sda::SubSubVP<>, sda::SubSubVP<sda::ExponentialAlpha>, sda::VE, sda::Rectified>;

TEST_CASE_TEMPLATE_DEFINE("schedules: positive, mu(0) = 1, sigma(0) small, sigma/mu increasing", S, schedule_laws) {
    static_assert(sda::NoiseSchedule<S>);
    const S schedule{};
    CHECK(schedule.mu(0.0) == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(schedule.sigma(0.0) == doctest::Approx(1e-3).epsilon(1e-9));  // eta or sigma_min, 1e-3 by default
    double previous = 0.0;
    for (int k = 0; k <= 1000; ++k) {
        const double t = k / 1000.0, mu = schedule.mu(t), sigma = schedule.sigma(t);
        REQUIRE(std::isfinite(mu));
        REQUIRE(std::isfinite(sigma));
        REQUIRE(mu > 0.0);
        REQUIRE(sigma > 0.0);
        REQUIRE(sigma / mu > previous);
        previous = sigma / mu;
    }
}
TEST_CASE_TEMPLATE_APPLY(schedule_laws, Schedules);

TEST_CASE("schedules: VP preserves variance, mu^2 + sigma^2 = 1 + eta^2") {
    const double eta = 1e-2;
    for (double t : {0.0, 0.1, 0.5, 0.9, 1.0}) {
        for (auto [mu, sigma] : {std::pair{sda::VPCosine(eta).mu(t), sda::VPCosine(eta).sigma(t)},
                                 std::pair{sda::VPLinear(eta).mu(t), sda::VPLinear(eta).sigma(t)},
                                 std::pair{sda::VPExponential(eta).mu(t), sda::VPExponential(eta).sigma(t)}})
            CHECK(mu * mu + sigma * sigma == doctest::Approx(1.0 + eta * eta).epsilon(1e-14));
    }
}

TEST_CASE("schedules: the three alpha curves end at eta and differ in between") {
    const double eta = 1e-3;
    CHECK(sda::VPCosine(eta).mu(1.0) == doctest::Approx(eta));
    CHECK(sda::VPLinear(eta).mu(1.0) == doctest::Approx(eta));
    CHECK(sda::VPExponential(eta).mu(1.0) == doctest::Approx(eta));
    // at t = 1/2: cos(acos(sqrt(eta)) / 2)^2 = (1 + sqrt(eta)) / 2, 1 - (1 - eta) / 2, eta^(1/4)
    CHECK(sda::VPCosine(eta).mu(0.5) == doctest::Approx((1.0 + std::sqrt(eta)) / 2.0));
    CHECK(sda::VPLinear(eta).mu(0.5) == doctest::Approx((1.0 + eta) / 2.0));
    CHECK(sda::VPExponential(eta).mu(0.5) == doctest::Approx(std::pow(eta, 0.25)));
    // sub-VP and sub-sub-VP share alpha but not sigma
    CHECK(sda::SubVP<>(eta).sigma(1.0) == doctest::Approx(1.0 - eta * eta + eta));
    CHECK(sda::SubSubVP<>(eta).sigma(1.0) == doctest::Approx(1.0));
}

TEST_CASE("schedules: VE sweeps sigma geometrically, rectified is the straight path") {
    const sda::VE ve(1e-2, 1e2);
    CHECK(ve.mu(0.3) == 1.0);
    CHECK(ve.sigma(0.5) == doctest::Approx(1.0));  // geometric mean of 1e-2 and 1e2
    CHECK(ve.sigma(1.0) == doctest::Approx(1e2));
    const sda::Rectified flow(1e-3);
    for (double t : {0.0, 0.25, 1.0}) CHECK(flow.mu(t) + flow.sigma(t) == doctest::Approx(1.0 + 1e-3));
    CHECK(flow.mu(1.0) == doctest::Approx(1e-3));
}

TEST_CASE("schedules: invalid parameters throw sda::error naming them") {
    CHECK_THROWS_WITH_AS(sda::VPCosine(0.0), "sda::VP schedule: eta must lie in (0, 1), got 0", sda::error);
    CHECK_THROWS_WITH_AS(sda::SubVP<>(1.5), "sda::SubVP schedule: eta must lie in (0, 1), got 1.5", sda::error);
    CHECK_THROWS_AS(sda::VE(1.0, 0.5), sda::error);
    CHECK_THROWS_AS(sda::VE(-1.0, 10.0), sda::error);
    CHECK_THROWS_AS(sda::Rectified(std::nan("")), sda::error);
}
