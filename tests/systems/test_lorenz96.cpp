// Tests of sda/systems/lorenz96.hpp: exact identities, the adjoint's dot-product test and the
// tangent against finite differences in double.
#include <doctest/doctest.h>

#include <cmath>

#include <tbb/task_arena.h>

#include "sda/baselines/particle_filter.hpp"
#include "sda/systems/lorenz96.hpp"

using sda::systems::Lorenz96;

// the particle filter, the EnKS and the ensemble filters of sda/baselines/ can run it
static_assert(sda::baselines::MarkovTransition<Lorenz96>);

namespace {

Lorenz96::State random_state(std::size_t n, std::uint64_t seed, double mean, double scale) {
    sda::Generator gen(seed);
    Lorenz96::State x(static_cast<Eigen::Index>(n));
    sda::fill_normal(x.data(), 1, n, gen);
    return (mean + scale * x.array()).matrix();
}

}  // namespace

TEST_CASE("lorenz96: the advection term conserves energy, so x . f(x) = -|x|^2 + F sum(x)") {
    // sum_i x_i (x_{i+1} - x_{i-2}) x_{i-1} telescopes to 0 on the circle; an index off by
    // one anywhere in f breaks this identity.
    for (const std::size_t n : {4u, 5u, 40u}) {
        const Lorenz96 system{.n = n, .forcing = 8.0};
        const Lorenz96::State x = random_state(n, 3 + n, 2.0, 4.0);
        const double expected = -x.squaredNorm() + system.forcing * x.sum();
        CHECK(x.dot(system.f(x)) == doctest::Approx(expected).epsilon(1e-13));
    }
    // and one entry by hand: n = 4, x = (1, 2, 3, 4): f_0 = (x_1 - x_2) x_3 - x_0 + F
    const Lorenz96 small{.n = 4, .forcing = 8.0};
    const Lorenz96::State x = Lorenz96::State::LinSpaced(4, 1.0, 4.0);
    CHECK(small.f(x)(0) == doctest::Approx((2.0 - 3.0) * 4.0 - 1.0 + 8.0));
    CHECK(small.f(x)(2) == doctest::Approx((4.0 - 1.0) * 2.0 - 3.0 + 8.0));
}

TEST_CASE("lorenz96: RK4 has local error of order dt^5") {
    const Lorenz96 base;
    const Lorenz96::State x0 = random_state(base.n, 11, 2.0, 3.0);
    auto error = [&](double dt) {
        const Lorenz96 coarse{.dt = dt}, fine{.dt = dt / 2048};
        Lorenz96::State y = x0;
        for (int i = 0; i < 2048; ++i) y = fine.rk4(y);
        return (coarse.rk4(x0) - y).norm();
    };
    const double ratio = error(0.02) / error(0.01);
    CHECK(ratio > 24.0);  // 2^5 = 32 asymptotically
    CHECK(ratio < 40.0);
}

TEST_CASE("lorenz96: tangent-linear models match central finite differences") {
    const Lorenz96 system;
    const Lorenz96::State x = random_state(system.n, 21, 2.0, 3.6);
    const Lorenz96::State dx = random_state(system.n, 22, 0.0, 1.0);
    const double h = 1e-5;
    const Lorenz96::State fd_f = (system.f(x + h * dx) - system.f(x - h * dx)) / (2 * h);
    // f is quadratic: central differences are exact up to rounding
    CHECK((system.f_tangent(x, dx) - fd_f).norm() < 1e-9 * fd_f.norm());
    const Lorenz96::State fd_m = (system.rk4(x + h * dx) - system.rk4(x - h * dx)) / (2 * h);
    const Lorenz96::State tangent = system.rk4_tangent(x, dx);
    CHECK((tangent - fd_m).norm() < 1e-8 * fd_m.norm());
    // the tangent is not the identity: a step of dt = 0.05 moves dx by a few percent
    CHECK((tangent - dx).norm() > 1e-2 * dx.norm());
}

TEST_CASE("lorenz96: adjoint models pass the dot-product test to 1e-12") {
    for (const std::size_t n : {4u, 7u, 40u}) {
        const Lorenz96 system{.n = n};
        const Lorenz96::State x = random_state(n, 31 + n, 2.0, 3.6);
        const Lorenz96::State dx = random_state(n, 32 + n, 0.0, 1.0);
        const Lorenz96::State w = random_state(n, 33 + n, 0.0, 1.0);
        const double f_left = system.f_tangent(x, dx).dot(w), f_right = dx.dot(system.f_adjoint(x, w));
        CHECK(std::abs(f_left - f_right) <= 1e-12 * std::abs(f_left));
        const double m_left = system.rk4_tangent(x, dx).dot(w), m_right = dx.dot(system.rk4_adjoint(x, w));
        CHECK(std::abs(m_left - m_right) <= 1e-12 * std::abs(m_left));
    }
}

