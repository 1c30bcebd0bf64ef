// sda/score/gaussian.hpp: the exact score model of Gaussian data N(m, S).
//
// Under x(t) = mu x + sigma z the marginal is N(mu m, mu^2 S + sigma^2 I), so
//   eps(x, t) = sigma (mu^2 S + sigma^2 I)^{-1} (x - mu m),
// whose input Jacobian sigma (mu^2 S + sigma^2 I)^{-1} is symmetric: the VJP
// applies the same operator to v. With S = Q diag(lambda) Q^T (computed once)
// each call is two GEMMs per batch. This is the oracle of the sampler,
// composition and guidance tests; no training involved.
#pragma once

#include <cmath>
#include <cstddef>
#include <utility>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include "sda/backend/cpu.hpp"
#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/schedule/concepts.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

template <NoiseSchedule Schedule, class T = double>
class GaussianScore {
public:
    using backend_type = CpuBackend<T>;
    using tensor_type = Tensor<T>;
    using schedule_type = Schedule;

    /// N(mean, covariance) over events of shape `event`; `mean` and `covariance`
    /// index the row-major flattened event. The covariance must be symmetric
    /// positive semi-definite.
    GaussianScore(Schedule schedule, Shape event, Eigen::VectorXd mean, Eigen::MatrixXd covariance)
        : schedule_(std::move(schedule)), event_(std::move(event)), mean_(std::move(mean)),
          covariance_(std::move(covariance)) {
        const auto n = static_cast<Eigen::Index>(element_count(event_));
        detail::require(!event_.empty() && n > 0, "sda::GaussianScore: the event shape ", format_shape(event_),
                        " is empty");
        detail::require(mean_.size() == n, "sda::GaussianScore: mean has ", mean_.size(),
                        " entries, the event ", format_shape(event_), " has ", n);
        detail::require(covariance_.rows() == n && covariance_.cols() == n, "sda::GaussianScore: covariance is ",
                        covariance_.rows(), " x ", covariance_.cols(), ", expected ", n, " x ", n);
        detail::require(mean_.allFinite() && covariance_.allFinite(),
                        "sda::GaussianScore: mean or covariance has a non-finite entry");
        const double scale = std::max(1.0, covariance_.cwiseAbs().maxCoeff());
        detail::require((covariance_ - covariance_.transpose()).cwiseAbs().maxCoeff() <= 1e-10 * scale,
                        "sda::GaussianScore: covariance is not symmetric");
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(covariance_);
        detail::require(eigen.info() == Eigen::Success, "sda::GaussianScore: eigendecomposition failed");
        detail::require(eigen.eigenvalues().minCoeff() >= -1e-10 * scale,
                        "sda::GaussianScore: covariance is not positive semi-definite (smallest eigenvalue ",
                        eigen.eigenvalues().minCoeff(), ")");
        basis_ = eigen.eigenvectors().cast<T>();
        lambda_ = eigen.eigenvalues().cwiseMax(0.0);
        mean_t_ = mean_.cast<T>();
    }

    backend_type backend() const { return {}; }
    const Schedule& schedule() const { return schedule_; }
    const Shape& event_shape() const { return event_; }
    const Eigen::VectorXd& mean() const { return mean_; }
    const Eigen::MatrixXd& covariance() const { return covariance_; }

    /// eps = sigma (mu^2 S + sigma^2 I)^{-1} (x - mu m)
    tensor_type eps(const tensor_type& x, double t) const { return apply(x, t, /*shift=*/true); }

    /// (d eps / d x)^T v = sigma (mu^2 S + sigma^2 I)^{-1} v
    tensor_type vjp(const tensor_type&, double t, const tensor_type& v) const { return apply(v, t, false); }

    /// Mean and covariance of x(t): N(mu m, mu^2 S + sigma^2 I).
    std::pair<Eigen::VectorXd, Eigen::MatrixXd> marginal(double t) const {
        const double mu = schedule_.mu(t), sigma = schedule_.sigma(t);
        Eigen::MatrixXd cov = mu * mu * covariance_;
        cov.diagonal().array() += sigma * sigma;
        return {mu * mean_, cov};
    }

private:
    tensor_type apply(const tensor_type& x, double t, bool shift) const {
        detail::check_batch(x, event_, "sda::GaussianScore: input");
        detail::check_time(t, "sda::GaussianScore");
        const double mu = schedule_.mu(t), sigma = schedule_.sigma(t);
        const Eigen::Matrix<T, 1, Eigen::Dynamic> gain =
            (sigma / (mu * mu * lambda_.array() + sigma * sigma)).matrix().transpose().template cast<T>();
        const Eigen::Matrix<T, 1, Eigen::Dynamic> offset = (static_cast<T>(mu) * mean_t_).transpose();
        tensor_type out = empty_tensor<T>(shape_of(x));
        const std::size_t batch = x.shape()[0];
        detail::parallel_rows(batch, x.size() * static_cast<std::size_t>(basis_.rows()), [&](std::size_t begin, std::size_t end) {
            RowMatrix<T> projected = shift ? RowMatrix<T>((rows_view(x, begin, end).rowwise() - offset) * basis_)
                                           : RowMatrix<T>(rows_view(x, begin, end) * basis_);
            projected.array().rowwise() *= gain.array();
            rows_view(out, begin, end).noalias() = projected * basis_.transpose();
        });
        return out;
    }

    Schedule schedule_;
    Shape event_;
    Eigen::VectorXd mean_;
    Eigen::MatrixXd covariance_;
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> basis_;
    Eigen::VectorXd lambda_;
    Eigen::Matrix<T, Eigen::Dynamic, 1> mean_t_;
};

}  // namespace sda
