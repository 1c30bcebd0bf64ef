// Tests of sda/baselines/kalman.hpp and sda/systems/linear_gaussian.hpp: the
// RTS smoother against the posterior of the joint Gaussian, computed directly.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <optional>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>

#include "sda/baselines/kalman.hpp"
#include "sda/core/random.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/systems/linear_gaussian.hpp"
#include "support/stats.hpp"

using sda::systems::LinearGaussianChain;

TEST_CASE("linear-gaussian chain: the stationary law is stationary, and simulations follow the joint law") {
    const auto chain = LinearGaussianChain::damped_spring();
    const Eigen::MatrixXd& P = chain.cov0();
    CHECK((chain.F() * P * chain.F().transpose() + chain.Q() - P).norm() < 1e-12);
    CHECK(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(P).eigenvalues().minCoeff() > 0.0);
    const auto [mean, cov] = chain.joint_law(4);
    // every state of a stationary chain has the same law
    for (int i = 0; i < 4; ++i) CHECK((cov.block(4 * i, 4 * i, 4, 4) - P).norm() < 1e-12);
    CHECK((cov.block(4, 0, 4, 4) - chain.F() * P).norm() < 1e-12);
    // 8192 simulated windows of 4 states against their exact law (Monte-Carlo tests at level 1e-3)
    sda::Generator gen(31);
    const Eigen::MatrixXd x = sda::test::as_matrix(chain.simulate(8192, 4, gen));
    const auto mean_test = sda::test::mean_test(x, mean, cov);
    const auto cov_test = sda::test::covariance_test(x, mean, cov);
    CHECK_MESSAGE(mean_test.pass(), "mean statistic ", mean_test.value, " above ", mean_test.threshold);
    CHECK_MESSAGE(cov_test.pass(), "covariance statistic ", cov_test.value, " above ", cov_test.threshold);
}

TEST_CASE("rts smoother: equals the posterior of the joint Gaussian") {
    const auto chain = LinearGaussianChain::damped_spring();
    const std::size_t length = 12, d = chain.dim();
    // observe both positions every third state, and their difference at state 7
    const auto select = sda::observe::Select({0, 3, 6, 9}, {0, 1});
    Eigen::MatrixXd A(9, length * d);
    A.topRows(8) = sda::observe::dense_matrix(select, {length, d});
    A.row(8).setZero();
    A(8, 7 * d) = 1.0, A(8, 7 * d + 1) = -1.0;
    Eigen::VectorXd variance = Eigen::VectorXd::Constant(9, 0.04);
    variance(8) = 0.01;
    sda::Generator gen(32);
    const Eigen::VectorXd truth = sda::test::as_matrix(chain.simulate(1, length, gen)).row(0).transpose();
    Eigen::VectorXd noise(9);
    sda::fill_normal(noise.data(), 1, 9, gen);
    const Eigen::VectorXd y = A * truth + variance.cwiseSqrt().cwiseProduct(noise);

    const auto result = sda::baselines::rts_smoother(
        chain, sda::baselines::per_state_observations(A, y, variance, length, d));

    // direct: Sigma = (S^{-1} + A^T R^{-1} A)^{-1}, m = Sigma (S^{-1} m0 + A^T R^{-1} y)
    const auto [m0, S] = chain.joint_law(length);
    const Eigen::MatrixXd Rinv = variance.cwiseInverse().asDiagonal();
    const Eigen::MatrixXd precision = S.inverse() + A.transpose() * Rinv * A;
    const Eigen::MatrixXd Sigma = precision.inverse();
    const Eigen::VectorXd m = Sigma * (S.inverse() * m0 + A.transpose() * Rinv * y);
    for (std::size_t i = 0; i < length; ++i) {
        const auto at = static_cast<Eigen::Index>(i * d), n = static_cast<Eigen::Index>(d);
        CHECK((result.smoothed_mean[i] - m.segment(at, n)).norm() < 1e-9);
        CHECK((result.smoothed_cov[i] - Sigma.block(at, at, n, n)).norm() < 1e-9);
    }
    // the last filtered state is the last smoothed one
    CHECK((result.filtered_mean.back() - result.smoothed_mean.back()).norm() < 1e-12);
    // log p(y) = log N(y | A m0, A S A^T + R)
    const Eigen::MatrixXd C = A * S * A.transpose() + Eigen::MatrixXd(variance.asDiagonal());
    const Eigen::LLT<Eigen::MatrixXd> llt(C);
    const Eigen::VectorXd r = y - A * m0;
    const double log_p = -0.5 * r.dot(llt.solve(r)) - Eigen::MatrixXd(llt.matrixL()).diagonal().array().log().sum() -
                         4.5 * std::log(2.0 * std::numbers::pi);
    CHECK(result.log_likelihood == doctest::Approx(log_p).epsilon(1e-10));
}

