// End to end: posterior sampling of a linear-Gaussian chain against the exact
// posterior of the Kalman/RTS smoother (the first oracle, docs/design.md).
//
// 33 states of the damped spring, both positions observed every 8th state
// with noise std 0.1. With the exact trajectory prior, MMPS (CG run to the 10
// observations) gives the exact posterior score, so the samples must pass
// Monte-Carlo tests against the smoother. The other likelihood approximations
// and the Markov-composed priors are measured and held to what they allow.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <vector>

#include "sda/baselines/kalman.hpp"
#include "sda/guidance/dps.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/linear_gaussian.hpp"
#include "support/stats.hpp"

using sda::Tensor;

namespace {

constexpr std::size_t length = 33, dim = 4;
constexpr double noise_std = 0.1;

struct Problem {
    sda::systems::LinearGaussianChain chain = sda::systems::LinearGaussianChain::damped_spring();
    sda::observe::Select op{{0, 8, 16, 24, 32}, {0, 1}};
    Tensor<double> y;
    Eigen::VectorXd mean, sd;   // posterior, from the RTS smoother (state-major)
    Eigen::MatrixXd joint_cov;  // the full posterior covariance, for the mean test
    std::vector<Eigen::MatrixXd> state_cov;
    Eigen::VectorXd prior_mean;
    Eigen::MatrixXd prior_cov;

    Problem() {
        sda::Generator gen(1963);
        const Tensor<double> truth = chain.simulate(1, length, gen);
        y = op.apply(truth) + noise_std * sda::CpuBackend<double>::normal({1, 5, 2}, gen);
        y.reshape({5, 2});
        const Eigen::MatrixXd A = sda::observe::dense_matrix(op, {length, dim});
        const Eigen::VectorXd yv = Eigen::Map<const Eigen::VectorXd>(y.data(), 10);
        const Eigen::VectorXd variance = Eigen::VectorXd::Constant(10, noise_std * noise_std);
        const auto rts = sda::baselines::rts_smoother(
            chain, sda::baselines::per_state_observations(A, yv, variance, length, dim));
        mean.resize(length * dim), sd.resize(length * dim);
        for (std::size_t i = 0; i < length; ++i) {
            mean.segment(i * dim, dim) = rts.smoothed_mean[i];
            sd.segment(i * dim, dim) = rts.smoothed_cov[i].diagonal().cwiseSqrt();
        }
        state_cov = rts.smoothed_cov;
        std::tie(prior_mean, prior_cov) = chain.joint_law(length);
        const Eigen::MatrixXd precision = prior_cov.inverse() + A.transpose() * A / (noise_std * noise_std);
        joint_cov = precision.inverse();
    }

    sda::GaussianObservation<sda::observe::Select> observation() const { return {op, y, noise_std * noise_std}; }
};

const Problem& problem() {
    static const Problem instance;
    return instance;
}

/// Errors of a sample set against the smoother: the root mean square over all
/// 132 coordinates of (mean error / posterior sd), and the mean |sd ratio - 1|.
struct Errors {
    double mean, sd;
};
Errors errors(const Eigen::MatrixXd& x) {
    const Problem& p = problem();
    const Eigen::VectorXd m = sda::test::sample_mean(x);
    const Eigen::VectorXd s = sda::test::sample_cov(x).diagonal().cwiseSqrt();
    return {((m - p.mean).array() / p.sd.array()).matrix().norm() / std::sqrt(double(length * dim)),
            (s.array() / p.sd.array() - 1.0).abs().mean()};
}

/// Posterior samples from a prior, guided by the observation, with Heun's
/// second-order sampler (64 steps: its discretisation error is below the
/// Monte-Carlo error of 1024 samples).
template <class Prior, class Guidance>
Eigen::MatrixXd posterior_samples(const Prior& prior, const Guidance& guidance, std::size_t count) {
    sda::Generator gen(7);
    return sda::test::as_matrix(sda::sample(sda::Heun{.steps = 64}, sda::guide(prior, problem().observation(), guidance), count, gen));
}

sda::GaussianScore<sda::VPCosine> exact_prior() {
    return {sda::VPCosine{}, {length, dim}, problem().prior_mean, problem().prior_cov};
}

template <std::size_t K>
sda::MarkovComposedScore<sda::GaussianScore<sda::VPCosine>, K> composed_prior() {
    auto [mean, cov] = problem().chain.joint_law(2 * K + 1);
    return {sda::GaussianScore<sda::VPCosine>(sda::VPCosine{}, {2 * K + 1, dim}, mean, cov), length};
}

/// The prior itself, as the baseline every posterior approximation must beat.
Errors prior_errors() {
    sda::Generator gen(8);
    return errors(sda::test::as_matrix(problem().chain.simulate(4096, length, gen)));
}

}  // namespace

