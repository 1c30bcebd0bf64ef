// tests/support/stats.hpp: Monte-Carlo acceptance tests for Gaussian samples.
//
// Stochastic results are judged against exact laws with thresholds that come
// from the sampling distribution of the statistic, never from printed values:
// - the mean: N (m_hat - m)^T S^{-1} (m_hat - m) ~ chi2(d) for N iid draws of N(m, S);
// - the covariance: the likelihood-ratio statistic
//   N (tr(S^{-1} C) - log det(S^{-1} C) - d) ~ chi2(d (d + 1) / 2) asymptotically,
//   C the covariance about the known mean (Anderson, "An introduction to
//   multivariate statistical analysis", 3rd ed., section 10.8).
// A test passes when the statistic lies below its (1 - alpha) quantile.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>

#include "sda/core/eigen.hpp"
#include "sda/core/tensor.hpp"

namespace sda::test {

/// Samples [N, event...] as an N x d matrix (one sample per row).
inline Eigen::MatrixXd as_matrix(const Tensor<double>& samples) { return rows_view(samples); }

inline Eigen::VectorXd sample_mean(const Eigen::MatrixXd& x) { return x.colwise().mean().transpose(); }

/// Unbiased sample covariance.
inline Eigen::MatrixXd sample_cov(const Eigen::MatrixXd& x) {
    const Eigen::MatrixXd centred = x.rowwise() - x.colwise().mean();
    return centred.transpose() * centred / static_cast<double>(x.rows() - 1);
}

/// The (1 - alpha) quantile of chi2(df).
inline double chi2_quantile(double df, double alpha) {
    return boost::math::quantile(boost::math::complement(boost::math::chi_squared(df), alpha));
}

struct Statistic {
    double value;      ///< the statistic
    double threshold;  ///< its (1 - alpha) quantile under the exact law
    double df;
    bool pass() const { return value <= threshold; }
};

/// Hotelling-type test of the sample mean against N(mean, cov).
inline Statistic mean_test(const Eigen::MatrixXd& x, const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov,
                           double alpha = 1e-3) {
    const Eigen::VectorXd diff = sample_mean(x) - mean;
    const double value = static_cast<double>(x.rows()) * diff.dot(cov.llt().solve(diff));
    const double df = static_cast<double>(mean.size());
    return {value, chi2_quantile(df, alpha), df};
}

/// Likelihood-ratio test of the covariance about the known mean against cov.
inline Statistic covariance_test(const Eigen::MatrixXd& x, const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov,
                                 double alpha = 1e-3) {
    const Eigen::MatrixXd centred = x.rowwise() - mean.transpose();
    const Eigen::MatrixXd C = centred.transpose() * centred / static_cast<double>(x.rows());
    const Eigen::LLT<Eigen::MatrixXd> llt(cov);
    const Eigen::MatrixXd ratio = llt.solve(C);
    const double d = static_cast<double>(mean.size());
    const Eigen::LLT<Eigen::MatrixXd> llt_c(C);
    const double log_det = 2.0 * (llt_c.matrixLLT().diagonal().array().log().sum() -
                                  llt.matrixLLT().diagonal().array().log().sum());
    const double value = static_cast<double>(x.rows()) * (ratio.trace() - log_det - d);
    const double df = d * (d + 1.0) / 2.0;
    return {value, chi2_quantile(df, alpha), df};
}

/// Entry-wise test of the covariance about the known mean, valid for non-Gaussian
/// samples: each entry's standard error comes from the samples' fourth moments,
/// Var((x_j - m_j)(x_k - m_k)) / N, and the threshold is Bonferroni-corrected
/// over the d (d + 1) / 2 entries. `value` is the largest |z|.
inline Statistic covariance_entries_test(const Eigen::MatrixXd& x, const Eigen::VectorXd& mean,
                                         const Eigen::MatrixXd& cov, double alpha = 1e-3) {
    const Eigen::MatrixXd centred = x.rowwise() - mean.transpose();
    const double n = static_cast<double>(x.rows());
    const Eigen::Index d = mean.size();
    double worst = 0.0;
    for (Eigen::Index j = 0; j < d; ++j)
        for (Eigen::Index k = 0; k <= j; ++k) {
            const Eigen::ArrayXd products = centred.col(j).array() * centred.col(k).array();
            const double estimate = products.mean();
            const double se = std::sqrt((products - estimate).square().sum() / (n - 1.0) / n);
            worst = std::max(worst, std::abs(estimate - cov(j, k)) / se);
        }
    const double entries = static_cast<double>(d * (d + 1) / 2);
    const double threshold =
        boost::math::quantile(boost::math::complement(boost::math::normal(), alpha / (2.0 * entries)));
    return {worst, threshold, entries};
}

}  // namespace sda::test