TEST_CASE("lorenz96: propagate draws x' ~ N(rk4(x), noise^2 I), and without noise it is rk4") {
    const Lorenz96 system{.noise = 0.3};
    const Lorenz96::State x0 = random_state(system.n, 41, 2.0, 3.6);
    const Eigen::Index rows = 4096;
    sda::RowMatrix<double> x = x0.transpose().replicate(rows, 1);
    sda::Generator gen(42);
    system.propagate(x, gen);
    const Eigen::MatrixXd z = (x.rowwise() - system.rk4(x0).transpose()) / system.noise;
    // 40 coordinates: a 4.5-sigma band for each mean and variance
    for (Eigen::Index k = 0; k < z.cols(); ++k) {
        const double mean = z.col(k).mean(), var = (z.col(k).array() - mean).square().sum() / double(rows - 1);
        CHECK(std::abs(mean) < 4.5 / std::sqrt(double(rows)));
        CHECK(std::abs(var - 1.0) < 4.5 * std::sqrt(2.0 / double(rows)));
    }
    const Lorenz96 deterministic;
    sda::RowMatrix<double> y = x0.transpose().replicate(3, 1);
    deterministic.propagate(y, gen);
    CHECK((y.row(2).transpose() - deterministic.rk4(x0)).norm() == 0.0);
    // log N(x' | rk4(x), s^2 I) at x' = rk4(x) is -n/2 log(2 pi s^2)
    CHECK(system.log_transition(x0, system.rk4(x0)) ==
          doctest::Approx(-20.0 * std::log(2.0 * std::numbers::pi * 0.09)).epsilon(1e-12));
}

TEST_CASE("lorenz96: simulation reaches the attractor and does not depend on the thread count") {
    const Lorenz96 system{.noise = 0.1};
    sda::Generator a(51), b(51);
    sda::Tensor<double> one, two;
    tbb::task_arena(1).execute([&] { one = system.simulate(8, 500, 200, a); });
    tbb::task_arena(2).execute([&] { two = system.simulate(8, 500, 200, b); });
    CHECK(one == two);
    CHECK(one.shape()[0] == 8);
    CHECK(one.shape()[1] == 200);
    CHECK(one.shape()[2] == 40);
    // Energy balance on the attractor: d/dt |x|^2 / 2 = -|x|^2 + F sum(x), so the long-run
    // mean of |x|^2 equals F times that of sum(x) (up to the noise's input n s^2 / (2 dt)
    // and sampling error over 8 x 200 correlated states: 5%).
    double squares = 0, sums = 0;
    for (std::size_t i = 0; i < one.size(); ++i) squares += one.data()[i] * one.data()[i], sums += one.data()[i];
    const double noise_input = 40.0 * 0.01 / (2.0 * system.dt);
    CHECK(squares / double(8 * 200) == doctest::Approx(system.forcing * sums / double(8 * 200) + noise_input).epsilon(0.05));
    // without model noise (the default) the trajectory after the burn-in is rk4 iterated
    const Lorenz96 deterministic;
    sda::Generator c(52);
    const sda::Tensor<double> plain = deterministic.simulate(2, 50, 3, c);
    Lorenz96::State state(40);
    for (std::size_t k = 0; k < 40; ++k) state(static_cast<Eigen::Index>(k)) = plain(1, 0, k);
    state = deterministic.rk4(deterministic.rk4(state));
    for (std::size_t k = 0; k < 40; ++k) CHECK(plain(1, 2, k) == state(static_cast<Eigen::Index>(k)));
    // chaotic: trajectories from different initial states are far apart
    double distance = 0;
    for (std::size_t k = 0; k < 40; ++k) distance += std::pow(one(0, 199, k) - one(1, 199, k), 2);
    CHECK(std::sqrt(distance) > 5.0);
}

TEST_CASE("lorenz96: bad parameters and shapes are refused with sda::error") {
    sda::Generator gen(61);
    CHECK_THROWS_AS((Lorenz96{.n = 3}.validate()), sda::error);
    CHECK_THROWS_AS((Lorenz96{.dt = -0.05}.validate()), sda::error);
    CHECK_THROWS_AS((Lorenz96{.dt = std::nan("")}.validate()), sda::error);
    CHECK_THROWS_AS((Lorenz96{.noise = -1.0}.validate()), sda::error);
    CHECK_THROWS_AS((Lorenz96{.forcing = INFINITY}.validate()), sda::error);
    CHECK_THROWS_AS((Lorenz96{.noise = -1.0}.simulate(1, 0, 1, gen)), sda::error);
    const Lorenz96 system;
    sda::RowMatrix<double> wrong(2, 39);
    CHECK_THROWS_AS(system.propagate(wrong, gen), sda::error);
    CHECK_THROWS_AS(system.f(Lorenz96::State::Zero(39)), sda::error);
    CHECK_THROWS_AS(system.rk4_adjoint(Lorenz96::State::Zero(40), Lorenz96::State::Zero(41)), sda::error);
    CHECK_THROWS_AS(system.log_transition(Lorenz96::State::Zero(40), Lorenz96::State::Zero(40)), sda::error);
    CHECK_THROWS_AS(system.simulate(0, 0, 1, gen), sda::error);
}
