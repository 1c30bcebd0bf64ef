// sda/baselines/etkf.hpp: the ensemble transform Kalman filter (ETKF), its localized form
// (LETKF) and their smoothers over a lag (ETKS/LETKS): the deterministic square-root
// filters that dominate the data-assimilation literature, for any Markov chain that can be
// simulated.
//
// Bishop, Etherton & Majumdar (2001); Hunt, Kostelich & Szunyogh, "Efficient data
// assimilation for spatiotemporal chaos: a local ensemble transform Kalman filter" (2007);
// the conventions of DAPPER (Raanes et al.), whose published Lorenz-96 scores the tests reproduce.
// With the ensemble E [N, D] (one member per row), its mean m and anomalies A = E - m, the
// predicted observations' anomalies Y = (E - m) H^T whitened by R (Y R^{-1/2}) and the
// whitened innovation d = R^{-1/2} (y - H m), each analysis is
//   P_w = (Y Y^T + (N - 1) I)^{-1},  w = P_w Y d,  T = sqrt(N - 1) P_w^{1/2} (symmetric),
//   E <- m + (1 w^T + T) A,
// so the analysis mean and covariance are the Kalman update of the ensemble's own, exactly.
// Afterwards the anomalies are multiplied by `inflation` and, optionally, rotated by a random
// orthogonal matrix that keeps the mean (DAPPER's `infl` and `rot`). The smoother applies each
// analysis's transform 1 w^T + T to the `lag` states before it as well.
//
// The LETKF does one such analysis per state variable, with the observations within twice
// the Gaspari-Cohn half-width c of it and R^{-1} tapered by GC(distance / c) (R-localization).
// It localizes observations of single variables (every row of H with one non-zero entry, at
// that variable's index); states are on a line or, with `period`, a circle of grid points.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <tbb/parallel_for.h>

#include "sda/baselines/kalman.hpp"
#include "sda/baselines/particle_filter.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::baselines {

/// Gaspari & Cohn (1999, eq. 4.10): the compactly supported fifth-order piecewise rational
/// correlation function of z = distance / half-width; 1 at 0, 0 from z = 2 on.
inline double gaspari_cohn(double z) {
    z = std::abs(z);
    if (z >= 2.0) return 0.0;
    const double z2 = z * z, z3 = z2 * z;
    if (z <= 1.0) return 1.0 - 5.0 / 3.0 * z2 + 5.0 / 8.0 * z3 + 0.5 * z2 * z2 - 0.25 * z2 * z3;
    return 4.0 - 5.0 * z + 5.0 / 3.0 * z2 + 5.0 / 8.0 * z3 - 0.5 * z2 * z2 + z2 * z3 / 12.0 - 2.0 / (3.0 * z);
}

struct Localization {
    /// Gaspari-Cohn half-width c in grid points (observations beyond 2c are ignored);
    /// +infinity: local analyses without tapering, the same as the ETKF. DAPPER's
    /// `loc_rad` r is c = 1.82 r (its taper is exp(-1/2) at r).
    double half_width = 4.0;
    /// The grid is a circle of this many points (Lorenz-96: its n); 0: a line.
    double period = 0.0;
};

struct EnsembleTransformOptions {
    /// Multiplies the analysis anomalies after each analysis (>= 1; DAPPER's `infl`).
    double inflation = 1.0;
    /// A random orthogonal transform of the anomalies after each analysis that keeps the
    /// ensemble mean (DAPPER's `rot`): spreads the weight over the members.
    bool rotate = false;
    /// Smoother: each analysis also updates the `lag` states before it (0: the filter).
    std::size_t lag = 0;
    /// LETKF when set; the global ETKF otherwise.
    std::optional<Localization> localization{};
};

struct EnsembleTransformResult {
    Tensor<double> filtered;  ///< [N, L, D] each state's ensemble after its own analysis (the forecast if unobserved)
    Tensor<double> smoothed;  ///< [N, L, D] after the analyses of the `lag` states that follow it as well
};

