// sda/systems/linear_gaussian.hpp: linear-Gaussian Markov chains
// x_{i+1} = F x_i + w_i, w_i ~ N(0, Q), x_1 ~ N(m_1, P_1), with their exact
// joint laws: the reference problem whose window prior is Gaussian (so an
// analytic score exists) and whose posterior a Kalman/RTS smoother gives exactly.
//
// `damped_spring()` is the shipped instance: two masses between two walls,
// linked by springs, with viscous damping and white-noise forcing of the
// velocities, sampled every dt (exact discretisation by matrix exponentials,
// Van Loan 1978). Its initial law is the stationary one, so every window of
// 2K+1 states has the same law, `joint_law(2K+1)`.
#pragma once

#include <cstddef>
#include <utility>

#include <Eigen/Core>
#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <unsupported/Eigen/MatrixFunctions>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::systems {

class LinearGaussianChain {
public:
    /// x_{i+1} = F x_i + N(0, Q), x_1 ~ N(mean0, cov0).
    LinearGaussianChain(Eigen::MatrixXd F, Eigen::MatrixXd Q, Eigen::VectorXd mean0, Eigen::MatrixXd cov0)
        : F_(std::move(F)), Q_(std::move(Q)), mean0_(std::move(mean0)), cov0_(std::move(cov0)) {
        const auto d = F_.rows();
        sda::detail::require(d > 0 && F_.cols() == d && Q_.rows() == d && Q_.cols() == d && mean0_.size() == d &&
                            cov0_.rows() == d && cov0_.cols() == d,
                        "sda::systems::LinearGaussianChain: F, Q, mean0 and cov0 must share one dimension");
        sda::detail::require(F_.allFinite() && Q_.allFinite() && mean0_.allFinite() && cov0_.allFinite(),
                        "sda::systems::LinearGaussianChain: a non-finite entry in F, Q, mean0 or cov0");
    }

    /// The stationary chain x_{i+1} = F x_i + N(0, Q): mean 0, covariance P = F P F^T + Q.
    static LinearGaussianChain stationary(Eigen::MatrixXd F, Eigen::MatrixXd Q) {
        const auto d = F.rows();
        // vec(P) = (I - F (x) F)^{-1} vec(Q); requires the spectral radius of F below 1
        Eigen::MatrixXd kron(d * d, d * d);
        for (Eigen::Index i = 0; i < d; ++i)
            for (Eigen::Index j = 0; j < d; ++j) kron.block(i * d, j * d, d, d) = F(i, j) * F;
        const Eigen::MatrixXd system = Eigen::MatrixXd::Identity(d * d, d * d) - kron;
        Eigen::FullPivLU<Eigen::MatrixXd> lu(system);
        sda::detail::require(lu.isInvertible(), "sda::systems::LinearGaussianChain: F has no stationary law");
        const Eigen::VectorXd p = lu.solve(Eigen::Map<const Eigen::VectorXd>(Q.data(), d * d));
        Eigen::MatrixXd P = Eigen::Map<const Eigen::MatrixXd>(p.data(), d, d);
        P = 0.5 * (P + P.transpose()).eval();
        return {std::move(F), std::move(Q), Eigen::VectorXd::Zero(d), std::move(P)};
    }

    /// Two unit masses between walls: springs wall-1 and 2-wall of stiffness k,
    /// 1-2 of stiffness `coupling`, damping c on each velocity, white noise of
    /// intensity q on each velocity; sampled every dt. State (p1, p2, v1, v2).
    static LinearGaussianChain damped_spring(double dt = 0.5, double k = 1.0, double coupling = 0.5,
                                             double c = 0.3, double q = 0.5) {
        Eigen::MatrixXd A = Eigen::MatrixXd::Zero(4, 4);
        A.topRightCorner(2, 2).setIdentity();
        A.bottomLeftCorner(2, 2) << -(k + coupling), coupling, coupling, -(k + coupling);
        A.bottomRightCorner(2, 2) = -c * Eigen::MatrixXd::Identity(2, 2);
        Eigen::MatrixXd noise = Eigen::MatrixXd::Zero(4, 4);
        noise.bottomRightCorner(2, 2) = q * Eigen::MatrixXd::Identity(2, 2);
        // Van Loan: exp([[-A, G Qc G^T], [0, A^T]] dt) = [[., M12], [0, F^T]], Q = F M12
        Eigen::MatrixXd block = Eigen::MatrixXd::Zero(8, 8);
        block.topLeftCorner(4, 4) = -A * dt;
        block.topRightCorner(4, 4) = noise * dt;
        block.bottomRightCorner(4, 4) = A.transpose() * dt;
        const Eigen::MatrixXd expm = block.exp();
        Eigen::MatrixXd F = expm.bottomRightCorner(4, 4).transpose();
        Eigen::MatrixXd Q = F * expm.topRightCorner(4, 4);
        Q = 0.5 * (Q + Q.transpose()).eval();
        return stationary(std::move(F), std::move(Q));
    }

    std::size_t dim() const { return static_cast<std::size_t>(F_.rows()); }
    const Eigen::MatrixXd& F() const { return F_; }
    const Eigen::MatrixXd& Q() const { return Q_; }
    const Eigen::VectorXd& mean0() const { return mean0_; }
    const Eigen::MatrixXd& cov0() const { return cov0_; }

