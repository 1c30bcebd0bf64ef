// sda/metrics/mmd.hpp: the squared maximum mean discrepancy between two sets of
// samples [N, ...] (e.g. trajectories [N, L, D]) with a Gaussian kernel on the
// flattened samples: the unbiased U-statistic MMD^2_u of Gretton et al., "A
// kernel two-sample test", JMLR 13, 2012 (eq. 3), with the median heuristic
// for the bandwidth by default.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <vector>

#include <Eigen/Core>

#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/metrics/pairwise.hpp"

namespace sda::metrics {

/// The unbiased estimate of the squared MMD between the laws of `a` [m, ...] and
/// `b` [n, ...] (same sample shape, m, n >= 2, sizes may differ):
///   MMD^2_u = 1/(m(m-1)) sum_{i != j} k(a_i, a_j) + 1/(n(n-1)) sum_{i != j} k(b_i, b_j)
///             - 2/(mn) sum_{i, j} k(a_i, b_j),
///   k(x, y) = exp(-||x - y||^2 / (2 h^2)),
/// ||.|| the Euclidean norm of the flattened samples. Its expectation is exactly
/// the population MMD^2, so it can be negative when the laws are close.
/// `bandwidth` is h; 0 selects the median heuristic, h = the median of the
/// distances ||z_i - z_j||, i < j, over the pooled sample z = (a, b) (the mean
/// of the two middle values when their number is even).
template <class T>
double mmd(const Tensor<T>& a, const Tensor<T>& b, double bandwidth = 0.0) {
    constexpr const char* what = "sda::metrics::mmd";
    detail::check_sample_sets(a, b, what, 2, false);
    detail::require(std::isfinite(bandwidth) && bandwidth >= 0.0, what,
                    ": bandwidth must be finite and non-negative (0 for the median heuristic), got ", bandwidth);
    const Eigen::MatrixXd d_aa = detail::squared_distances(a, a);
    const Eigen::MatrixXd d_bb = detail::squared_distances(b, b);
    const Eigen::MatrixXd d_ab = detail::squared_distances(a, b);
    const double m = static_cast<double>(d_aa.rows()), n = static_cast<double>(d_bb.rows());

    double h = bandwidth;
    if (h == 0.0) {
        std::vector<double> pooled;
        pooled.reserve(static_cast<std::size_t>(d_aa.size() / 2 + d_bb.size() / 2 + d_ab.size()));
        for (const Eigen::MatrixXd* d : {&d_aa, &d_bb})
            for (Eigen::Index j = 1; j < d->cols(); ++j)
                for (Eigen::Index i = 0; i < j; ++i) pooled.push_back((*d)(i, j));
        pooled.insert(pooled.end(), d_ab.data(), d_ab.data() + d_ab.size());
        // The median of the squared distances, then the square root: sqrt is monotone.
        const auto middle = pooled.begin() + static_cast<std::ptrdiff_t>(pooled.size() / 2);
        std::nth_element(pooled.begin(), middle, pooled.end());
        h = std::sqrt(*middle);
        if (pooled.size() % 2 == 0) h = 0.5 * (h + std::sqrt(*std::max_element(pooled.begin(), middle)));
        detail::require(h > 0.0, what,
                        ": the median heuristic gives bandwidth 0 (at least half of the pooled pairs coincide);"
                        " pass a positive bandwidth");
    }
    const double gamma = 1.0 / (2.0 * h * h);
    const auto kernel_sum = [gamma](const Eigen::MatrixXd& d2, bool skip_diagonal) {
        double sum = 0.0;
        for (Eigen::Index j = 0; j < d2.cols(); ++j)
            for (Eigen::Index i = 0; i < d2.rows(); ++i)
                if (!skip_diagonal || i != j) sum += std::exp(-gamma * d2(i, j));
        return sum;
    };
    const double k_aa = kernel_sum(d_aa, true), k_bb = kernel_sum(d_bb, true), k_ab = kernel_sum(d_ab, false);
    return k_aa / (m * (m - 1.0)) + k_bb / (n * (n - 1.0)) - 2.0 * k_ab / (m * n);
}

}  // namespace sda::metrics
