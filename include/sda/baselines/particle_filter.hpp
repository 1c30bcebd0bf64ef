// sda/baselines/particle_filter.hpp: the bootstrap particle filter with
// ancestral (genealogy) smoothing: the ground-truth posterior of the paper's
// Lorenz-63 experiment, for any Markov chain that can be simulated.
//
// Gordon, Salmond & Smith, "Novel approach to nonlinear/non-Gaussian Bayesian
// state estimation" (1993); Kitagawa, "Monte Carlo filter and smoother" (1996):
// particles are propagated through the transition, weighted by the observation
// likelihood, and resampled (systematic resampling) when the effective sample
// size falls below a threshold. Every particle keeps the index of its parent,
// so tracing a final particle's ancestry back gives a draw from the joint
// smoothing distribution p(x_1..L | y_1..L) (as N grows; early states share
// few ancestors when many observations are assimilated: `unique_ancestors`
// says how many distinct particles each state's draws come from).
//
// Observations are linear-Gaussian per state, y_i = H_i x_i + N(0, R_i), the
// `KalmanObservation`s of sda/baselines/kalman.hpp, at any subset of states.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <optional>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <tbb/parallel_for.h>

#include "sda/baselines/kalman.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::baselines {

/// A Markov chain the filters can simulate. Requirements:
/// - `m.dim()`: the state dimension D;
/// - `m.propagate(x, gen)`: replaces every row of `x` (a `RowMatrix<double>`
///   N x D) by a draw of the next state given it, using `gen` for the noise.
/// `systems::Lorenz63`, `systems::Lorenz96` and `systems::LinearGaussianChain` are ones.
template <class M>
concept MarkovTransition = requires(const M& m, RowMatrix<double>& x, Generator& gen) {
    { m.dim() } -> std::convertible_to<std::size_t>;
    m.propagate(x, gen);
};

struct ParticleFilterOptions {
    /// Resample when the effective sample size falls below this fraction of
    /// the particle count (1: after every observation, the plain bootstrap filter).
    double resample_threshold = 0.5;
};

struct ParticleSmootherResult {
    Tensor<double> trajectories;                ///< [samples, L, D] draws from the genealogy
    double log_likelihood = 0.0;                ///< the estimate of log p(y_1..L) (its exp is unbiased)
    std::vector<std::size_t> unique_ancestors;  ///< per state, distinct particles among the drawn trajectories
    std::size_t resamplings = 0;
};

namespace detail {

/// Normalised weights from log-weights, and the log of their unnormalised mean.
inline double normalise(const Eigen::VectorXd& log_weights, Eigen::VectorXd& weights) {
    const double top = log_weights.maxCoeff();
    weights = (log_weights.array() - top).exp();
    const double total = weights.sum();
    weights /= total;
    return top + std::log(total / static_cast<double>(log_weights.size()));
}

/// `count` indices drawn from `weights` (normalised): systematic when
/// `systematic` (one uniform, sorted output), independent otherwise.
inline std::vector<std::uint32_t> resample(const Eigen::VectorXd& weights, std::size_t count, bool systematic,
                                           Generator& gen) {
    std::vector<double> u(systematic ? 1 : count);
    fill_uniform(u.data(), 1, u.size(), gen);
    std::vector<double> cumulative(static_cast<std::size_t>(weights.size()));
    double sum = 0;
    for (Eigen::Index n = 0; n < weights.size(); ++n) cumulative[static_cast<std::size_t>(n)] = (sum += weights(n));
    std::vector<std::uint32_t> out(count);
    const auto last = static_cast<std::uint32_t>(cumulative.size() - 1);
    for (std::size_t k = 0; k < count; ++k) {
        const double position = systematic ? (double(k) + u[0]) / double(count) : u[k];
        const auto it = std::lower_bound(cumulative.begin(), cumulative.end(), position * sum);
        out[k] = std::min(last, static_cast<std::uint32_t>(it - cumulative.begin()));
    }
    return out;
}

/// log N(y | H x_n, R) for every row x_n of `x`.
/// Throws unless `obs` observes states of dimension `dim` (H m x dim, R m x m, y of m finite
/// entries) with a positive definite R; returns R's Cholesky factorisation.
inline Eigen::LLT<Eigen::MatrixXd> checked_noise(const KalmanObservation& obs, Eigen::Index dim, std::size_t state,
                                                 const char* who) {
    const auto m = obs.y.size();
    sda::detail::require(obs.H.cols() == dim && obs.H.rows() == m && obs.R.rows() == m && obs.R.cols() == m, who,
                         ": observation of state ", state, " has H ", obs.H.rows(), " x ", obs.H.cols(), ", R ",
                         obs.R.rows(), " x ", obs.R.cols(), " and y of ", m, " entries for states of dimension ", dim);
    Eigen::LLT<Eigen::MatrixXd> llt(obs.R);
    sda::detail::require(llt.info() == Eigen::Success && obs.y.allFinite(), who, ": observation of state ", state,
                         " needs a positive definite R and a finite y");
    return llt;
}

/// The ensembles of `states` (L matrices N x D) as one tensor [N, L, D].
inline Tensor<double> stack_states(const std::vector<RowMatrix<double>>& states, std::size_t dim) {
    const std::size_t length = states.size(), n = length == 0 ? 0 : static_cast<std::size_t>(states[0].rows());
    Tensor<double> out = empty_tensor<double>({n, length, dim});
    for (std::size_t i = 0; i < length; ++i)
        for (std::size_t b = 0; b < n; ++b)
            Eigen::Map<Eigen::RowVectorXd>(out.data() + (b * length + i) * dim, static_cast<Eigen::Index>(dim)) =
                states[i].row(static_cast<Eigen::Index>(b));
    return out;
}

inline Eigen::VectorXd observation_log_likelihood(const RowMatrix<double>& x, const KalmanObservation& obs,
                                                  std::size_t state) {
    const auto m = obs.y.size();
    const Eigen::MatrixXd L = checked_noise(obs, x.cols(), state, "sda::baselines").matrixL();
    const double constant = -L.diagonal().array().log().sum() - 0.5 * double(m) * std::log(2.0 * std::numbers::pi);
    // whitened residuals L^{-1} (y - H x_n), all rows at once
    RowMatrix<double> residual = (-(x * obs.H.transpose())).rowwise() + obs.y.transpose();
    const Eigen::MatrixXd whitened = L.triangularView<Eigen::Lower>().solve(residual.transpose());
    return (constant - 0.5 * whitened.colwise().squaredNorm().array()).matrix().transpose();
}

inline void check_initial(const RowMatrix<double>& initial, std::size_t dim, std::size_t minimum, const char* who) {
    sda::detail::require(initial.rows() >= static_cast<Eigen::Index>(minimum) &&
                             initial.cols() == static_cast<Eigen::Index>(dim),
                         who, ": initial particles are ", initial.rows(), " x ", initial.cols(), ", need at least ",
                         minimum, " rows of dimension ", dim);
    sda::detail::require(initial.allFinite(), who, ": initial particles hold NaN or Inf");
}

}  // namespace detail