    /// Mean (n d) and covariance (n d x n d) of (x_1, ..., x_n), state-major:
    /// m_{i+1} = F m_i, P_{i+1,i+1} = F P_ii F^T + Q, Cov(x_j, x_i) = F^{j-i} P_ii for j > i.
    std::pair<Eigen::VectorXd, Eigen::MatrixXd> joint_law(std::size_t n) const {
        sda::detail::require(n >= 1, "sda::systems::LinearGaussianChain::joint_law: n must be >= 1");
        const auto d = F_.rows();
        const auto N = static_cast<Eigen::Index>(n) * d;
        Eigen::VectorXd mean(N);
        Eigen::MatrixXd cov(N, N);
        Eigen::VectorXd m = mean0_;
        Eigen::MatrixXd P = cov0_;
        for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(n); ++i) {
            mean.segment(i * d, d) = m;
            Eigen::MatrixXd cross = P;  // Cov(x_j, x_i), starting at j = i
            for (Eigen::Index j = i; j < static_cast<Eigen::Index>(n); ++j) {
                cov.block(j * d, i * d, d, d) = cross;
                cov.block(i * d, j * d, d, d) = cross.transpose();
                cross = (F_ * cross).eval();
            }
            m = (F_ * m).eval();
            P = (F_ * P * F_.transpose() + Q_).eval();
        }
        return {mean, cov};
    }

    /// `n` draws of x_1 ~ N(mean0, cov0), one per row.
    RowMatrix<double> sample_initial(std::size_t n, Generator& gen) const {
        const Eigen::LLT<Eigen::MatrixXd> llt(cov0_);
        sda::detail::require(llt.info() == Eigen::Success,
                             "sda::systems::LinearGaussianChain::sample_initial: cov0 must be positive definite");
        RowMatrix<double> z(static_cast<Eigen::Index>(n), F_.rows());
        fill_normal(z.data(), n, dim(), gen);
        RowMatrix<double> x = z * llt.matrixL().transpose();
        x.rowwise() += mean0_.transpose();
        return x;
    }

    /// The mean transition x -> F x with its tangent-linear (F) and adjoint (F^T) models, under the
    /// names variational methods use (`baselines::TangentLinearModel`); Q is not part of it.
    Eigen::VectorXd step(const Eigen::VectorXd& x) const { return F_ * x; }
    Eigen::VectorXd step_tangent(const Eigen::VectorXd&, const Eigen::VectorXd& dx) const { return F_ * dx; }
    Eigen::VectorXd step_adjoint(const Eigen::VectorXd&, const Eigen::VectorXd& w) const { return F_.transpose() * w; }

    /// One transition of every row of `x` [N, d], in place: x <- F x + N(0, Q). One draw of `gen`.
    void propagate(RowMatrix<double>& x, Generator& gen) const {
        sda::detail::require(x.cols() == F_.rows(), "sda::systems::LinearGaussianChain::propagate: states have ",
                             x.cols(), " coordinates, the chain ", F_.rows());
        const Eigen::LLT<Eigen::MatrixXd> llt(Q_);
        sda::detail::require(llt.info() == Eigen::Success,
                             "sda::systems::LinearGaussianChain::propagate: Q must be positive definite");
        RowMatrix<double> z(x.rows(), x.cols());
        fill_normal(z.data(), static_cast<std::size_t>(x.rows()), dim(), gen);
        x = (x * F_.transpose() + z * llt.matrixL().transpose()).eval();
    }

    /// `batch` trajectories of `length` states, shape [batch, length, d].
    template <class T = double>
    Tensor<T> simulate(std::size_t batch, std::size_t length, Generator& gen) const {
        sda::detail::require(batch >= 1 && length >= 1, "sda::systems::LinearGaussianChain::simulate: batch and "
                        "length must be >= 1, got ", batch, " and ", length);
        const auto d = F_.rows();
        const Eigen::LLT<Eigen::MatrixXd> llt0(cov0_), lltQ(Q_);
        sda::detail::require(llt0.info() == Eigen::Success && lltQ.info() == Eigen::Success,
                        "sda::systems::LinearGaussianChain::simulate: cov0 and Q must be positive definite");
        const Eigen::MatrixXd chol0 = llt0.matrixL(), cholQ = lltQ.matrixL();
        Tensor<double> noise = empty_tensor<double>({batch, length, dim()});
        fill_normal(noise.data(), batch, length * dim(), gen);
        Tensor<T> out = empty_tensor<T>({batch, length, dim()});
        for (std::size_t b = 0; b < batch; ++b) {
            Eigen::VectorXd x(d);
            for (std::size_t i = 0; i < length; ++i) {
                const Eigen::Map<const Eigen::VectorXd> z(noise.data() + (b * length + i) * dim(), d);
                x = i == 0 ? Eigen::VectorXd(mean0_ + chol0 * z) : Eigen::VectorXd(F_ * x + cholQ * z);
                for (Eigen::Index k = 0; k < d; ++k) out(b, i, k) = static_cast<T>(x(k));
            }
        }
        return out;
    }

private:
    Eigen::MatrixXd F_, Q_;
    Eigen::VectorXd mean0_;
    Eigen::MatrixXd cov0_;
};

}  // namespace sda::systems