namespace detail {

/// The transform 1 w^T + T [N, N] of one analysis from the whitened anomalies Y [N, m]
/// and innovation d [m] (m may be 0: the identity).
inline Eigen::MatrixXd ensemble_transform(const Eigen::MatrixXd& Y, const Eigen::VectorXd& d) {
    const Eigen::Index N = Y.rows();
    const double n1 = double(N - 1);
    Eigen::MatrixXd M = Y * Y.transpose();
    M.diagonal().array() += n1;
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(M);
    const Eigen::VectorXd& lambda = eig.eigenvalues();  // >= N - 1 > 0
    const Eigen::MatrixXd& V = eig.eigenvectors();
    const Eigen::VectorXd w = V * (lambda.cwiseInverse().asDiagonal() * (V.transpose() * (Y * d)));
    Eigen::MatrixXd G = V * (lambda.cwiseSqrt().cwiseInverse() * std::sqrt(n1)).asDiagonal() * V.transpose();
    G.rowwise() += w.transpose();  // member n's weights: row n, w + T(n, :)
    return G;
}

/// A random N x N orthogonal matrix R with R 1 = 1 (it keeps the ensemble mean), Haar-distributed
/// on the complement of 1: R = H diag(1, Q) H^T with H the fixed Householder reflection taking
/// e_1 to 1 / sqrt(N) and Q a Haar rotation of O(N - 1) (QR of a Gaussian matrix, signs fixed;
/// Mezzadri 2007), drawn on its own so that it is independent of the basis.
inline Eigen::MatrixXd mean_preserving_rotation(Eigen::Index N, Generator& gen) {
    Eigen::MatrixXd inner = Eigen::MatrixXd::Identity(N, N);
    if (N > 1) {
        RowMatrix<double> gauss(N - 1, N - 1);
        fill_normal(gauss.data(), static_cast<std::size_t>(N - 1), static_cast<std::size_t>(N - 1), gen);
        const Eigen::HouseholderQR<Eigen::MatrixXd> qr{Eigen::MatrixXd(gauss)};
        Eigen::MatrixXd q = qr.householderQ();
        const Eigen::MatrixXd r = qr.matrixQR().triangularView<Eigen::Upper>();
        for (Eigen::Index k = 0; k < N - 1; ++k)
            if (r(k, k) < 0) q.col(k) = -q.col(k);
        inner.bottomRightCorner(N - 1, N - 1) = q;
    }
    // H = I - 2 u u^T / |u|^2 with u = e_1 - 1 / sqrt(N): H e_1 = 1 / sqrt(N), H = H^T = H^-1
    Eigen::VectorXd u = Eigen::VectorXd::Constant(N, -1.0 / std::sqrt(double(N)));
    u(0) += 1.0;
    Eigen::MatrixXd H = Eigen::MatrixXd::Identity(N, N);
    if (const double norm2 = u.squaredNorm(); norm2 > 0) H -= 2.0 / norm2 * u * u.transpose();
    return H * inner * H;
}

/// Where each observed component is: the index of the single non-zero entry of its row of H.
inline std::vector<double> observation_locations(const Eigen::MatrixXd& H, std::size_t state, const char* who) {
    std::vector<double> where(static_cast<std::size_t>(H.rows()));
    for (Eigen::Index k = 0; k < H.rows(); ++k) {
        Eigen::Index column = -1, nonzero = 0;
        for (Eigen::Index j = 0; j < H.cols(); ++j)
            if (H(k, j) != 0.0) ++nonzero, column = j;
        sda::detail::require(nonzero == 1, who, ": localization needs observations of single variables, but row ", k,
                             " of H at state ", state, " has ", nonzero, " non-zero entries");
        where[static_cast<std::size_t>(k)] = double(column);
    }
    return where;
}

}  // namespace detail

