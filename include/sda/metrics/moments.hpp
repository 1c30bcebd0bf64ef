// sda/metrics/moments.hpp: moments of an ensemble x [N, ...] over its members
// (the posterior mean and spread of N sampled trajectories), and scores per
// index of the member's first axis: per state of trajectories [N, L, S...].
//
// Everything is accumulated in double, in a fixed order. Truths have the member
// shape or [1, member shape], as in sda/metrics/ensemble.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include <Eigen/Core>

#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/metrics/ensemble.hpp"

namespace sda::detail {

/// Entries per index of the member's first axis (per state), with the member's extent on it.
template <class T>
std::pair<std::size_t, std::size_t> states_of(const Tensor<T>& x, const char* who) {
    require(x.dimension() >= 2, who, ": ensemble x of shape ", format_shape(shape_of(x)),
                         " has no state axis, expected [N, L, ...]");
    const std::size_t states = x.shape()[1];
    return {states, states ? x.size() / (x.shape()[0] * states) : 0};
}

}  // namespace sda::detail

namespace sda::metrics {


/// The mean over the members, [N, ...] -> [...]. N >= 1.
template <class T>
Tensor<T> ensemble_mean(const Tensor<T>& x) {
    sda::detail::check_ensemble(x, static_cast<const Tensor<T>*>(nullptr), "sda::metrics::ensemble_mean", 1);
    const Eigen::RowVectorXd mean = sda::detail::ensemble_columns(x).colwise().mean();
    Tensor<T> out = empty_tensor<T>(event_shape_of(shape_of(x)));
    for (Eigen::Index e = 0; e < mean.size(); ++e) out.data()[e] = static_cast<T>(mean(e));
    return out;
}

/// The unbiased standard deviation over the members, [N, ...] -> [...]. N >= 2.
template <class T>
Tensor<T> ensemble_std(const Tensor<T>& x) {
    sda::detail::check_ensemble(x, static_cast<const Tensor<T>*>(nullptr), "sda::metrics::ensemble_std", 2);
    const Eigen::MatrixXd members = sda::detail::ensemble_columns(x);
    const Eigen::MatrixXd centred = members.rowwise() - members.colwise().mean();
    const Eigen::RowVectorXd variance = centred.colwise().squaredNorm() / static_cast<double>(members.rows() - 1);
    Tensor<T> out = empty_tensor<T>(event_shape_of(shape_of(x)));
    for (Eigen::Index e = 0; e < variance.size(); ++e) out.data()[e] = static_cast<T>(std::sqrt(variance(e)));
    return out;
}

/// Per state i of trajectories x [N, L, ...]: the RMSE of the ensemble mean over state i's
/// entries, sqrt(mean_e (xbar_{i,e} - y_{i,e})^2). [L] values. N >= 1.
template <class T>
std::vector<double> rmse_per_state(const Tensor<T>& x, const Tensor<T>& truth) {
    sda::detail::check_ensemble(x, &truth, "sda::metrics::rmse_per_state", 1);
    const auto [states, entries] = sda::detail::states_of(x, "sda::metrics::rmse_per_state");
    const Eigen::RowVectorXd error =
        sda::detail::ensemble_columns(x).colwise().mean() - sda::detail::truth_entries(truth).transpose();
    std::vector<double> out(states);
    for (std::size_t i = 0; i < states; ++i)
        out[i] = std::sqrt(error.segment(Eigen::Index(i * entries), Eigen::Index(entries)).squaredNorm() / double(entries));
    return out;
}

/// Per state i: the mean over members of each member's RMSE over state i's entries (the
/// error of a single sample, which exceeds the mean's by the spread). [L] values. N >= 1.
template <class T>
std::vector<double> member_rmse_per_state(const Tensor<T>& x, const Tensor<T>& truth) {
    sda::detail::check_ensemble(x, &truth, "sda::metrics::member_rmse_per_state", 1);
    const auto [states, entries] = sda::detail::states_of(x, "sda::metrics::member_rmse_per_state");
    const Eigen::MatrixXd error =
        sda::detail::ensemble_columns(x).rowwise() - sda::detail::truth_entries(truth).transpose();
    std::vector<double> out(states, 0.0);
    for (std::size_t i = 0; i < states; ++i) {
        const auto block = error.middleCols(Eigen::Index(i * entries), Eigen::Index(entries));
        for (Eigen::Index n = 0; n < error.rows(); ++n) out[i] += std::sqrt(block.row(n).squaredNorm() / double(entries));
        out[i] /= double(error.rows());
    }
    return out;
}

/// Per state i: the spread, sqrt of the mean over state i's entries of the unbiased variance
/// over the members. [L] values. N >= 2.
template <class T>
std::vector<double> spread_per_state(const Tensor<T>& x) {
    sda::detail::check_ensemble(x, static_cast<const Tensor<T>*>(nullptr), "sda::metrics::spread_per_state", 2);
    const auto [states, entries] = sda::detail::states_of(x, "sda::metrics::spread_per_state");
    const Eigen::MatrixXd members = sda::detail::ensemble_columns(x);
    // the mean evaluated once: nested lazily in the column-wise norm, Eigen would recompute all of
    // it for every column (quadratic in the entries: minutes for 256 Kolmogorov states)
    const Eigen::RowVectorXd mean = members.colwise().mean();
    const Eigen::RowVectorXd variance =
        (members.rowwise() - mean).colwise().squaredNorm() / static_cast<double>(members.rows() - 1);
    std::vector<double> out(states);
    for (std::size_t i = 0; i < states; ++i)
        out[i] = std::sqrt(variance.segment(Eigen::Index(i * entries), Eigen::Index(entries)).sum() / double(entries));
    return out;
}

}  // namespace sda::metrics