/// Runs the filter over `observations.size()` states from `initial` (N draws
/// of x_1, one per row: the particle count) and draws `samples` trajectories
/// from the genealogy of the final particles.
template <MarkovTransition M>
ParticleSmootherResult particle_smoother(const M& model, const RowMatrix<double>& initial,
                                         const std::vector<std::optional<KalmanObservation>>& observations,
                                         std::size_t samples, Generator& gen, const ParticleFilterOptions& options = {}) {
    const std::size_t length = observations.size(), dim = model.dim();
    detail::check_initial(initial, dim, 2, "sda::baselines::particle_smoother");
    sda::detail::require(length >= 1 && samples >= 1, "sda::baselines::particle_smoother: need at least one state and ",
                         "one sample, got ", length, " and ", samples);
    sda::detail::require(options.resample_threshold >= 0 && options.resample_threshold <= 1,
                         "sda::baselines::particle_smoother: resample_threshold must lie in [0, 1], got ",
                         options.resample_threshold);
    const auto N = initial.rows();
    std::vector<RowMatrix<double>> history(length);
    std::vector<std::vector<std::uint32_t>> parents(length);  // parents[i][n]: the particle of state i-1 behind n
    Eigen::VectorXd log_weights = Eigen::VectorXd::Zero(N), weights;
    ParticleSmootherResult out;
    RowMatrix<double> x = initial;
    for (std::size_t i = 0; i < length; ++i) {
        if (i > 0) {
            detail::normalise(log_weights, weights);
            const double ess = 1.0 / weights.squaredNorm();
            if (ess < options.resample_threshold * double(N)) {
                parents[i] = detail::resample(weights, static_cast<std::size_t>(N), true, gen);
                RowMatrix<double> chosen(N, x.cols());
                for (Eigen::Index n = 0; n < N; ++n) chosen.row(n) = x.row(parents[i][static_cast<std::size_t>(n)]);
                x.swap(chosen);
                log_weights.setZero();
                ++out.resamplings;
            } else {
                parents[i].resize(static_cast<std::size_t>(N));
                for (std::size_t n = 0; n < parents[i].size(); ++n) parents[i][n] = static_cast<std::uint32_t>(n);
            }
            model.propagate(x, gen);
        }
        if (const auto& obs = observations[i]) {
            const Eigen::VectorXd ll = detail::observation_log_likelihood(x, *obs, i);
            // p(y_i | y_<i) ~ sum_n W_n p(y_i | x_n) with the normalised weights before this observation
            const double before = detail::normalise(log_weights, weights);
            log_weights += ll;
            out.log_likelihood += detail::normalise(log_weights, weights) - before;
            sda::detail::require(std::isfinite(out.log_likelihood), "sda::baselines::particle_smoother: every particle ",
                                 "has zero likelihood at state ", i, " (observation far outside the prior's support?)");
        }
        history[i] = x;
    }

    detail::normalise(log_weights, weights);
    std::vector<std::uint32_t> index = detail::resample(weights, samples, false, gen);
    out.trajectories = empty_tensor<double>({samples, length, dim});
    out.unique_ancestors.assign(length, 0);
    for (std::size_t i = length; i-- > 0;) {
        for (std::size_t s = 0; s < samples; ++s) {
            Eigen::Map<Eigen::RowVectorXd>(out.trajectories.data() + (s * length + i) * dim,
                                           static_cast<Eigen::Index>(dim)) = history[i].row(index[s]);
        }
        std::vector<std::uint32_t> distinct = index;
        std::sort(distinct.begin(), distinct.end());
        out.unique_ancestors[i] = static_cast<std::size_t>(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
        if (i > 0)
            for (auto& n : index) n = parents[i][n];
    }
    return out;
}

}  // namespace sda::baselines
