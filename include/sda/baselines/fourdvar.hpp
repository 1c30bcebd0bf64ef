// sda/baselines/fourdvar.hpp: strong-constraint 4D-Var, the variational smoother of
// operational weather prediction, over a window of states and cycled over a trajectory.
//
// Le Dimet & Talagrand (1986); Courtier, Thepaut & Hollingsworth, "A strategy for operational
// implementation of 4D-Var, using an incremental approach" (1994). Over a window of states
// x_0 .. x_{W-1} with x_{i+1} = M(x_i) exactly (the model is the constraint), the analysis
// minimises over the window's first state
//   J(x_0) = 1/2 |x_0 - x_b|^2_{B^-1} + 1/2 sum_i |y_i - H_i x_i|^2_{R_i^-1}.
// Incremental Gauss-Newton: each outer iteration linearises the model around the current
// trajectory and solves the quadratic inner problem in the control variable v, x_0 = x_b + U v
// with B = U U^T, whose Hessian I + U^T G^T R^-1 G U (G: the tangent-linear model from x_0 to
// every observed state) is symmetric positive definite and at least the identity. The inner
// loop is Eigen's ConjugateGradient on that Hessian as a matrix-free operator: each product is
// one tangent-linear sweep forward and one adjoint sweep back. For a linear model one outer
// iteration is the exact minimiser (the RTS smoother's mean with Q = 0, which the tests check);
// for a nonlinear one a step that raises J is halved until it does not.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/SparseCore>

#include "sda/baselines/kalman.hpp"
#include "sda/baselines/particle_filter.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"

namespace sda::baselines {

/// A deterministic transition with its tangent-linear and adjoint models, what variational
/// methods need (Lorenz96, LinearGaussianChain). Requirements, for states of `dim()` entries:
///   m.step(x)             the next state M(x);
///   m.step_tangent(x, dx) M'(x) dx, the derivative of `step` at x applied to dx;
///   m.step_adjoint(x, w)  M'(x)^T w, its adjoint: <M'(x) dx, w> = <dx, M'(x)^T w>.
template <class M>
concept TangentLinearModel = requires(const M& m, const Eigen::VectorXd& x) {
    { m.dim() } -> std::convertible_to<std::size_t>;
    { m.step(x) } -> std::convertible_to<Eigen::VectorXd>;
    { m.step_tangent(x, x) } -> std::convertible_to<Eigen::VectorXd>;
    { m.step_adjoint(x, x) } -> std::convertible_to<Eigen::VectorXd>;
};

struct FourDVarOptions {
    std::size_t outer = 20;          ///< Gauss-Newton (outer) iterations at most
    std::size_t inner = 200;         ///< conjugate-gradient iterations per outer iteration at most
    double inner_tolerance = 1e-10;  ///< CG stops when |residual| <= this |right-hand side|
    double outer_tolerance = 1e-8;   ///< stop when an increment's norm in v is below this (1 + |v|)
};

struct FourDVarResult {
    Eigen::VectorXd initial;                      ///< the analysis of the window's first state
    RowMatrix<double> trajectory;                 ///< [W, D] the analysis trajectory M^i(initial)
    std::vector<double> cost;                     ///< J before the first and after every outer iteration
    std::size_t outer_iterations = 0, inner_iterations = 0;
};

namespace detail {
class GaussNewtonHessian;
}  // namespace detail
}  // namespace sda::baselines

// what Eigen's matrix-free solvers need of an operator (Eigen's "matrix-free solvers" recipe)
template <>
struct Eigen::internal::traits<sda::baselines::detail::GaussNewtonHessian> : public traits<SparseMatrix<double>> {};

namespace sda::baselines {
namespace detail {

/// The Gauss-Newton Hessian I + U^T G^T R^-1 G U as an operator Eigen's iterative solvers take.
class GaussNewtonHessian : public Eigen::EigenBase<GaussNewtonHessian> {
public:
    using Scalar = double;
    using RealScalar = double;
    using StorageIndex = int;
    enum { ColsAtCompileTime = Eigen::Dynamic, MaxColsAtCompileTime = Eigen::Dynamic, IsRowMajor = false };

    GaussNewtonHessian(Eigen::Index size, std::function<Eigen::VectorXd(const Eigen::VectorXd&)> apply)
        : size_(size), apply_(std::move(apply)) {}
    Eigen::Index rows() const { return size_; }
    Eigen::Index cols() const { return size_; }
    Eigen::VectorXd apply(const Eigen::VectorXd& v) const { return apply_(v); }

