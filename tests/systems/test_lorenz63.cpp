// Tests of sda/systems/lorenz63.hpp against properties with exact answers.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include <tbb/task_arena.h>

#include "sda/systems/lorenz63.hpp"

using sda::systems::Lorenz63;

TEST_CASE("lorenz63: RK4 has local error of order dt^5") {
    // against 4096 RK4 sub-steps of the same interval
    const Lorenz63::State x0(1.0, 2.0, 20.0);
    auto error = [&](double dt) {
        Lorenz63 coarse{.dt = dt}, fine{.dt = dt / 4096};
        Lorenz63::State y = x0;
        for (int i = 0; i < 4096; ++i) y = fine.rk4(y);
        return (coarse.rk4(x0) - y).norm();
    };
    const double ratio = error(0.02) / error(0.01);
    CHECK(ratio > 24.0);  // 2^5 = 32 asymptotically
    CHECK(ratio < 40.0);
}

TEST_CASE("lorenz63: simulated transitions have the exact mean log-density") {
    // log N(x' | rk4(x), dt I) with x' = rk4(x) + sqrt(dt) z is -|z|^2 / 2 - 1.5 log(2 pi dt):
    // mean -1.5 - 1.5 log(2 pi dt), variance 3/2 per transition.
    const Lorenz63 system;
    sda::Generator gen(21);
    const auto x = system.simulate(64, 100, 200, gen);
    CHECK(x.shape()[0] == 64);
    CHECK(x.shape()[1] == 200);
    const double expected = -1.5 - 1.5 * std::log(2.0 * std::numbers::pi * system.dt);
    const double se = std::sqrt(1.5 / (64.0 * 199.0));
    CHECK(std::abs(system.mean_log_transition(x) - expected) < 4.5 * se);
}

TEST_CASE("lorenz63: simulation does not depend on the thread count, and standardisation inverts") {
    const Lorenz63 system;
    sda::Generator a(22), b(22);
    sda::Tensor<double> one, two;
    tbb::task_arena(1).execute([&] { one = system.simulate(16, 10, 20, a); });
    tbb::task_arena(2).execute([&] { two = system.simulate(16, 10, 20, b); });
    CHECK(one == two);
    const auto z = Lorenz63::standardise<float>(one);
    const auto back = Lorenz63::unstandardise(z);
    CHECK(xt::allclose(back, one, 1e-5, 1e-4));
    CHECK(z(0, 0, 2) == doctest::Approx((one(0, 0, 2) - 25.0) / 8.6).epsilon(1e-6));
    CHECK_THROWS_AS(Lorenz63::standardise<float>(sda::Tensor<double>(xt::zeros<double>({2, 4}))), sda::error);
}

TEST_CASE("lorenz63: propagate draws x' ~ N(rk4(x), dt I) for every row") {
    // 8192 copies of one state: the draws minus rk4(x), divided by sqrt(dt), are
    // N(0, 1) per coordinate: mean within 4.5 / sqrt(N), variance within 4.5 sqrt(2 / N).
    const Lorenz63 system;
    const Lorenz63::State x0(-3.0, 4.0, 30.0);
    const Eigen::Index n = 8192;
    sda::RowMatrix<double> x = x0.transpose().replicate(n, 1);
    sda::Generator gen(7);
    system.propagate(x, gen);
    const Eigen::MatrixXd z = (x.rowwise() - system.rk4(x0).transpose()) / std::sqrt(system.dt);
    for (Eigen::Index k = 0; k < 3; ++k) {
        const double mean = z.col(k).mean(), var = (z.col(k).array() - mean).square().sum() / double(n - 1);
        CHECK(std::abs(mean) < 4.5 / std::sqrt(double(n)));
        CHECK(std::abs(var - 1.0) < 4.5 * std::sqrt(2.0 / double(n)));
    }
    sda::RowMatrix<double> wrong(2, 2);
    CHECK_THROWS_AS(system.propagate(wrong, gen), sda::error);
}
