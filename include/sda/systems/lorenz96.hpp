// sda/systems/lorenz96.hpp: the Lorenz-96 system, the standard higher-dimensional benchmark of
// data assimilation (Lorenz, "Predictability: a problem partly solved", 1996; the set-up of
// Sakov and Oke 2008 and of DAPPER: n = 40, F = 8, dt = 0.05).
//
// One transition is one RK4 step of dt of
//   dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F,   indices modulo n,
// plus optional additive N(0, noise^2 I) model noise. Besides the transition it offers the
// tangent-linear and adjoint models of one step (what 4D-Var and other variational methods
// need), checked in the tests by the dot-product test and against finite differences.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>

#include <Eigen/Core>
#include <tbb/parallel_for.h>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::systems {

struct Lorenz96 {
    std::size_t n = 40;    ///< number of variables on the circle, at least 4
    double forcing = 8.0;  ///< F
    double dt = 0.05;      ///< one RK4 step
    double noise = 0.0;    ///< standard deviation of the additive model noise per step (0: deterministic)

    using State = Eigen::VectorXd;

    /// Throws `sda::error` naming the first parameter that is out of range.
    void validate() const {
        detail::require(n >= 4, "sda::systems::Lorenz96: n must be at least 4, got ", n);
        detail::require(std::isfinite(forcing), "sda::systems::Lorenz96: forcing must be finite, got ", forcing);
        detail::require(std::isfinite(dt) && dt > 0.0, "sda::systems::Lorenz96: dt must be positive and finite, got ", dt);
        detail::require(std::isfinite(noise) && noise >= 0.0, "sda::systems::Lorenz96: noise must be >= 0 and finite, got ",
                        noise);
    }

    std::size_t dim() const { return n; }

    /// The vector field f(x).
    State f(const State& x) const {
        check_state(x, "f");
        State out(x.size());
        const Eigen::Index m = x.size();
        for (Eigen::Index i = 0; i < m; ++i)
            out(i) = (x(wrap(i + 1)) - x(wrap(i - 2))) * x(wrap(i - 1)) - x(i) + forcing;
        return out;
    }

    /// J(x) dx, the tangent of f at x.
    State f_tangent(const State& x, const State& dx) const {
        check_state(x, "f_tangent");
        check_state(dx, "f_tangent");
        State out(x.size());
        const Eigen::Index m = x.size();
        for (Eigen::Index i = 0; i < m; ++i)
            out(i) = (dx(wrap(i + 1)) - dx(wrap(i - 2))) * x(wrap(i - 1)) + (x(wrap(i + 1)) - x(wrap(i - 2))) * dx(wrap(i - 1)) -
                     dx(i);
        return out;
    }

    /// J(x)^T w, the adjoint of f_tangent at x.
    State f_adjoint(const State& x, const State& w) const {
        check_state(x, "f_adjoint");
        check_state(w, "f_adjoint");
        State out(x.size());
        const Eigen::Index m = x.size();
        // Column j of J(x) has x_{j-2} in row j - 1, -x_{j+1} in row j + 2,
        // x_{j+2} - x_{j-1} in row j + 1 and -1 in row j.
        for (Eigen::Index j = 0; j < m; ++j)
            out(j) = x(wrap(j - 2)) * w(wrap(j - 1)) - x(wrap(j + 1)) * w(wrap(j + 2)) +
                     (x(wrap(j + 2)) - x(wrap(j - 1))) * w(wrap(j + 1)) - w(j);
        return out;
    }

    /// One RK4 step of dt: the mean of the next state.
    State rk4(const State& x) const {
        const State k1 = f(x), k2 = f(x + 0.5 * dt * k1), k3 = f(x + 0.5 * dt * k2), k4 = f(x + dt * k3);
        return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
    }

    /// M(x) dx: the tangent-linear model of one RK4 step at x.
    State rk4_tangent(const State& x, const State& dx) const {
        const Stages s = stages(x);
        const State d1 = f_tangent(s.x1, dx);
        const State d2 = f_tangent(s.x2, dx + 0.5 * dt * d1);
        const State d3 = f_tangent(s.x3, dx + 0.5 * dt * d2);
        const State d4 = f_tangent(s.x4, dx + dt * d3);
        return dx + dt / 6.0 * (d1 + 2.0 * d2 + 2.0 * d3 + d4);
    }

    /// M(x)^T w: the adjoint model of one RK4 step at x (reverse sweep of rk4_tangent).
    State rk4_adjoint(const State& x, const State& w) const {
        check_state(w, "rk4_adjoint");
        const Stages s = stages(x);
        State out = w;
        const State a4 = f_adjoint(s.x4, dt / 6.0 * w);             // adjoint of d4's input, dx + dt d3
        out += a4;
        const State a3 = f_adjoint(s.x3, dt / 3.0 * w + dt * a4);    // adjoint of dx + dt/2 d2
        out += a3;
        const State a2 = f_adjoint(s.x2, dt / 3.0 * w + 0.5 * dt * a3);  // adjoint of dx + dt/2 d1
        out += a2;
        out += f_adjoint(s.x1, dt / 6.0 * w + 0.5 * dt * a2);
        return out;
    }