TEST_CASE("rts smoother: without observations it returns the prior") {
    const auto chain = LinearGaussianChain::damped_spring();
    const auto result = sda::baselines::rts_smoother(chain, std::vector<std::optional<sda::baselines::KalmanObservation>>(5));
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(result.smoothed_mean[i].norm() < 1e-14);
        CHECK((result.smoothed_cov[i] - chain.cov0()).norm() < 1e-12);
    }
    CHECK(result.log_likelihood == 0.0);
}

TEST_CASE("rts smoother: observations that mix states or mismatch in size throw") {
    Eigen::MatrixXd A = Eigen::MatrixXd::Zero(1, 12);
    A(0, 0) = A(0, 4) = 1.0;
    CHECK_THROWS_WITH_AS(sda::baselines::per_state_observations(A, Eigen::VectorXd::Zero(1), Eigen::VectorXd::Ones(1), 3, 4),
                         "sda::baselines::per_state_observations: row 0 of A touches states 0 and 1", sda::error);
    CHECK_THROWS_AS(sda::baselines::per_state_observations(A, Eigen::VectorXd::Zero(2), Eigen::VectorXd::Ones(1), 3, 4),
                    sda::error);
    const auto chain = LinearGaussianChain::damped_spring();
    std::vector<std::optional<sda::baselines::KalmanObservation>> obs(2);
    obs[1] = sda::baselines::KalmanObservation{Eigen::MatrixXd::Ones(1, 3), Eigen::MatrixXd::Ones(1, 1), Eigen::VectorXd::Zero(1)};
    CHECK_THROWS_AS(sda::baselines::rts_smoother(chain, obs), sda::error);
}

// --- particle smoother and ensemble Kalman smoother against the RTS oracle ------------------

#include "sda/baselines/enks.hpp"
#include "sda/baselines/particle_filter.hpp"

namespace {

/// Positions of the damped spring observed at states 0, 3, 6, 9 of 10, std 0.3.
struct SpringProblem {
    LinearGaussianChain chain = LinearGaussianChain::damped_spring();
    std::size_t length = 10;
    std::vector<std::optional<sda::baselines::KalmanObservation>> observations;
    sda::baselines::SmootherResult exact;

    SpringProblem() {
        const std::size_t d = chain.dim();
        const auto select = sda::observe::Select({0, 3, 6, 9}, {0, 1});
        const Eigen::MatrixXd A = sda::observe::dense_matrix(select, {length, d});
        const Eigen::VectorXd variance = Eigen::VectorXd::Constant(A.rows(), 0.09);
        sda::Generator gen(33);
        const Eigen::VectorXd truth = sda::test::as_matrix(chain.simulate(1, length, gen)).row(0).transpose();
        Eigen::VectorXd noise(A.rows());
        sda::fill_normal(noise.data(), 1, static_cast<std::size_t>(A.rows()), gen);
        const Eigen::VectorXd y = A * truth + variance.cwiseSqrt().cwiseProduct(noise);
        observations = sda::baselines::per_state_observations(A, y, variance, length, d);
        exact = sda::baselines::rts_smoother(chain, observations);
    }

    /// Checks every state i and coordinate of the sample `x` [S, L, d]:
    /// |mean - exact| < mean_tol sd and |variance / exact - 1| < var_tol,
    /// with (mean_tol, var_tol) = tolerance(i).
    template <class Tolerance>
    void check_moments(const sda::Tensor<double>& x, Tolerance&& tolerance) const {
        const std::size_t d = chain.dim();
        for (std::size_t i = 0; i < length; ++i) {
            const auto [mean_tol, var_tol] = tolerance(i);
            Eigen::MatrixXd states(x.shape()[0], d);
            for (std::size_t s = 0; s < x.shape()[0]; ++s)
                for (std::size_t k = 0; k < d; ++k) states(s, k) = x(s, i, k);
            const Eigen::VectorXd mean = sda::test::sample_mean(states);
            const Eigen::MatrixXd cov = sda::test::sample_cov(states);
            for (std::size_t k = 0; k < d; ++k) {
                const auto kk = static_cast<Eigen::Index>(k);
                const double sd = std::sqrt(exact.smoothed_cov[i](kk, kk));
                CHECK_MESSAGE(std::abs(mean(kk) - exact.smoothed_mean[i](kk)) < mean_tol * sd, "state ", i, " coordinate ",
                              k, ": mean ", mean(kk), " vs ", exact.smoothed_mean[i](kk));
                CHECK_MESSAGE(std::abs(cov(kk, kk) / (sd * sd) - 1.0) < var_tol, "state ", i, " coordinate ", k,
                              ": variance ", cov(kk, kk), " vs ", sd * sd);
            }
        }
    }
};

}  // namespace

