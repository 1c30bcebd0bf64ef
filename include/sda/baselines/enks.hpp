// sda/baselines/enks.hpp: the ensemble Kalman smoother (EnKS), the classical
// data-assimilation baseline, for any Markov chain that can be simulated.
//
// Evensen & van Leeuwen, "An ensemble Kalman smoother for nonlinear dynamics"
// (Monthly Weather Review, 2000), stochastic form (Burgers, van Leeuwen &
// Evensen 1998: perturbed observations). The ensemble is propagated through
// the transition; at each observed state i every member n gets
//   d_n = y_i - (H x_i^n + e_n),  e_n ~ N(0, R_i),
// and every state j <= i so far (full lag) moves by
//   x_j^n += C(x_j, H x_i) (C(H x_i, H x_i) + R_i)^{-1} d_n,
// with ensemble (co)variances C. For a linear-Gaussian chain the ensemble
// converges to the Kalman/RTS smoother as it grows (tested).
#pragma once

#include <cmath>
#include <cstddef>
#include <optional>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "sda/baselines/kalman.hpp"
#include "sda/baselines/particle_filter.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::baselines {

struct EnsembleSmootherOptions {
    /// Multiplicative inflation of the ensemble's anomalies at every state, before
    /// its update (1: none), the usual remedy for a small ensemble's collapse.
    double inflation = 1.0;
};

/// Smooths `observations.size()` states from `initial` (N draws of x_1, one
/// per row: the ensemble); returns the smoothed ensemble [N, L, D].
template <MarkovTransition M>
Tensor<double> ensemble_kalman_smoother(const M& model, const RowMatrix<double>& initial,
                                        const std::vector<std::optional<KalmanObservation>>& observations,
                                        Generator& gen, const EnsembleSmootherOptions& options = {}) {
    const std::size_t length = observations.size(), dim = model.dim();
    detail::check_initial(initial, dim, 2, "sda::baselines::ensemble_kalman_smoother");
    sda::detail::require(length >= 1, "sda::baselines::ensemble_kalman_smoother: no states");
    sda::detail::require(options.inflation >= 1.0 && std::isfinite(options.inflation),
                         "sda::baselines::ensemble_kalman_smoother: inflation must be >= 1, got ", options.inflation);
    const auto N = initial.rows();
    const double scale = 1.0 / double(N - 1);
    std::vector<RowMatrix<double>> states(length);
    RowMatrix<double> x = initial;
    for (std::size_t i = 0; i < length; ++i) {
        if (i > 0) model.propagate(x, gen);
        if (options.inflation != 1.0) {
            const Eigen::RowVectorXd mean = x.colwise().mean();
            x = ((x.rowwise() - mean) * options.inflation).rowwise() + mean;
        }
        states[i] = x;
        const auto& obs = observations[i];
        if (!obs) continue;
        const auto m = obs->y.size();
        const Eigen::LLT<Eigen::MatrixXd> noise =
            detail::checked_noise(*obs, x.cols(), i, "sda::baselines::ensemble_kalman_smoother");
        const RowMatrix<double> predicted = states[i] * obs->H.transpose();  // H x_i^n
        const RowMatrix<double> B = predicted.rowwise() - predicted.colwise().mean();
        RowMatrix<double> e(N, m);
        fill_normal(e.data(), static_cast<std::size_t>(N), static_cast<std::size_t>(m), gen);
        const RowMatrix<double> innovation =
            (-(predicted + e * noise.matrixL().transpose())).rowwise() + obs->y.transpose();  // d_n, one per row
        const Eigen::MatrixXd S = scale * B.transpose() * B + obs->R;
        const Eigen::LLT<Eigen::MatrixXd> llt(S);
        sda::detail::require(llt.info() == Eigen::Success, "sda::baselines::ensemble_kalman_smoother: innovation ",
                             "covariance at state ", i, " is not positive definite");
        const RowMatrix<double> weights = llt.solve(innovation.transpose()).transpose();  // S^{-1} d_n, one per row
        for (std::size_t j = 0; j <= i; ++j) {
            const RowMatrix<double> A = states[j].rowwise() - states[j].colwise().mean();
            const Eigen::MatrixXd cross = scale * A.transpose() * B;  // C(x_j, H x_i), D x m
            states[j] += weights * cross.transpose();
        }
        x = states[i];
    }
    return detail::stack_states(states, dim);
}

}  // namespace sda::baselines
