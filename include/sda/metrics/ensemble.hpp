// sda/metrics/ensemble.hpp: scores of an ensemble x [N, ...] (N members, e.g.
// posterior trajectories [N, L, D]) against one truth of the member shape:
// RMSE of the ensemble mean, spread, spread-skill ratio, and the continuous
// ranked probability score (Gneiting & Raftery, "Strictly proper scoring rules,
// prediction, and estimation", JASA 102, 2007, eq. 21), each averaged over entries;
// and the rank histogram of the truth among the members.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"

namespace sda::detail {

/// Throws unless `x` is a finite ensemble [N, ...] of at least `min_members`
/// members and, when given, `truth` is finite of the member shape or [1, member shape].
template <class T>
void check_ensemble(const Tensor<T>& x, const Tensor<T>* truth, std::string_view what, std::size_t min_members) {
    require(x.dimension() >= 1, what, ": ensemble x has rank 0, expected members [N, ...]");
    require(x.shape()[0] >= min_members, what, ": ensemble x has shape ", format_shape(shape_of(x)),
            ", expected at least ", min_members, " member", min_members == 1 ? "" : "s");
    require(x.size() > 0, what, ": ensemble x has empty members (shape ", format_shape(shape_of(x)), ")");
    check_finite(x, concat(what, ": ensemble x"));
    if (!truth) return;
    const Shape member = event_shape_of(shape_of(x)), shape = shape_of(*truth);
    require(shape == member || shape == batch_shape(1, member), what, ": truth has shape ", format_shape(shape),
            ", expected the member shape ", format_shape(member), " or ", format_shape(batch_shape(1, member)));
    check_finite(*truth, concat(what, ": truth"));
}

/// The ensemble as an N x E column-major matrix in double (one column per entry).
template <class T>
Eigen::MatrixXd ensemble_columns(const Tensor<T>& x) {
    return rows_view(x).template cast<double>();
}

/// The truth as E values in double.
template <class T>
Eigen::VectorXd truth_entries(const Tensor<T>& truth) {
    return Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(truth.data(), static_cast<Eigen::Index>(truth.size()))
        .template cast<double>();
}

}  // namespace sda::detail

namespace sda::metrics {

/// Root mean square error of the ensemble mean:
///   sqrt( (1/E) sum_e (xbar_e - y_e)^2 ),  xbar_e = (1/N) sum_i x_{i,e},
/// over the E entries of a member. N >= 1.
template <class T>
double rmse(const Tensor<T>& x, const Tensor<T>& truth) {
    detail::check_ensemble(x, &truth, "sda::metrics::rmse", 1);
    const Eigen::VectorXd mean = detail::ensemble_columns(x).colwise().mean().transpose();
    return std::sqrt((mean - detail::truth_entries(truth)).squaredNorm() / static_cast<double>(mean.size()));
}

/// Ensemble spread: the square root of the mean over entries of the unbiased
/// ensemble variance, sqrt( (1/E) sum_e 1/(N-1) sum_i (x_{i,e} - xbar_e)^2 ). N >= 2.
template <class T>
double spread(const Tensor<T>& x) {
    detail::check_ensemble(x, static_cast<const Tensor<T>*>(nullptr), "sda::metrics::spread", 2);
    const Eigen::MatrixXd members = detail::ensemble_columns(x);
    const Eigen::MatrixXd centred = members.rowwise() - members.colwise().mean();
    const double variance_sum = centred.colwise().squaredNorm().sum() / static_cast<double>(members.rows() - 1);
    return std::sqrt(variance_sum / static_cast<double>(members.cols()));
}

/// spread(x) / rmse(x, truth): near 1 for a calibrated ensemble (up to the
/// factor sqrt((N + 1) / N) of a finite ensemble). Throws when the RMSE is 0.
template <class T>
double spread_skill(const Tensor<T>& x, const Tensor<T>& truth) {
    const double skill = rmse(x, truth);
    const double ratio = spread(x);
    detail::require(skill > 0.0,
                    "sda::metrics::spread_skill: the ensemble mean equals the truth (rmse 0), the ratio is undefined");
    return ratio / skill;
}

/// Continuous ranked probability score of the ensemble's empirical law, averaged
/// over the E entries (lower is better; 0 only for a point mass at the truth):
///   CRPS_e = (1/N) sum_i |x_{i,e} - y_e| - 1/(2 N^2) sum_{i,j} |x_{i,e} - x_{j,e}|,
/// the standard estimator E|X - y| - 1/2 E|X - X'| with the ensemble as X (divides
/// by N^2; the "fair" estimator of Ferro 2014 divides by N(N-1) instead and is
/// larger by (1/(2N(N-1))) sum_{i,j}|.|). The double sum is evaluated from the
/// sorted members, sum_{i,j} |x_i - x_j| = 2 sum_k (2k - N + 1) x_(k) with
/// 0-based ranks k: O(N log N) per entry. N >= 1.
template <class T>
double crps(const Tensor<T>& x, const Tensor<T>& truth) {
    detail::check_ensemble(x, &truth, "sda::metrics::crps", 1);
    const Eigen::MatrixXd members = detail::ensemble_columns(x);
    const Eigen::VectorXd y = detail::truth_entries(truth);
    const Eigen::Index N = members.rows();
    const double n = static_cast<double>(N);
    std::vector<double> sorted(static_cast<std::size_t>(N));
    double total = 0.0;
    for (Eigen::Index e = 0; e < members.cols(); ++e) {
        const auto column = members.col(e);
        const double error = (column.array() - y(e)).abs().sum() / n;
        std::copy(column.data(), column.data() + N, sorted.begin());
        std::sort(sorted.begin(), sorted.end());
        double ranked = 0.0;  // sum_k (2k - N + 1) x_(k) = (1/2) sum_{i,j} |x_i - x_j|
        for (Eigen::Index k = 0; k < N; ++k)
            ranked += static_cast<double>(2 * k - N + 1) * sorted[static_cast<std::size_t>(k)];
        total += error - ranked / (n * n);
    }
    return total / static_cast<double>(members.cols());
}

/// Rank histogram (Talagrand diagram) of the truth among the N members, over the E entries:
/// bin r of the N + 1 bins counts the entries whose truth has r members below it. A calibrated
/// ensemble (truth exchangeable with the members) gives a flat histogram in expectation, an
/// under-dispersed one a U, a biased one a slope (Hamill, "Interpretation of rank histograms
/// for verifying ensemble forecasts", MWR 129, 2001). A truth equal to t members could take
/// any of t + 1 ranks: it adds 1 / (t + 1) to each, so ties keep the flat expectation and the
/// result is deterministic. Returns N + 1 counts summing to E; add histograms over cases.
template <class T>
std::vector<double> rank_histogram(const Tensor<T>& x, const Tensor<T>& truth) {
    detail::check_ensemble(x, &truth, "sda::metrics::rank_histogram", 1);
    const Eigen::MatrixXd members = detail::ensemble_columns(x);
    const Eigen::VectorXd y = detail::truth_entries(truth);
    std::vector<double> counts(static_cast<std::size_t>(members.rows()) + 1, 0.0);
    for (Eigen::Index e = 0; e < members.cols(); ++e) {
        std::size_t below = 0, tied = 0;
        for (Eigen::Index i = 0; i < members.rows(); ++i) {
            below += members(i, e) < y(e);
            tied += members(i, e) == y(e);
        }
        const double share = 1.0 / static_cast<double>(tied + 1);
        for (std::size_t r = below; r <= below + tied; ++r) counts[r] += share;
    }
    return counts;
}

}  // namespace sda::metrics
