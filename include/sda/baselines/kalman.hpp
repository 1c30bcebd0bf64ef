// sda/baselines/kalman.hpp: the Kalman filter and Rauch-Tung-Striebel smoother
// for linear-Gaussian chains, the exact posterior of every state.
//
// Kalman, "A new approach to linear filtering and prediction problems" (1960);
// Rauch, Tung & Striebel, AIAA Journal (1965). Observations y_i = H_i x_i + v_i,
// v_i ~ N(0, R_i), at any subset of times. Covariances are updated in Joseph
// form and kept symmetric. This is the oracle the SDA posterior is judged against.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>
#include <optional>
#include <utility>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "sda/core/error.hpp"
#include "sda/systems/linear_gaussian.hpp"

namespace sda::baselines {

/// One time's observation y = H x + N(0, R).
struct KalmanObservation {
    Eigen::MatrixXd H;
    Eigen::MatrixXd R;
    Eigen::VectorXd y;
};

struct SmootherResult {
    std::vector<Eigen::VectorXd> filtered_mean, smoothed_mean;  ///< per state, p(x_i | y_1..i) and p(x_i | y_1..L)
    std::vector<Eigen::MatrixXd> filtered_cov, smoothed_cov;
    double log_likelihood = 0.0;  ///< log p(y_1..L)
};

/// Filters and smooths `observations.size()` states of `chain`; an empty entry
/// means no observation at that time.
inline SmootherResult rts_smoother(const systems::LinearGaussianChain& chain,
                                   const std::vector<std::optional<KalmanObservation>>& observations) {
    const std::size_t length = observations.size();
    const auto d = static_cast<Eigen::Index>(chain.dim());
    detail::require(length >= 1, "sda::baselines::rts_smoother: no states");
    SmootherResult out;
    out.filtered_mean.resize(length), out.filtered_cov.resize(length);
    std::vector<Eigen::VectorXd> predicted_mean(length);
    std::vector<Eigen::MatrixXd> predicted_cov(length);
    const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(d, d);

    for (std::size_t i = 0; i < length; ++i) {
        predicted_mean[i] = i == 0 ? chain.mean0() : Eigen::VectorXd(chain.F() * out.filtered_mean[i - 1]);
        predicted_cov[i] = i == 0 ? chain.cov0()
                                  : Eigen::MatrixXd(chain.F() * out.filtered_cov[i - 1] * chain.F().transpose() +
                                                    chain.Q());
        Eigen::VectorXd m = predicted_mean[i];
        Eigen::MatrixXd P = predicted_cov[i];
        if (const auto& obs = observations[i]) {
            detail::require(obs->H.cols() == d && obs->H.rows() == obs->y.size() && obs->R.rows() == obs->y.size() &&
                                obs->R.cols() == obs->y.size(),
                            "sda::baselines::rts_smoother: observation ", i, " has inconsistent H, R and y sizes");
            const Eigen::MatrixXd S = obs->H * P * obs->H.transpose() + obs->R;
            const Eigen::LLT<Eigen::MatrixXd> llt(S);
            detail::require(llt.info() == Eigen::Success, "sda::baselines::rts_smoother: innovation covariance at ",
                            i, " is not positive definite");
            const Eigen::VectorXd innovation = obs->y - obs->H * m;
            const Eigen::MatrixXd gain = llt.solve(obs->H * P).transpose();  // P H^T S^{-1}
            m += gain * innovation;
            const Eigen::MatrixXd A = identity - gain * obs->H;
            P = A * P * A.transpose() + gain * obs->R * gain.transpose();
            const Eigen::MatrixXd L = llt.matrixL();
            out.log_likelihood += -0.5 * innovation.dot(llt.solve(innovation)) -
                                  L.diagonal().array().log().sum() -
                                  0.5 * static_cast<double>(obs->y.size()) * std::log(2.0 * std::numbers::pi);
        }
        out.filtered_mean[i] = m;
        out.filtered_cov[i] = 0.5 * (P + P.transpose());
    }

    out.smoothed_mean = out.filtered_mean, out.smoothed_cov = out.filtered_cov;
    for (std::size_t i = length - 1; i-- > 0;) {
        // G = P_i F^T P_{i+1|i}^{-1}
        const Eigen::LLT<Eigen::MatrixXd> llt(predicted_cov[i + 1]);
        const Eigen::MatrixXd G = llt.solve(chain.F() * out.filtered_cov[i]).transpose();
        out.smoothed_mean[i] += G * (out.smoothed_mean[i + 1] - predicted_mean[i + 1]);
        const Eigen::MatrixXd P = out.filtered_cov[i] + G * (out.smoothed_cov[i + 1] - predicted_cov[i + 1]) * G.transpose();
        out.smoothed_cov[i] = 0.5 * (P + P.transpose());
    }
    return out;
}

/// Splits a dense observation of a whole trajectory, y = A vec(x) + N(0, diag(variance)),
/// into per-time observations: every row of A must touch a single state.
/// A is M x (length d), variance has M entries.
inline std::vector<std::optional<KalmanObservation>> per_state_observations(const Eigen::MatrixXd& A,
                                                                            const Eigen::VectorXd& y,
                                                                            const Eigen::VectorXd& variance,
                                                                            std::size_t length, std::size_t dim) {
    const auto d = static_cast<Eigen::Index>(dim);
    detail::require(A.cols() == static_cast<Eigen::Index>(length) * d && A.rows() == y.size() &&
                        variance.size() == y.size(),
                    "sda::baselines::per_state_observations: A is ", A.rows(), " x ", A.cols(), ", y has ", y.size(),
                    " entries, variance ", variance.size(), ", for ", length, " states of dimension ", dim);
    std::vector<std::vector<Eigen::Index>> rows(length);
    for (Eigen::Index r = 0; r < A.rows(); ++r) {
        std::optional<std::size_t> state;
        for (std::size_t i = 0; i < length; ++i) {
            if (A.row(r).segment(static_cast<Eigen::Index>(i) * d, d).cwiseAbs().maxCoeff() == 0.0) continue;
            detail::require(!state, "sda::baselines::per_state_observations: row ", r, " of A touches states ",
                            *state, " and ", i);
            state = i;
        }
        if (state) rows[*state].push_back(r);
    }
    std::vector<std::optional<KalmanObservation>> out(length);
    for (std::size_t i = 0; i < length; ++i) {
        if (rows[i].empty()) continue;
        const auto m = static_cast<Eigen::Index>(rows[i].size());
        KalmanObservation obs{Eigen::MatrixXd(m, d), Eigen::MatrixXd::Zero(m, m), Eigen::VectorXd(m)};
        for (Eigen::Index k = 0; k < m; ++k) {
            obs.H.row(k) = A.row(rows[i][k]).segment(static_cast<Eigen::Index>(i) * d, d);
            obs.R(k, k) = variance(rows[i][k]);
            obs.y(k) = y(rows[i][k]);
        }
        out[i] = std::move(obs);
    }
    return out;
}

}  // namespace sda::baselines
