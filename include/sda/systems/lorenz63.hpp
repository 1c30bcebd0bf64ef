// sda/systems/lorenz63.hpp: the noisy Lorenz-63 system of the paper
// (the setup of Rozet & Louppe 2023, docs/lorenz63.md; Lorenz, "Deterministic nonperiodic flow", 1963).
//
// One transition is one RK4 step of dt = 0.025 of
//   dx = sigma (y - x),  dy = x (rho - z) - y,  dz = x y - beta z,
// (sigma, rho, beta) = (10, 28, 8/3), plus N(0, dt) noise on each coordinate.
// The initial law is N([0, 0, 25], [[64, 50, 0], [50, 81, 0], [0, 0, 75]]);
// data are standardised with mean [0, 0, 25] and scale [8, 9, 8.6].
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <tbb/parallel_for.h>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::systems {

struct Lorenz63 {
    double sigma = 10.0, rho = 28.0, beta = 8.0 / 3.0, dt = 0.025;

    using State = Eigen::Vector3d;

    static State mean() { return {0.0, 0.0, 25.0}; }
    static State scale() { return {8.0, 9.0, 8.6}; }

    State f(const State& x) const {
        return {sigma * (x(1) - x(0)), x(0) * (rho - x(2)) - x(1), x(0) * x(1) - beta * x(2)};
    }

    /// One RK4 step of dt: the mean of the next state.
    State rk4(const State& x) const {
        const State k1 = f(x), k2 = f(x + 0.5 * dt * k1), k3 = f(x + 0.5 * dt * k2), k4 = f(x + dt * k3);
        return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
    }

    /// log N(next | rk4(previous), dt I), unstandardised states.
    double log_transition(const State& previous, const State& next) const {
        const double squared = (next - rk4(previous)).squaredNorm();
        return -0.5 * squared / dt - 1.5 * std::log(2.0 * std::numbers::pi * dt);
    }

    /// `count` trajectories: x_0 from the initial law, `burn_in` transitions
    /// discarded, then `length` states kept (x_{burn_in + 1}, ...), shape
    /// [count, length, 3], unstandardised. Parallel over trajectories; trajectory
    /// b's noise is keyed by b, so the result does not depend on the thread count.
    Tensor<double> simulate(std::size_t count, std::size_t burn_in, std::size_t length, Generator& gen) const {
        sda::detail::require(count >= 1 && length >= 1, "sda::systems::Lorenz63::simulate: count and length must be >= 1");
        sda::detail::require(dt > 0 && std::isfinite(dt), "sda::systems::Lorenz63: dt must be positive, got ", dt);
        Eigen::Matrix3d cov;
        cov << 64, 50, 0, 50, 81, 0, 0, 0, 75;
        const Eigen::Matrix3d chol = cov.llt().matrixL();
        const std::size_t steps = burn_in + length;
        Tensor<double> initial = empty_tensor<double>({count, 3});
        fill_normal(initial.data(), count, 3, gen);
        Tensor<double> noise = empty_tensor<double>({count, steps, 3});
        fill_normal(noise.data(), count, steps * 3, gen);
        Tensor<double> out = empty_tensor<double>({count, length, 3});
        const double noise_std = std::sqrt(dt);
        tbb::parallel_for(std::size_t{0}, count, [&](std::size_t b) {
            State x = mean() + chol * Eigen::Map<const State>(initial.data() + 3 * b);
            for (std::size_t i = 0; i < steps; ++i) {
                x = rk4(x) + noise_std * Eigen::Map<const State>(noise.data() + (b * steps + i) * 3);
                if (i >= burn_in) Eigen::Map<State>(out.data() + (b * length + i - burn_in) * 3) = x;
            }
        });
        return out;
    }

    static constexpr std::size_t dim() { return 3; }

    /// One noisy transition of every row of `x` [N, 3] (unstandardised), in
    /// place: x <- rk4(x) + N(0, dt I). One draw of `gen`; parallel over rows.
    void propagate(RowMatrix<double>& x, Generator& gen) const {
        sda::detail::require(x.cols() == 3, "sda::systems::Lorenz63::propagate: states must have 3 coordinates, got ",
                             x.cols());
        RowMatrix<double> noise(x.rows(), 3);
        fill_normal(noise.data(), static_cast<std::size_t>(x.rows()), 3, gen);
        const double noise_std = std::sqrt(dt);
        tbb::parallel_for(Eigen::Index{0}, x.rows(), [&](Eigen::Index n) {
            const State next = rk4(State(x(n, 0), x(n, 1), x(n, 2)));
            for (Eigen::Index k = 0; k < 3; ++k) x(n, k) = next(k) + noise_std * noise(n, k);
        });
    }

    /// (x - mean) / scale, coordinate-wise, for any tensor [..., 3].
    template <class T>
    static Tensor<T> standardise(const Tensor<double>& x) {
        check_last_axis(x);
        Tensor<T> out = empty_tensor<T>(shape_of(x));
        for (std::size_t i = 0; i < x.size(); ++i)
            out.data()[i] = static_cast<T>((x.data()[i] - mean()(static_cast<Eigen::Index>(i % 3))) / scale()(static_cast<Eigen::Index>(i % 3)));
        return out;
    }
    /// mean + scale x, coordinate-wise.
    template <class T>
    static Tensor<double> unstandardise(const Tensor<T>& x) {
        check_last_axis(x);
        Tensor<double> out = empty_tensor<double>(shape_of(x));
        for (std::size_t i = 0; i < x.size(); ++i)
            out.data()[i] = mean()(static_cast<Eigen::Index>(i % 3)) + scale()(static_cast<Eigen::Index>(i % 3)) * double(x.data()[i]);
        return out;
    }

    /// The mean over all transitions of log N(x_{i+1} | rk4(x_i), dt I), for
    /// unstandardised trajectories [N, L, 3] (the paper's "log-prior").
    double mean_log_transition(const Tensor<double>& x) const {
        check_last_axis(x);
        sda::detail::require(x.dimension() == 3 && x.shape()[1] >= 2, "sda::systems::Lorenz63::mean_log_transition: need [N, L >= 2, 3]");
        const std::size_t n = x.shape()[0], length = x.shape()[1];
        double sum = 0;
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t i = 0; i + 1 < length; ++i)
                sum += log_transition(Eigen::Map<const State>(x.data() + (b * length + i) * 3),
                                      Eigen::Map<const State>(x.data() + (b * length + i + 1) * 3));
        return sum / static_cast<double>(n * (length - 1));
    }

private:
    template <class T>
    static void check_last_axis(const Tensor<T>& x) {
        sda::detail::require(x.dimension() >= 1 && x.shape().back() == 3, "sda::systems::Lorenz63: states must have 3 coordinates, got shape ",
                        format_shape(shape_of(x)));
    }
};

/// The paper's dataset, standardised float32 trajectories split in order.
struct Lorenz63Splits {
    Tensor<float> train, valid, test;
};

/// `count` trajectories of `length` states after `burn_in` transitions,
/// standardised, split 80/10/10 as the paper's generate.py (the first
/// floor(0.8 count) for training, up to floor(0.9 count) for validation).
inline Lorenz63Splits lorenz63_dataset(std::size_t count, std::size_t burn_in, std::size_t length, Generator& gen,
                                       const Lorenz63& system = {}) {
    detail::require(count >= 10, "sda::systems::lorenz63_dataset: need at least 10 trajectories, got ", count);
    const Tensor<float> all = Lorenz63::standardise<float>(system.simulate(count, burn_in, length, gen));
    const std::size_t i = count * 8 / 10, j = count * 9 / 10, state = length * 3;
    auto slice = [&](std::size_t begin, std::size_t end) {
        Tensor<float> out = empty_tensor<float>({end - begin, length, 3});
        std::copy(all.data() + begin * state, all.data() + end * state, out.data());
        return out;
    };
    return {slice(0, i), slice(i, j), slice(j, count)};
}

}  // namespace sda::systems
