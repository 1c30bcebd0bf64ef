// Tests of sda/systems/kolmogorov.hpp: exact spectral identities, analytic
// solutions (Taylor-Green decay, the laminar Kolmogorov profile), convergence
// orders of the IMEX RK3/CN scheme, and the kinetic-energy budget.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include <tbb/task_arena.h>

#include "sda/systems/kolmogorov.hpp"

using sda::systems::KolmogorovConfig;
using sda::systems::KolmogorovFlow;

namespace {

constexpr double pi = std::numbers::pi;

double max_abs(const std::vector<double>& a) {
    double m = 0;
    for (double x : a) m = std::max(m, std::abs(x));
    return m;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double sum = 0;
    for (std::size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
    return sum;
}

/// f(x_i, y_j) on the n x n grid, row-major (i along x).
template <class F>
std::vector<double> grid_field(std::size_t n, F f) {
    std::vector<double> out(n * n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) out[i * n + j] = f(2 * pi * double(i) / double(n), 2 * pi * double(j) / double(n));
    return out;
}

/// Taylor-Green vorticity 2 cos x cos y: an eigenfunction of the Laplacian, so u . grad omega = 0.
std::vector<double> taylor_green(std::size_t n) {
    return grid_field(n, [](double x, double y) { return 2 * std::cos(x) * std::cos(y); });
}

KolmogorovConfig unforced(std::size_t grid, double reynolds, double drag) {
    return {.grid = grid, .reynolds = reynolds, .drag = drag, .forcing_amplitude = 0};
}

}  // namespace

TEST_CASE("kolmogorov: velocity vorticity and advection of known fields follow the grid convention") {
    // psi = sin x + sin 2y: omega = -lap psi = sin x + 4 sin 2y, u = d psi/dy = 2 cos 2y,
    // v = -d psi/dx = -cos x, u . grad omega = 2 cos 2y cos x - 8 cos x cos 2y = -6 cos x cos 2y.
    const std::size_t n = 16;
    KolmogorovFlow flow(KolmogorovConfig{.grid = n});
    const auto omega = grid_field(n, [](double x, double y) { return std::sin(x) + 4 * std::sin(2 * y); });
    const auto velocity = flow.velocity(omega);
    const std::vector<double> u(velocity.begin(), velocity.begin() + n * n), v(velocity.begin() + n * n, velocity.end());
    CHECK(max_diff(u, grid_field(n, [](double, double y) { return 2 * std::cos(2 * y); })) < 1e-13);
    CHECK(max_diff(v, grid_field(n, [](double x, double) { return -std::cos(x); })) < 1e-13);
    CHECK(max_diff(flow.advection(omega), grid_field(n, [](double x, double y) { return -6 * std::cos(x) * std::cos(2 * y); })) <
          1e-12);
    CHECK(max_abs(flow.advection(taylor_green(n))) < 1e-13);
    // a divergent field: u = sin x, v = sin 3y has divergence cos x + 3 cos 3y and curl 0
    std::vector<double> divergent = grid_field(n, [](double x, double) { return std::sin(x); });
    const auto second = grid_field(n, [](double, double y) { return std::sin(3 * y); });
    divergent.insert(divergent.end(), second.begin(), second.end());
    CHECK(max_diff(flow.divergence(divergent),
                   grid_field(n, [](double x, double y) { return std::cos(x) + 3 * std::cos(3 * y); })) < 1e-12);
    CHECK(max_abs(flow.vorticity(divergent)) < 1e-13);
    CHECK(max_diff(flow.vorticity(velocity), omega) < 1e-12);
    CHECK_THROWS_AS(flow.velocity(std::vector<double>(n * n + 1)), sda::error);
    CHECK_THROWS_AS(flow.vorticity(omega), sda::error);
}

TEST_CASE("kolmogorov: velocity of a random field is divergence-free and its curl is the field") {
    KolmogorovFlow flow(KolmogorovConfig{.grid = 64});
    sda::Generator gen(11);
    const auto omega = flow.random_vorticity(gen);
    const auto velocity = flow.velocity(omega);
    const double speed = max_abs(velocity);
    CHECK(speed > 0.5);
    CHECK(max_abs(flow.divergence(velocity)) < 1e-10 * speed);
    CHECK(max_diff(flow.vorticity(velocity), omega) < 1e-10 * max_abs(omega));
    // the free function for coarse fields agrees
    CHECK(max_diff(sda::systems::spectral_vorticity(velocity, 64), omega) < 1e-10 * max_abs(omega));
}

TEST_CASE("kolmogorov: random vorticity is real zero-mean with unit velocity rms and a spectrum peaked near 4") {
    const std::size_t n = 64;
    KolmogorovFlow flow(KolmogorovConfig{.grid = n});
    sda::Generator gen(3), same(3);
    const auto omega = flow.random_vorticity(gen);
    CHECK(omega == flow.random_vorticity(same));
    CHECK(max_diff(omega, flow.random_vorticity(gen)) > 0.1);  // the next draw differs
    double mean = 0;
    for (double w : omega) mean += w / double(n * n);
    CHECK(std::abs(mean) < 1e-12);
    const auto velocity = flow.velocity(omega);
    CHECK(dot(velocity, velocity) / double(n * n) == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(flow.energy(omega) == doctest::Approx(0.5).epsilon(1e-12));
    const auto spectrum = sda::systems::energy_spectrum(velocity, n);
    const auto peak = std::max_element(spectrum.begin(), spectrum.end()) - spectrum.begin();
    CHECK(peak >= 3);
    CHECK(peak <= 5);
    // nothing outside the 2/3 band: 3 |k| < 64 means |k| <= 21 on each axis
    double outside = 0;
    for (std::size_t k = 22; k < spectrum.size(); ++k) outside += spectrum[k];
    CHECK(outside < 1e-20);
    CHECK_THROWS_AS(flow.random_vorticity(gen, 0.0), sda::error);
    CHECK_THROWS_AS(flow.random_vorticity(gen, 4.0, -1.0), sda::error);
}

TEST_CASE("kolmogorov: Taylor-Green decays as exp(-(2 nu + drag) t) with second-order error in dt") {
    // The nonlinear term vanishes, so only the Crank-Nicolson part acts: error ~ dt^2.
    const std::size_t n = 16;
    const double nu = 0.1, drag = 0.1, rate = 2 * nu + drag;
    KolmogorovFlow flow(unforced(n, 1 / nu, drag));
    const auto omega0 = taylor_green(n);
    auto error = [&](double dt) {
        auto omega = omega0;
        for (long s = 0; s < std::lround(1.0 / dt); ++s) flow.step(omega, dt);
        auto exact = omega0;
        for (double& w : exact) w *= std::exp(-rate);
        return max_diff(omega, exact);
    };
    const double e1 = error(0.1), e2 = error(0.05), e3 = error(0.025);
    MESSAGE("Taylor-Green errors ", e1, " ", e2, " ", e3);
    for (const double order : {std::log2(e1 / e2), std::log2(e2 / e3)}) {
        CHECK(order > 1.8);
        CHECK(order < 2.3);
    }
    CHECK(e1 < 1e-4);
}

TEST_CASE("kolmogorov: advance lands on the duration and takes CFL-limited steps") {
    const std::size_t n = 16;
    SUBCASE("max_dt bound: the last step is shortened") {
        KolmogorovConfig config = unforced(n, 10, 0.1);
        config.max_dt = 0.3, config.cfl = 1.5;  // cfl dx / max|u| = 1.5 (2 pi / 16) / 1 > 0.3
        KolmogorovFlow flow(config);
        auto omega = taylor_green(n), stepped = omega;
        CHECK(flow.advance(omega, 1.0) == 4);
        for (const double dt : {0.3, 0.3, 0.3, 0.1}) flow.step(stepped, dt);
        CHECK(max_diff(omega, stepped) < 1e-13);
        const auto before = omega;
        CHECK(flow.advance(omega, 0.0) == 0);
        CHECK(omega == before);
        CHECK_THROWS_AS(flow.advance(omega, -1.0), sda::error);
        CHECK_THROWS_AS(flow.step(omega, 0.0), sda::error);
    }
    SUBCASE("CFL bound on the steady laminar flow") {
        // u = U sin(4 y), U = 1 / (16 nu + drag) is steady; on 16 points max|u| = U exactly
        KolmogorovConfig config{.grid = n, .reynolds = 10, .cfl = 0.2, .max_dt = 1.0};
        KolmogorovFlow flow(config);
        const double U = 1 / (16 * 0.1 + 0.1);
        auto omega = grid_field(n, [&](double, double y) { return -4 * U * std::cos(4 * y); });
        const double dt = 0.2 * (2 * pi / 16) / U;
        CHECK(flow.time_step(omega) == doctest::Approx(dt).epsilon(1e-12));
        CHECK(flow.advance(omega, 1.0) == static_cast<std::size_t>(std::ceil(1.0 / dt)));
    }
}

TEST_CASE("kolmogorov: self-convergence on a nonlinear flow is at least second order") {
    KolmogorovFlow flow(KolmogorovConfig{.grid = 32, .reynolds = 100});
    sda::Generator gen(3);
    const auto omega0 = flow.random_vorticity(gen);
    auto run = [&](double dt) {
        auto omega = omega0;
        for (long s = 0; s < std::lround(1.0 / dt); ++s) flow.step(omega, dt);
        return omega;
    };
    const auto reference = run(0.02 / 8);
    const double e1 = max_diff(run(0.04), reference), e2 = max_diff(run(0.02), reference);
    MESSAGE("nonlinear self-convergence errors ", e1, " ", e2, " order ", std::log2(e1 / e2));
    CHECK(std::log2(e1 / e2) >= 1.8);
    CHECK(e2 < 1e-3 * max_abs(reference));
}

TEST_CASE("kolmogorov: the energy budget closes up to the time-discretisation error") {
    // dE/dt = injection - dissipation holds exactly for the 2/3-truncated Galerkin system
    // (its advection conserves energy), so E(T) - E(0) - int (I - D) dt is the time error
    // only: O(dt^3) for coarse steps (RK3), O(dt^2) for fine ones (trapezoid, CN); it must
    // shrink with dt, and at dt = 0.0025 it is ~1e-7 of the transferred energy int |I| + D.
    auto residual = [](double dt, double& scale) {
        KolmogorovFlow flow(KolmogorovConfig{.grid = 32, .reynolds = 1000});
        sda::Generator gen(5);
        auto omega = flow.random_vorticity(gen);
        const double e0 = flow.energy(omega);
        double rate = flow.injection(omega) - flow.dissipation(omega), integral = 0;
        scale = 0;
        for (long s = 0; s < std::lround(2.0 / dt); ++s) {
            flow.step(omega, dt);
            const double injection = flow.injection(omega), dissipation = flow.dissipation(omega);
            integral += 0.5 * dt * (rate + injection - dissipation);
            scale += dt * (std::abs(injection) + dissipation);
            rate = injection - dissipation;
        }
        return flow.energy(omega) - e0 - integral;
    };
    double scale = 0;
    const double coarse = residual(0.01, scale), fine = residual(0.0025, scale);
    MESSAGE("energy budget residuals ", coarse, " (dt 0.01) ", fine, " (dt 0.0025), transfer ", scale);
    CHECK(scale > 0.1);
    CHECK(std::abs(fine) < 1e-6 * scale);
    CHECK(std::abs(fine) < std::abs(coarse) / 8);
}

TEST_CASE("kolmogorov: advection conserves energy and enstrophy") {
    KolmogorovFlow flow(unforced(32, 1e12, 0.0));
    sda::Generator gen(7);
    auto omega = flow.random_vorticity(gen);
    // instantaneous: <omega a> = 0 (enstrophy) and <u . u_a> = <psi a> = 0 (energy), a = u . grad omega
    const auto a = flow.advection(omega);
    CHECK(std::abs(dot(omega, a)) < 1e-12 * std::sqrt(dot(omega, omega) * dot(a, a)));
    const auto u = flow.velocity(omega), u_a = flow.velocity(a);
    CHECK(std::abs(dot(u, u_a)) < 1e-12 * std::sqrt(dot(u, u) * dot(u_a, u_a)));
    // over time: only RK3's O(dt^3) drift, ~1e-7 relative here
    const double e0 = flow.energy(omega), z0 = flow.enstrophy(omega);
    for (int s = 0; s < 200; ++s) flow.step(omega, 0.005);
    MESSAGE("inviscid drift: energy ", flow.energy(omega) / e0 - 1, " enstrophy ", flow.enstrophy(omega) / z0 - 1);
    CHECK(std::abs(flow.energy(omega) / e0 - 1) < 2e-6);
    CHECK(std::abs(flow.enstrophy(omega) / z0 - 1) < 5e-6);
    CHECK(max_diff(omega, flow.random_vorticity(gen)) > 0.1);  // and the flow did move
}

TEST_CASE("kolmogorov: forcing drives the laminar profile u = A sin(k y) / (nu k^2 + drag) from rest") {
    const std::size_t n = 16;
    KolmogorovFlow flow(KolmogorovConfig{.grid = n, .reynolds = 10, .drag = 0.1, .forcing_amplitude = 1});
    std::vector<double> omega(n * n, 0.0);
    flow.step(omega, 0.05);
    CHECK(flow.injection(omega) > 0);
    CHECK(flow.energy(omega) > 0);
    flow.advance(omega, 30.0);  // relaxation rate nu k^2 + drag = 1.7
    const double U = 1 / (0.1 * 16 + 0.1);
    const auto velocity = flow.velocity(omega);
    const std::vector<double> u(velocity.begin(), velocity.begin() + n * n), v(velocity.begin() + n * n, velocity.end());
    CHECK(max_diff(u, grid_field(n, [&](double, double y) { return U * std::sin(4 * y); })) < 1e-10);
    CHECK(max_abs(v) < 1e-10);
    // at rest the budget balances: injection A U / 2 = dissipation (nu k^2 + drag) U^2
    CHECK(flow.injection(omega) == doctest::Approx(U / 2).epsilon(1e-10));
    CHECK(flow.dissipation(omega) == doctest::Approx(U / 2).epsilon(1e-10));
}

TEST_CASE("kolmogorov: coarsen averages blocks and energy_spectrum satisfies Parseval") {
    const std::vector<double> field = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    // blocks {1 2 5 6} {3 4 7 8} {9 10 13 14} {11 12 15 16}
    CHECK(sda::systems::coarsen(field, 1, 4, 2) == std::vector<double>{3.5, 5.5, 11.5, 13.5});
    CHECK(sda::systems::coarsen(field, 1, 4, 4) == std::vector<double>{8.5});
    CHECK(sda::systems::coarsen(field, 1, 4, 1) == field);
    std::vector<double> two = field;
    for (double x : field) two.push_back(-x);
    CHECK(sda::systems::coarsen(two, 2, 4, 2) == std::vector<double>{3.5, 5.5, 11.5, 13.5, -3.5, -5.5, -11.5, -13.5});
    CHECK_THROWS_AS(sda::systems::coarsen(field, 1, 4, 3), sda::error);
    CHECK_THROWS_AS(sda::systems::coarsen(field, 1, 4, 0), sda::error);
    CHECK_THROWS_AS(sda::systems::coarsen(field, 2, 4, 2), sda::error);

    // white noise has energy in every mode, Nyquist and corners included
    const std::size_t n = 32;
    std::vector<double> velocity(2 * n * n);
    sda::Generator gen(1);
    sda::fill_normal(velocity.data(), 1, velocity.size(), gen);
    const auto spectrum = sda::systems::energy_spectrum(velocity, n);
    CHECK(spectrum.size() == 24);  // shells 0 .. round(32 / sqrt 2) = 23
    double total = 0;
    for (double e : spectrum) total += e;
    CHECK(total == doctest::Approx(0.5 * dot(velocity, velocity) / double(n * n)).epsilon(1e-12));
    // one mode: u = cos(3 x) sin(4 y) has energy 0.5 * 1/4 all in the shell |k| = 5
    std::vector<double> single = grid_field(n, [](double x, double y) { return std::cos(3 * x) * std::sin(4 * y); });
    single.resize(2 * n * n, 0.0);
    const auto shell = sda::systems::energy_spectrum(single, n);
    CHECK(shell[5] == doctest::Approx(0.125).epsilon(1e-12));
    double others = 0;
    for (std::size_t k = 0; k < shell.size(); ++k) others += k == 5 ? 0.0 : shell[k];
    CHECK(others < 1e-25);
    CHECK_THROWS_AS(sda::systems::energy_spectrum(velocity, 16), sda::error);
    // the coarse-grid curl, on Taylor-Green velocity u = -cos x sin y, v = sin x cos y
    std::vector<double> tg = grid_field(8, [](double x, double y) { return -std::cos(x) * std::sin(y); });
    const auto tg_v = grid_field(8, [](double x, double y) { return std::sin(x) * std::cos(y); });
    tg.insert(tg.end(), tg_v.begin(), tg_v.end());
    CHECK(max_diff(sda::systems::spectral_vorticity(tg, 8), taylor_green(8)) < 1e-13);
}

TEST_CASE("kolmogorov: the configuration is validated") {
    auto bad = [](auto change) {
        KolmogorovConfig config;
        change(config);
        CHECK_THROWS_AS(KolmogorovFlow{config}, sda::error);
    };
    bad([](KolmogorovConfig& c) { c.grid = 6; });
    bad([](KolmogorovConfig& c) { c.grid = 33; });
    bad([](KolmogorovConfig& c) { c.grid = 12; });  // forcing k = 4 is outside the 2/3 band
    bad([](KolmogorovConfig& c) { c.reynolds = 0; });
    bad([](KolmogorovConfig& c) { c.reynolds = INFINITY; });
    bad([](KolmogorovConfig& c) { c.drag = -0.1; });
    bad([](KolmogorovConfig& c) { c.forcing_wavenumber = 0; });
    bad([](KolmogorovConfig& c) { c.forcing_amplitude = NAN; });
    bad([](KolmogorovConfig& c) { c.cfl = 0; });
    bad([](KolmogorovConfig& c) { c.cfl = 2; });
    bad([](KolmogorovConfig& c) { c.max_dt = 0; });
    try {
        KolmogorovConfig config;
        config.drag = -1;
        config.validate();
        FAIL("no throw");
    } catch (const sda::error& e) {
        CHECK(std::string(e.what()).find("drag") != std::string::npos);
    }
    CHECK_NOTHROW(KolmogorovFlow{KolmogorovConfig{.grid = 16}});
}

TEST_CASE("kolmogorov: trajectories are coarsened velocities independent of the thread count") {
    const KolmogorovConfig config{.grid = 32};
    const sda::systems::KolmogorovData data{.trajectories = 3, .states = 4, .coarsen = 4, .spacing = 0.1, .burn_in = 0.3, .seed = 9};
    sda::Tensor<float> one, two;
    std::size_t calls = 0, last = 0;
    tbb::task_arena(1).execute([&] { one = sda::systems::kolmogorov_trajectories(config, data); });
    tbb::task_arena(2).execute([&] {
        two = sda::systems::kolmogorov_trajectories(config, data, [&](std::size_t done) { ++calls, last = done; });
    });
    CHECK(sda::shape_of(one) == sda::Shape{3, 4, 2, 8, 8});
    CHECK(one == two);
    CHECK(calls == 3);
    CHECK(last == 3);
    bool finite = true;
    for (float x : one) finite = finite && std::isfinite(x);
    CHECK(finite);
    // trajectory 1 by hand: random_vorticity(Generator(seed, 1)), burn-in, then `spacing` apart
    KolmogorovFlow flow(config);
    sda::Generator gen(9, 1);
    auto omega = flow.random_vorticity(gen);
    flow.advance(omega, 0.3);
    flow.advance(omega, 0.1);
    const auto coarse = sda::systems::coarsen(flow.velocity(omega), 2, 32, 4);
    double difference = 0;
    for (std::size_t i = 0; i < coarse.size(); ++i) difference = std::max(difference, std::abs(coarse[i] - double(one(1, 1, i / 64, (i / 8) % 8, i % 8))));
    CHECK(difference < 1e-6);
    CHECK(one(0, 0, 0, 0, 0) != one(1, 0, 0, 0, 0));
    CHECK(one(0, 0, 0, 0, 0) != one(0, 1, 0, 0, 0));

    auto bad = [&](auto change) {
        sda::systems::KolmogorovData d = data;
        change(d);
        CHECK_THROWS_AS(sda::systems::kolmogorov_trajectories(config, d), sda::error);
    };
    bad([](auto& d) { d.trajectories = 0; });
    bad([](auto& d) { d.states = 0; });
    bad([](auto& d) { d.coarsen = 0; });
    bad([](auto& d) { d.coarsen = 3; });
    bad([](auto& d) { d.spacing = 0; });
    bad([](auto& d) { d.burn_in = -1; });
    CHECK_THROWS_AS(sda::systems::kolmogorov_trajectories(KolmogorovConfig{.grid = 10}, data), sda::error);
}