/// Filters (and, with `options.lag`, smooths) `observations.size()` states from `initial`
/// (N >= 2 draws of x_1, one per row); an empty observation means none at that state.
template <MarkovTransition M>
EnsembleTransformResult ensemble_transform_smoother(const M& model, const RowMatrix<double>& initial,
                                                    const std::vector<std::optional<KalmanObservation>>& observations,
                                                    Generator& gen, const EnsembleTransformOptions& options = {}) {
    constexpr const char* who = "sda::baselines::ensemble_transform_smoother";
    const std::size_t length = observations.size(), dim = model.dim();
    detail::check_initial(initial, dim, 2, who);
    sda::detail::require(length >= 1, who, ": no states");
    sda::detail::require(std::isfinite(options.inflation) && options.inflation >= 1.0, who,
                         ": inflation must be finite and >= 1, got ", options.inflation);
    if (options.localization) {
        const Localization& loc = *options.localization;
        sda::detail::require(!std::isnan(loc.half_width) && loc.half_width > 0.0, who,
                             ": the localization half-width must be > 0, got ", loc.half_width);
        sda::detail::require(std::isfinite(loc.period) && loc.period >= 0.0, who,
                             ": the localization period must be finite and >= 0, got ", loc.period);
    }
    const Eigen::Index N = initial.rows(), D = static_cast<Eigen::Index>(dim);
    std::vector<RowMatrix<double>> filtered(length), smoothed(length);
    RowMatrix<double> x = initial;
    for (std::size_t i = 0; i < length; ++i) {
        if (i > 0) model.propagate(x, gen);
        sda::detail::require(x.allFinite(), who, ": the forecast of state ", i, " is not finite");
        const std::size_t first = i - std::min(i, options.lag);  // oldest state this analysis updates
        if (const auto& obs = observations[i]) {
            const auto m = obs->y.size();
            const Eigen::LLT<Eigen::MatrixXd> noise = detail::checked_noise(*obs, D, i, who);
            const RowMatrix<double> predicted = x * obs->H.transpose();
            const Eigen::RowVectorXd predicted_mean = predicted.colwise().mean();
            // whitened: Y = (HX - Hm) L^{-T}, d = L^{-1} (y - Hm) with R = L L^T
            const Eigen::MatrixXd Y =
                noise.matrixL().solve((predicted.rowwise() - predicted_mean).transpose()).transpose();
            const Eigen::VectorXd d = noise.matrixL().solve(obs->y - predicted_mean.transpose());
            // the transform: one for all variables (ETKF) or one per variable (LETKF)
            std::vector<Eigen::MatrixXd> G;
            if (!options.localization) {
                G.push_back(detail::ensemble_transform(Y, d));
            } else {
                const Localization loc = *options.localization;
                const std::vector<double> where = detail::observation_locations(obs->H, i, who);
                G.resize(static_cast<std::size_t>(D));
                tbb::parallel_for(Eigen::Index{0}, D, [&](Eigen::Index v) {
                    std::vector<Eigen::Index> local;
                    std::vector<double> taper;
                    for (Eigen::Index k = 0; k < m; ++k) {
                        double distance = std::abs(where[static_cast<std::size_t>(k)] - double(v));
                        if (loc.period > 0.0) distance = std::min(std::fmod(distance, loc.period), loc.period - std::fmod(distance, loc.period));
                        const double rho = std::isinf(loc.half_width) ? 1.0 : gaspari_cohn(distance / loc.half_width);
                        if (rho > 0.0) local.push_back(k), taper.push_back(std::sqrt(rho));
                    }
                    const auto ml = static_cast<Eigen::Index>(local.size());
                    Eigen::MatrixXd Yl(N, ml);
                    Eigen::VectorXd dl(ml);
                    for (Eigen::Index k = 0; k < ml; ++k) {
                        Yl.col(k) = taper[static_cast<std::size_t>(k)] * Y.col(local[static_cast<std::size_t>(k)]);
                        dl(k) = taper[static_cast<std::size_t>(k)] * d(local[static_cast<std::size_t>(k)]);
                    }
                    G[static_cast<std::size_t>(v)] = detail::ensemble_transform(Yl, dl);
                });
            }
            // states j in [first, i]: E_j <- m_j + G (E_j - m_j)
            for (std::size_t j = first; j <= i; ++j) {
                RowMatrix<double>& e = j == i ? x : smoothed[j];
                const Eigen::RowVectorXd mj = e.colwise().mean();
                const RowMatrix<double> A = e.rowwise() - mj;
                if (G.size() == 1)
                    e = (G[0] * A).rowwise() + mj;
                else
                    for (Eigen::Index v = 0; v < D; ++v)
                        e.col(v) = (G[static_cast<std::size_t>(v)] * A.col(v)).array() + mj(v);
            }
            // inflation and rotation act on the filter's ensemble, which carries on
            if (options.inflation != 1.0 || options.rotate) {
                const Eigen::RowVectorXd mean = x.colwise().mean();
                RowMatrix<double> A = (x.rowwise() - mean) * options.inflation;
                if (options.rotate) A = detail::mean_preserving_rotation(N, gen) * A;
                x = A.rowwise() + mean;
            }
        }
        filtered[i] = x;
        smoothed[i] = x;
    }
    return {detail::stack_states(filtered, dim), detail::stack_states(smoothed, dim)};
}

}  // namespace sda::baselines