TEST_CASE("particle smoother: genealogy draws match the RTS smoother of a linear-Gaussian chain") {
    const SpringProblem problem;
    sda::Generator gen(34);
    const std::size_t particles = 16384, samples = 4096;
    const auto result = sda::baselines::particle_smoother(problem.chain, problem.chain.sample_initial(particles, gen),
                                                          problem.observations, samples, gen);
    REQUIRE(result.trajectories.shape() == std::vector<std::size_t>{samples, problem.length, problem.chain.dim()});
    CHECK(result.resamplings >= 1);
    // The draws of state i come from unique_ancestors[i] distinct particles, each
    // approximately a posterior draw: the standard error of their mean is about
    // sd sqrt(1/unique + 1/samples), of their variance about sqrt(2/unique + 2/samples).
    problem.check_moments(result.trajectories, [&](std::size_t i) {
        const double u = 1.0 / double(result.unique_ancestors[i]) + 1.0 / double(samples);
        INFO("state ", i, ": ", result.unique_ancestors[i], " distinct ancestors");
        REQUIRE(result.unique_ancestors[i] >= 100);
        return std::pair{5.0 * std::sqrt(u), 5.0 * std::sqrt(2.0 * u)};
    });
}

TEST_CASE("particle smoother: the likelihood estimate is unbiased for p(y)") {
    // exp(log_likelihood) is an unbiased estimate of p(y): over independent runs,
    // the mean of the ratio to the exact p(y) is 1 within its Monte-Carlo error.
    const SpringProblem problem;
    std::vector<double> ratios;
    for (std::uint64_t seed = 0; seed < 16; ++seed) {
        sda::Generator gen(100 + seed);
        const auto result = sda::baselines::particle_smoother(problem.chain, problem.chain.sample_initial(1024, gen),
                                                              problem.observations, 1, gen);
        ratios.push_back(std::exp(result.log_likelihood - problem.exact.log_likelihood));
    }
    double mean = 0, var = 0;
    for (double r : ratios) mean += r / double(ratios.size());
    for (double r : ratios) var += (r - mean) * (r - mean) / double(ratios.size() - 1);
    const double se = std::sqrt(var / double(ratios.size()));
    MESSAGE("mean of p_hat(y) / p(y) over 16 runs: ", mean, " +- ", se);
    CHECK(std::abs(mean - 1.0) < 4.5 * se + 1e-3);
    CHECK(se < 0.1);  // 1024 particles on 4 observations: a precise estimate
}

TEST_CASE("ensemble Kalman smoother: a large ensemble matches the RTS smoother of a linear-Gaussian chain") {
    const SpringProblem problem;
    sda::Generator gen(35);
    const std::size_t members = 8192;
    const auto x = sda::baselines::ensemble_kalman_smoother(problem.chain, problem.chain.sample_initial(members, gen),
                                                            problem.observations, gen);
    REQUIRE(x.shape() == std::vector<std::size_t>{members, problem.length, problem.chain.dim()});
    // Monte-Carlo error of an ensemble of N: sd / sqrt(N) for the mean, sqrt(2 / N) for the
    // relative variance; the gains estimated from the same ensemble add an error of the same
    // order (Furrer & Bengtsson 2007), hence twice the usual 4.5 standard errors.
    const double n = double(members);
    problem.check_moments(x, [&](std::size_t) { return std::pair{9.0 / std::sqrt(n), 9.0 * std::sqrt(2.0 / n)}; });
}

TEST_CASE("particle and ensemble smoothers: bad input throws sda::error") {
    const SpringProblem problem;
    sda::Generator gen(36);
    const sda::RowMatrix<double> wrong(16, 3);
    CHECK_THROWS_WITH_AS(sda::baselines::particle_smoother(problem.chain, wrong, problem.observations, 4, gen),
                         doctest::Contains("initial particles are 16 x 3"), sda::error);
    CHECK_THROWS_AS(sda::baselines::ensemble_kalman_smoother(problem.chain, wrong, problem.observations, gen), sda::error);
    sda::RowMatrix<double> nan = problem.chain.sample_initial(16, gen);
    nan(3, 1) = std::nan("");
    CHECK_THROWS_WITH_AS(sda::baselines::particle_smoother(problem.chain, nan, problem.observations, 4, gen),
                         doctest::Contains("NaN"), sda::error);
    const auto initial = problem.chain.sample_initial(16, gen);
    CHECK_THROWS_AS(sda::baselines::particle_smoother(problem.chain, initial, problem.observations, 4, gen, {.resample_threshold = 2}),
                    sda::error);
    CHECK_THROWS_AS(sda::baselines::ensemble_kalman_smoother(problem.chain, initial, problem.observations, gen, {.inflation = 0.5}),
                    sda::error);
    auto bad = problem.observations;
    bad[2] = sda::baselines::KalmanObservation{Eigen::MatrixXd::Ones(1, 4), -Eigen::MatrixXd::Ones(1, 1), Eigen::VectorXd::Zero(1)};
    CHECK_THROWS_WITH_AS(sda::baselines::particle_smoother(problem.chain, initial, bad, 4, gen),
                         doctest::Contains("positive definite R"), sda::error);
    CHECK_THROWS_AS(sda::baselines::ensemble_kalman_smoother(problem.chain, initial, bad, gen), sda::error);
}