    template <class Rhs>
    Eigen::Product<GaussNewtonHessian, Rhs, Eigen::AliasFreeProduct> operator*(const Eigen::MatrixBase<Rhs>& x) const {
        return Eigen::Product<GaussNewtonHessian, Rhs, Eigen::AliasFreeProduct>(*this, x.derived());
    }

private:
    Eigen::Index size_;
    std::function<Eigen::VectorXd(const Eigen::VectorXd&)> apply_;
};

}  // namespace detail
}  // namespace sda::baselines

namespace Eigen::internal {
template <class Rhs>
struct generic_product_impl<sda::baselines::detail::GaussNewtonHessian, Rhs, SparseShape, DenseShape, GemvProduct>
    : generic_product_impl_base<sda::baselines::detail::GaussNewtonHessian, Rhs,
                                generic_product_impl<sda::baselines::detail::GaussNewtonHessian, Rhs>> {
    template <class Dest>
    static void scaleAndAddTo(Dest& dst, const sda::baselines::detail::GaussNewtonHessian& lhs, const Rhs& rhs,
                              const double& alpha) {
        dst.noalias() += alpha * lhs.apply(rhs);
    }
};
}  // namespace Eigen::internal

namespace sda::baselines {

/// One window's strong-constraint 4D-Var problem: its cost, the cost's gradient by the
/// adjoint, and the incremental Gauss-Newton minimiser. State i of the window is observed by
/// observations[i] (empty: not observed); the window has observations.size() states. It keeps
/// a reference to `model`, which must outlive it.
template <TangentLinearModel M>
class StrongConstraint4DVar {
public:
    StrongConstraint4DVar(const M& model, Eigen::VectorXd background, const Eigen::MatrixXd& B,
                          std::vector<std::optional<KalmanObservation>> observations)
        : model_(model), background_(std::move(background)), observations_(std::move(observations)) {
        constexpr const char* who = "sda::baselines::StrongConstraint4DVar";
        const auto D = static_cast<Eigen::Index>(model_.dim());
        sda::detail::require(!observations_.empty(), who, ": the window has no states");
        sda::detail::require(background_.size() == D && background_.allFinite(), who, ": the background has ",
                             background_.size(), " entries for states of dimension ", D, " or holds NaN or Inf");
        sda::detail::require(B.rows() == D && B.cols() == D && B.allFinite(), who, ": B is ", B.rows(), " x ", B.cols(),
                             " for states of dimension ", D, " or holds NaN or Inf");
        Eigen::LLT<Eigen::MatrixXd> llt(B);
        sda::detail::require(llt.info() == Eigen::Success, who, ": B is not positive definite");
        U_ = llt.matrixL();
        whiten_.resize(observations_.size());
        for (std::size_t i = 0; i < observations_.size(); ++i)
            if (observations_[i]) whiten_[i] = detail::checked_noise(*observations_[i], D, i, who).matrixL();
    }

    std::size_t window() const { return observations_.size(); }

    /// The window's trajectory from x_0: [W, D].
    RowMatrix<double> trajectory(const Eigen::VectorXd& x0) const {
        RowMatrix<double> x(static_cast<Eigen::Index>(window()), x0.size());
        Eigen::VectorXd xi = x0;
        for (std::size_t i = 0; i < window(); ++i) {
            if (i > 0) xi = model_.step(xi);
            sda::detail::require(xi.allFinite(), "sda::baselines::StrongConstraint4DVar: state ", i,
                                 " of the trajectory is not finite");
            x.row(static_cast<Eigen::Index>(i)) = xi.transpose();
        }
        return x;
    }

    /// J(x_0).
    double cost(const Eigen::VectorXd& x0) const { return cost_of(x0, trajectory(x0)); }

    /// grad J(x_0) = B^-1 (x_0 - x_b) - sum_i M_{0->i}'^T H_i^T R_i^-1 (y_i - H_i x_i), by one adjoint sweep.
    Eigen::VectorXd gradient(const Eigen::VectorXd& x0) const {
        const RowMatrix<double> x = trajectory(x0);
        const Eigen::VectorXd b = U_.triangularView<Eigen::Lower>().solve(x0 - background_);
        return U_.transpose().triangularView<Eigen::Upper>().solve(b) - adjoint_sweep(x, weighted_innovations(x));
    }

