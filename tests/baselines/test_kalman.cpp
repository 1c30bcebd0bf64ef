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