    /// The deterministic transition and its tangent-linear and adjoint models under the names
    /// variational methods use (`baselines::TangentLinearModel`); the model noise is not part of it.
    State step(const State& x) const { return rk4(x); }
    State step_tangent(const State& x, const State& dx) const { return rk4_tangent(x, dx); }
    State step_adjoint(const State& x, const State& w) const { return rk4_adjoint(x, w); }

    /// log N(next | rk4(previous), noise^2 I); needs noise > 0.
    double log_transition(const State& previous, const State& next) const {
        detail::require(noise > 0.0, "sda::systems::Lorenz96::log_transition: the model is deterministic (noise 0)");
        check_state(next, "log_transition");
        const double variance = noise * noise, squared = (next - rk4(previous)).squaredNorm();
        return -0.5 * squared / variance - 0.5 * static_cast<double>(n) * std::log(2.0 * std::numbers::pi * variance);
    }

    /// One transition of every row of `x` [N, n], in place: x <- rk4(x) + noise N(0, I).
    /// One draw of `gen` (none when noise is 0); parallel over rows, the result does not
    /// depend on the thread count.
    void propagate(RowMatrix<double>& x, Generator& gen) const {
        validate();
        detail::require(x.cols() == static_cast<Eigen::Index>(n), "sda::systems::Lorenz96::propagate: states must have ", n,
                        " variables, got ", x.cols());
        RowMatrix<double> draws;
        if (noise > 0.0) {
            draws.resize(x.rows(), x.cols());
            fill_normal(draws.data(), static_cast<std::size_t>(x.rows()), n, gen);
        }
        tbb::parallel_for(Eigen::Index{0}, x.rows(), [&](Eigen::Index r) {
            State next = rk4(x.row(r).transpose());
            if (noise > 0.0) next += noise * draws.row(r).transpose();
            x.row(r) = next.transpose();
        });
    }

    /// `count` trajectories [count, length, n]: x_0 = F + N(0, I) per variable, `burn_in`
    /// transitions discarded (the attractor is reached after a few hundred steps), then
    /// `length` states kept. Trajectory b's draws are keyed by b: thread-count independent.
    Tensor<double> simulate(std::size_t count, std::size_t burn_in, std::size_t length, Generator& gen) const {
        validate();
        detail::require(count >= 1 && length >= 1, "sda::systems::Lorenz96::simulate: count and length must be >= 1");
        const std::size_t steps = burn_in + length;
        detail::require(steps <= (std::size_t{1} << 40) / (count * n), "sda::systems::Lorenz96::simulate: ", count, " x ",
                        steps, " steps of ", n, " variables is too large");
        Tensor<double> initial = empty_tensor<double>({count, n});
        fill_normal(initial.data(), count, n, gen);
        Tensor<double> draws = empty_tensor<double>({noise > 0.0 ? count : 0, steps, n});
        if (noise > 0.0) fill_normal(draws.data(), count, steps * n, gen);
        Tensor<double> out = empty_tensor<double>({count, length, n});
        const Eigen::Index m = static_cast<Eigen::Index>(n);
        tbb::parallel_for(std::size_t{0}, count, [&](std::size_t b) {
            State x = Eigen::Map<const State>(initial.data() + b * n, m).array() + forcing;
            for (std::size_t i = 0; i < steps; ++i) {
                x = rk4(x);
                if (noise > 0.0) x += noise * Eigen::Map<const State>(draws.data() + (b * steps + i) * n, m);
                if (i >= burn_in) Eigen::Map<State>(out.data() + (b * length + i - burn_in) * n, m) = x;
            }
        });
        return out;
    }

private:
    struct Stages {
        State x1, x2, x3, x4;  // the points where RK4 evaluates f
    };

    Stages stages(const State& x) const {
        Stages s;
        s.x1 = x;
        const State k1 = f(s.x1);
        s.x2 = x + 0.5 * dt * k1;
        const State k2 = f(s.x2);
        s.x3 = x + 0.5 * dt * k2;
        const State k3 = f(s.x3);
        s.x4 = x + dt * k3;
        return s;
    }

    Eigen::Index wrap(Eigen::Index i) const {
        const auto m = static_cast<Eigen::Index>(n);
        return ((i % m) + m) % m;
    }

    void check_state(const State& x, const char* what) const {
        detail::require(x.size() == static_cast<Eigen::Index>(n), "sda::systems::Lorenz96::", what, ": expected ", n,
                        " variables, got ", x.size());
    }
};

}  // namespace sda::systems