    /// Minimises J by incremental Gauss-Newton from the background.
    FourDVarResult minimize(const FourDVarOptions& options = {}) const {
        constexpr const char* who = "sda::baselines::StrongConstraint4DVar::minimize";
        sda::detail::require(options.outer >= 1 && options.inner >= 1, who, ": needs at least one outer and one inner iteration");
        sda::detail::require(options.inner_tolerance > 0 && options.outer_tolerance >= 0, who,
                             ": the inner tolerance must be positive and the outer one non-negative");
        const Eigen::Index D = background_.size();
        FourDVarResult out;
        Eigen::VectorXd v = Eigen::VectorXd::Zero(D);
        RowMatrix<double> x = trajectory(background_);
        double J = cost_of(background_, x);
        out.cost.push_back(J);
        for (std::size_t k = 0; k < options.outer; ++k) {
            // the inner problem: (I + U^T G^T R^-1 G U) dv = -v + U^T G^T R^-1 d, d_i = y_i - H_i x_i
            const Eigen::VectorXd rhs = -v + U_.transpose() * adjoint_sweep(x, weighted_innovations(x));
            const detail::GaussNewtonHessian hessian(D, [&](const Eigen::VectorXd& dv) {
                const std::vector<Eigen::VectorXd> dx = tangent_sweep(x, U_ * dv);
                std::vector<Eigen::VectorXd> forcing(window());
                for (std::size_t i = 0; i < window(); ++i)
                    if (observations_[i]) forcing[i] = weighted(i, observations_[i]->H * dx[i]);
                return Eigen::VectorXd(dv + U_.transpose() * adjoint_sweep(x, forcing));
            });
            Eigen::ConjugateGradient<detail::GaussNewtonHessian, Eigen::Lower | Eigen::Upper, Eigen::IdentityPreconditioner> cg;
            cg.setMaxIterations(static_cast<Eigen::Index>(options.inner));
            cg.setTolerance(options.inner_tolerance);
            cg.compute(hessian);
            Eigen::VectorXd dv = cg.solve(rhs);
            out.inner_iterations += static_cast<std::size_t>(cg.iterations());
            ++out.outer_iterations;
            sda::detail::require(dv.allFinite(), who, ": the inner solve gave a non-finite increment");
            // a step that raises J (the linearisation failing far from x) is halved, 30 times at most
            double J_new = J;
            RowMatrix<double> x_new;
            for (int halvings = 0; halvings <= 30; ++halvings, dv *= 0.5) {
                x_new = trajectory_or_empty(background_ + U_ * (v + dv));
                if (x_new.size() > 0 && (J_new = cost_of(x_new.row(0).transpose(), x_new)) <= J) break;
            }
            if (x_new.size() == 0 || J_new > J) break;  // no step lowers J: at the minimum to rounding
            v += dv, x = std::move(x_new), J = J_new;
            out.cost.push_back(J);
            if (dv.norm() <= options.outer_tolerance * (1.0 + v.norm())) break;
        }
        out.initial = x.row(0).transpose();
        out.trajectory = std::move(x);
        return out;
    }

private:
    Eigen::VectorXd state(const RowMatrix<double>& x, std::size_t i) const {
        return x.row(static_cast<Eigen::Index>(i)).transpose();
    }

    /// H_i^T R_i^-1 r for observation i.
    Eigen::VectorXd weighted(std::size_t i, const Eigen::VectorXd& r) const {
        const Eigen::MatrixXd& L = whiten_[i];
        const Eigen::VectorXd z = L.triangularView<Eigen::Lower>().solve(r);
        return observations_[i]->H.transpose() * L.transpose().triangularView<Eigen::Upper>().solve(z);
    }

    /// H_i^T R_i^-1 (y_i - H_i x_i) at every observed state of the trajectory x (empty elsewhere).
    std::vector<Eigen::VectorXd> weighted_innovations(const RowMatrix<double>& x) const {
        std::vector<Eigen::VectorXd> out(window());
        for (std::size_t i = 0; i < window(); ++i)
            if (observations_[i]) out[i] = weighted(i, observations_[i]->y - observations_[i]->H * state(x, i));
        return out;
    }