TEST_CASE("posterior: MMPS on the exact prior matches the RTS smoother within Monte-Carlo error") {
    const Problem& p = problem();
    const Eigen::MatrixXd x = posterior_samples(exact_prior(), sda::MMPS{.iterations = 10}, 1024);
    const auto mean = sda::test::mean_test(x, p.mean, p.joint_cov);
    CHECK_MESSAGE(mean.pass(), "mean statistic ", mean.value, " above its 0.999 quantile ", mean.threshold, " (chi2 with 132 dof)");
    // each state's 4 x 4 covariance, Bonferroni over the 33 states
    for (std::size_t i = 0; i < length; ++i) {
        const auto at = static_cast<Eigen::Index>(i * dim);
        const auto cov = sda::test::covariance_test(x.middleCols(at, dim), p.mean.segment(at, dim), p.state_cov[i], 1e-3 / length);
        CHECK_MESSAGE(cov.pass(), "state ", i, ": covariance statistic ", cov.value, " above ", cov.threshold);
    }
    const Errors e = errors(x);
    MESSAGE("MMPS, exact prior: mean error ", e.mean, " sd, sd error ", e.sd, " (Monte-Carlo level ", 1.0 / std::sqrt(1024.0), ")");
}

TEST_CASE("posterior: SDA, detached SDA and DPS on the exact prior improve on the prior") {
    // Each replaces p(y | x(t)) by a Gaussian around A(x_hat) with an ad-hoc
    // variance, so none is exact; all must move the prior most of the way to the
    // posterior: a mean error under a quarter of the prior's (DPS, which ignores
    // the noise level, under a half), and a smaller sd error.
    const Errors prior = prior_errors();
    const Errors sda_gamma = errors(posterior_samples(exact_prior(), sda::SDA{.gamma = 3e-2}, 1024));
    const Errors detached = errors(posterior_samples(exact_prior(), sda::DetachedSDA{.gamma = 3e-2}, 1024));
    const Errors dps = errors(posterior_samples(exact_prior(), sda::DPS{.zeta = 30.0}, 1024));
    MESSAGE("prior: mean error ", prior.mean, ", sd error ", prior.sd);
    MESSAGE("SDA gamma = 3e-2: mean error ", sda_gamma.mean, ", sd error ", sda_gamma.sd);
    MESSAGE("detached SDA: mean error ", detached.mean, ", sd error ", detached.sd);
    MESSAGE("DPS zeta = 30: mean error ", dps.mean, ", sd error ", dps.sd);
    for (const Errors& e : {sda_gamma, detached}) {
        CHECK(e.mean < 0.25 * prior.mean);
        CHECK(e.sd < prior.sd);
    }
    CHECK(dps.mean < 0.5 * prior.mean);
    CHECK(dps.sd < prior.sd);
}

TEST_CASE("posterior: Markov-composed priors converge to the exact posterior as K grows") {
    // The paper's claim (Figure 3): the composed prior loses correlations beyond
    // the window, so the error falls with K; with MMPS the rest is exact.
    const Errors prior = prior_errors();
    const Errors k1 = errors(posterior_samples(composed_prior<1>(), sda::MMPS{.iterations = 10}, 512));
    const Errors k2 = errors(posterior_samples(composed_prior<2>(), sda::MMPS{.iterations = 10}, 512));
    const Errors k4 = errors(posterior_samples(composed_prior<4>(), sda::MMPS{.iterations = 10}, 512));
    MESSAGE("MMPS, composed K = 1, 2, 4: mean error ", k1.mean, ", ", k2.mean, ", ", k4.mean, "; sd error ", k1.sd, ", ", k2.sd,
            ", ", k4.sd);
    CHECK(k1.mean < prior.mean);
    CHECK(k2.mean < k1.mean);
    CHECK(k4.mean < k2.mean);
    CHECK(k4.sd < k1.sd);
}
