// Tests of sda/baselines/fourdvar.hpp: strong-constraint 4D-Var against the RTS smoother (its
// exact answer on a linear chain without model noise), its adjoint gradient against finite
// differences, and its Gauss-Newton minimiser on Lorenz-96.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "sda/baselines/etkf.hpp"
#include "sda/baselines/fourdvar.hpp"
#include "sda/baselines/kalman.hpp"
#include "sda/core/random.hpp"
#include "sda/systems/linear_gaussian.hpp"
#include "sda/systems/lorenz96.hpp"

using sda::baselines::KalmanObservation;
using sda::systems::LinearGaussianChain;
using sda::systems::Lorenz96;
using Observations = std::vector<std::optional<KalmanObservation>>;

static_assert(sda::baselines::TangentLinearModel<Lorenz96>);
static_assert(sda::baselines::TangentLinearModel<LinearGaussianChain>);

namespace {

Eigen::VectorXd normal_vector(Eigen::Index n, sda::Generator& gen) {
    Eigen::VectorXd z(n);
    sda::fill_normal(z.data(), 1, static_cast<std::size_t>(n), gen);
    return z;
}

/// The damped spring without model noise, started from N(m, P) with a non-zero m.
LinearGaussianChain noiseless_spring() {
    const auto spring = LinearGaussianChain::damped_spring();
    Eigen::VectorXd mean0(4);
    mean0 << 0.3, -0.2, 0.1, 0.5;
    return {spring.F(), Eigen::MatrixXd::Zero(4, 4), mean0, spring.cov0()};
}

/// One Lorenz-96 trajectory of `states` states on the attractor (after 500 steps): [states, n].
sda::RowMatrix<double> lorenz96_truth(const Lorenz96& system, std::size_t states, sda::Generator& gen) {
    sda::Tensor<double> run = system.simulate(1, 500, states, gen);
    run.reshape({states, system.n});
    return sda::rows_view(run);
}

/// Every other variable of Lorenz-96 at every `every`-th state of `truth` [W, n], std `std`.
Observations lorenz96_observations(const sda::RowMatrix<double>& truth, std::size_t every, double std, sda::Generator& gen) {
    const auto n = truth.cols();
    Observations obs(static_cast<std::size_t>(truth.rows()));
    for (std::size_t i = every; i < obs.size(); i += every) {
        KalmanObservation o{Eigen::MatrixXd::Zero(n / 2, n), std * std * Eigen::MatrixXd::Identity(n / 2, n / 2), {}};
        for (Eigen::Index k = 0; k < n / 2; ++k) o.H(k, 2 * k) = 1.0;
        o.y = o.H * truth.row(static_cast<Eigen::Index>(i)).transpose() + std * normal_vector(n / 2, gen);
        obs[i] = std::move(o);
    }
    return obs;
}

/// A Gaspari-Cohn-correlated background covariance on the circle of n points, variance s^2.
Eigen::MatrixXd correlated_b(Eigen::Index n, double s, double half_width) {
    Eigen::MatrixXd B(n, n);
    for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = 0; j < n; ++j) {
            const double d = double(std::min(std::abs(i - j), n - std::abs(i - j)));
            B(i, j) = s * s * sda::baselines::gaspari_cohn(d / half_width);
        }
    return B;
}

}  // namespace

TEST_CASE("4d-var: on a linear chain without model noise it equals the RTS smoother's mean") {
    const auto chain = noiseless_spring();
    const std::size_t length = 12;
    sda::Generator gen(51);
    // the truth from the chain's own law; both positions every third state, the velocity sum at 7
    Eigen::VectorXd x = chain.mean0() + chain.cov0().llt().matrixL() * normal_vector(4, gen);
    Observations obs(length);
    for (std::size_t i = 0; i < length; ++i) {
        if (i > 0) x = chain.step(x);
        Eigen::MatrixXd H = Eigen::MatrixXd::Zero(i == 7 ? 1 : 2, 4);
        if (i == 7) H(0, 2) = H(0, 3) = 1.0;
        else if (i % 3 == 0) H(0, 0) = H(1, 1) = 1.0;
        else continue;
        Eigen::MatrixXd R = 0.04 * Eigen::MatrixXd::Identity(H.rows(), H.rows());
        if (H.rows() == 2) R(0, 1) = R(1, 0) = 0.01;  // correlated errors: R is not diagonal
        obs[i] = KalmanObservation{H, R, H * x + Eigen::VectorXd(R.llt().matrixL() * normal_vector(H.rows(), gen))};
    }
    const auto rts = sda::baselines::rts_smoother(chain, obs);
    const sda::baselines::StrongConstraint4DVar problem(chain, chain.mean0(), chain.cov0(), obs);
    const auto result = problem.minimize();
    // one Gauss-Newton iteration solves a quadratic problem; the second finds nothing to add
    CHECK(result.outer_iterations <= 2);
    REQUIRE(result.trajectory.rows() == static_cast<Eigen::Index>(length));
    double scale = 0.0;
    for (const auto& m : rts.smoothed_mean) scale = std::max(scale, m.norm());
    for (std::size_t i = 0; i < length; ++i)
        CHECK((result.trajectory.row(static_cast<Eigen::Index>(i)).transpose() - rts.smoothed_mean[i]).norm() <
              1e-8 * scale);
    // the analysis is a stationary point of J, and J fell from the background's
    CHECK(problem.gradient(result.initial).norm() < 1e-7 * problem.gradient(chain.mean0()).norm());
    CHECK(result.cost.back() < result.cost.front());
    // cycled over one window of the whole trajectory: the same analysis
    const auto cycled = sda::baselines::cycled_four_d_var(chain, chain.mean0(), chain.cov0(), obs, length);
    CHECK((cycled - result.trajectory).norm() < 1e-12 * scale);
}