    double cost_of(const Eigen::VectorXd& x0, const RowMatrix<double>& x) const {
        double J = 0.5 * U_.triangularView<Eigen::Lower>().solve(x0 - background_).squaredNorm();
        for (std::size_t i = 0; i < window(); ++i)
            if (observations_[i])
                J += 0.5 * whiten_[i].triangularView<Eigen::Lower>()
                               .solve(observations_[i]->y - observations_[i]->H * state(x, i))
                               .squaredNorm();
        return J;
    }

    /// The trajectory, or an empty matrix where it stops being finite (a halved step is tried).
    RowMatrix<double> trajectory_or_empty(const Eigen::VectorXd& x0) const {
        try {
            return trajectory(x0);
        } catch (const sda::error&) {
            return {};
        }
    }

    /// dx_i = M_{0->i}' dx_0 along the trajectory x.
    std::vector<Eigen::VectorXd> tangent_sweep(const RowMatrix<double>& x, const Eigen::VectorXd& dx0) const {
        std::vector<Eigen::VectorXd> dx(window());
        dx[0] = dx0;
        for (std::size_t i = 1; i < window(); ++i) dx[i] = model_.step_tangent(state(x, i - 1), dx[i - 1]);
        return dx;
    }

    /// sum_i M_{0->i}'^T f_i along the trajectory x (f_i empty: zero), by one backward sweep.
    Eigen::VectorXd adjoint_sweep(const RowMatrix<double>& x, const std::vector<Eigen::VectorXd>& f) const {
        Eigen::VectorXd lambda = Eigen::VectorXd::Zero(x.cols());
        for (std::size_t i = window(); i-- > 0;) {
            if (f[i].size() > 0) lambda += f[i];
            if (i > 0) lambda = model_.step_adjoint(state(x, i - 1), lambda);
        }
        return lambda;
    }

    const M& model_;
    Eigen::VectorXd background_;
    std::vector<std::optional<KalmanObservation>> observations_;
    Eigen::MatrixXd U_;                    // B = U U^T, lower triangular
    std::vector<Eigen::MatrixXd> whiten_;  // R_i = L_i L_i^T, lower triangular
};

/// Cycled 4D-Var over a whole trajectory: consecutive windows of `window` states
/// [0, W), [W, 2W), ... (the last may be shorter), each analysed from the background x_b of
/// its first state, the forecast of the previous window's last analysed state, with the static
/// covariance B; the first window's background is `background` with covariance `first_B` (for
/// example the climatological law when nothing precedes the data). Returns the analysis [L, D].
template <TangentLinearModel M>
RowMatrix<double> cycled_four_d_var(const M& model, const Eigen::VectorXd& background, const Eigen::MatrixXd& first_B,
                                    const Eigen::MatrixXd& B, const std::vector<std::optional<KalmanObservation>>& observations,
                                    std::size_t window, const FourDVarOptions& options = {}) {
    const std::size_t length = observations.size();
    sda::detail::require(window >= 1 && window <= length, "sda::baselines::cycled_four_d_var: the window of ", window,
                         " states must be between 1 and the ", length, " states of the data");
    RowMatrix<double> out(static_cast<Eigen::Index>(length), static_cast<Eigen::Index>(model.dim()));
    Eigen::VectorXd xb = background;
    for (std::size_t start = 0; start < length; start += window) {
        const std::size_t end = std::min(length, start + window);
        const StrongConstraint4DVar<M> problem(
            model, xb, start == 0 ? first_B : B,
            std::vector<std::optional<KalmanObservation>>(observations.begin() + static_cast<std::ptrdiff_t>(start),
                                                          observations.begin() + static_cast<std::ptrdiff_t>(end)));
        const FourDVarResult result = problem.minimize(options);
        out.middleRows(static_cast<Eigen::Index>(start), static_cast<Eigen::Index>(end - start)) = result.trajectory;
        xb = model.step(result.trajectory.bottomRows(1).transpose());
    }
    return out;
}

/// Cycled 4D-Var with the same B for every window, the first included.
template <TangentLinearModel M>
RowMatrix<double> cycled_four_d_var(const M& model, const Eigen::VectorXd& background, const Eigen::MatrixXd& B,
                                    const std::vector<std::optional<KalmanObservation>>& observations, std::size_t window,
                                    const FourDVarOptions& options = {}) {
    return cycled_four_d_var(model, background, B, B, observations, window, options);
}

}  // namespace sda::baselines