TEST_CASE("4d-var: the adjoint gradient of J matches central finite differences (Lorenz-96)") {
    const Lorenz96 system;
    sda::Generator gen(52);
    const sda::RowMatrix<double> truth = lorenz96_truth(system, 7, gen);
    const Observations obs = lorenz96_observations(truth, 2, 0.7, gen);
    const Eigen::MatrixXd B = correlated_b(40, 0.8, 3.0);
    const Eigen::VectorXd background = truth.row(0).transpose() + 0.8 * normal_vector(40, gen);
    const sda::baselines::StrongConstraint4DVar problem(system, background, B, obs);
    const Eigen::VectorXd x0 = truth.row(0).transpose() + 0.3 * normal_vector(40, gen);
    const Eigen::VectorXd g = problem.gradient(x0);
    for (int trial = 0; trial < 4; ++trial) {
        const Eigen::VectorXd direction = normal_vector(40, gen).normalized();
        const double h = 1e-5;
        const double fd = (problem.cost(x0 + h * direction) - problem.cost(x0 - h * direction)) / (2 * h);
        CHECK(g.dot(direction) == doctest::Approx(fd).epsilon(1e-7));
    }
}

TEST_CASE("4d-var: Gauss-Newton on Lorenz-96 lowers J to a stationary point nearer the truth than the background") {
    const Lorenz96 system;
    sda::Generator gen(53);
    const sda::RowMatrix<double> truth = lorenz96_truth(system, 9, gen);
    const Observations obs = lorenz96_observations(truth, 2, 1.0, gen);
    const Eigen::MatrixXd B = correlated_b(40, 1.0, 2.0);
    const Eigen::VectorXd background = truth.row(0).transpose() + Eigen::VectorXd(B.llt().matrixL() * normal_vector(40, gen));
    const sda::baselines::StrongConstraint4DVar problem(system, background, B, obs);
    const auto result = problem.minimize();
    CHECK(result.outer_iterations >= 2);  // nonlinear: more than one linearisation
    for (std::size_t k = 1; k < result.cost.size(); ++k) CHECK(result.cost[k] <= result.cost[k - 1]);
    CHECK(problem.gradient(result.initial).norm() < 1e-6 * problem.gradient(background).norm());
    const double background_error = (problem.trajectory(background) - truth).norm();
    const double analysis_error = (result.trajectory - truth).norm();
    INFO("background error ", background_error, ", analysis error ", analysis_error);
    CHECK(analysis_error < 0.5 * background_error);
}

TEST_CASE("4d-var: cycled windows without observations forecast the background") {
    const auto chain = noiseless_spring();
    const auto x = sda::baselines::cycled_four_d_var(chain, chain.mean0(), chain.cov0(), Observations(7), 3);
    Eigen::VectorXd expected = chain.mean0();
    for (Eigen::Index i = 0; i < 7; ++i, expected = chain.step(expected))
        CHECK((x.row(i).transpose() - expected).norm() < 1e-13);
}

TEST_CASE("4d-var: bad input throws sda::error naming it") {
    const auto chain = noiseless_spring();
    const Eigen::VectorXd xb = chain.mean0();
    const Eigen::MatrixXd B = chain.cov0();
    using Problem = sda::baselines::StrongConstraint4DVar<LinearGaussianChain>;
    CHECK_THROWS_WITH_AS(Problem(chain, xb, B, Observations{}), "sda::baselines::StrongConstraint4DVar: the window has no states",
                         sda::error);
    CHECK_THROWS_AS(Problem(chain, Eigen::VectorXd::Zero(3), B, Observations(2)), sda::error);
    Eigen::VectorXd nan = xb;
    nan(1) = std::nan("");
    CHECK_THROWS_AS(Problem(chain, nan, B, Observations(2)), sda::error);
    CHECK_THROWS_WITH_AS(Problem(chain, xb, -B, Observations(2)),
                         "sda::baselines::StrongConstraint4DVar: B is not positive definite", sda::error);
    CHECK_THROWS_AS(Problem(chain, xb, Eigen::MatrixXd::Identity(3, 3), Observations(2)), sda::error);
    Observations bad(2);
    bad[1] = KalmanObservation{Eigen::MatrixXd::Ones(1, 3), Eigen::MatrixXd::Ones(1, 1), Eigen::VectorXd::Zero(1)};
    CHECK_THROWS_AS(Problem(chain, xb, B, bad), sda::error);
    bad[1] = KalmanObservation{Eigen::MatrixXd::Ones(1, 4), -Eigen::MatrixXd::Ones(1, 1), Eigen::VectorXd::Zero(1)};
    CHECK_THROWS_AS(Problem(chain, xb, B, bad), sda::error);
    CHECK_THROWS_AS(Problem(chain, xb, B, Observations(2)).minimize({.outer = 0}), sda::error);
    CHECK_THROWS_WITH_AS(sda::baselines::cycled_four_d_var(chain, xb, B, Observations(4), 5),
                         "sda::baselines::cycled_four_d_var: the window of 5 states must be between 1 and the 4 states "
                         "of the data", sda::error);
    CHECK_THROWS_AS(sda::baselines::cycled_four_d_var(chain, xb, B, Observations(4), 0), sda::error);
}
