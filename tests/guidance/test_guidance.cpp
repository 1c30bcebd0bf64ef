// Tests of sda/guidance: each likelihood score against its definition, by
// finite differences; MMPS against the exact posterior score of a Gaussian.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>

#include <Eigen/Dense>
#include <xtensor/xview.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/guidance/dps.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/linear.hpp"
#include "sda/observe/saturation.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/systems/linear_gaussian.hpp"
#include "support/fd.hpp"
#include "support/tensors.hpp"

using sda::Shape;
using sda::Tensor;
using Backend = sda::CpuBackend<double>;
namespace observe = sda::observe;

namespace {

const auto chain = sda::systems::LinearGaussianChain::damped_spring();
constexpr std::size_t length = 6;

/// The exact prior of 6 states of the damped spring, events [6, 4].
sda::GaussianScore<sda::VPCosine> prior() {
    auto [mean, cov] = chain.joint_law(length);
    return {sda::VPCosine{}, {length, chain.dim()}, mean, cov};
}

/// A nonlinear observation: the saturated positions of states 0, 2 and 5.
auto nonlinear_operator() { return observe::compose(observe::Saturation(0.8), observe::Select({0, 2, 5}, {0, 1})); }

Tensor<double> observed_values(std::size_t rows) {
    Tensor<double> y = sda::empty_tensor<double>({rows, 2});
    for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = 0.3 * std::sin(1.0 + i);
    return y;
}

/// The likelihood score the guided model implies: (eps - eps_post) / sigma.
template <class Posterior>
Tensor<double> implied_gradient(const Posterior& posterior, const Tensor<double>& x, double t) {
    const double sigma = posterior.schedule().sigma(t);
    return (posterior.prior().eps(x, t) - posterior.eps(x, t)) / sigma;
}

/// -zeta grad_x sum_b ||y - A(x_hat(x))|| at t by central finite differences: the sum's
/// gradient holds each sample's own DPS gradient.
template <class Model, class Op>
Tensor<double> dps_gradient_fd(const Model& model, const Op& op, const Tensor<double>& y, const Tensor<double>& x,
                               double t, double zeta) {
    const double mu = model.schedule().mu(t), sigma = model.schedule().sigma(t);
    auto objective = [&](const Tensor<double>& point) {
        const Tensor<double> residual = y - op.apply(Tensor<double>((point - sigma * model.eps(point, t)) / mu));
        double total = 0.0;
        for (std::size_t b = 0; b < x.shape()[0]; ++b) total += std::sqrt(xt::sum(xt::square(xt::view(residual, b)))());
        return -zeta * total;
    };
    return sda::test::gradient_fd(objective, x);
}

}  // namespace

TEST_CASE("sda guidance: the gradient of -1/2 sum (y - A(x_hat))^2 / (Sigma_y + gamma (sigma/mu)^2)") {
    const auto model = prior();
    const auto op = nonlinear_operator();
    const Tensor<double> y = observed_values(3), variance = {0.01, 0.04};  // per coordinate, broadcast over states
    const sda::GaussianObservation obs(op, y, variance);
    sda::Generator gen(21);
    const Tensor<double> x = Backend::normal({2, length, chain.dim()}, gen);
    for (double t : {0.1, 0.5, 0.9}) {
        const double mu = model.schedule().mu(t), sigma = model.schedule().sigma(t), gamma = 0.03;
        const double inflation = gamma * (sigma / mu) * (sigma / mu);
        // log p as a function of x, through x_hat(x) = (x - sigma eps(x)) / mu; `frozen` keeps eps at x
        auto log_likelihood = [&](const Tensor<double>& point, const Tensor<double>* frozen) {
            const Tensor<double> eps = frozen ? *frozen : model.eps(point, t);
            const Tensor<double> residual = y - op.apply(Tensor<double>((point - sigma * eps) / mu));
            const Tensor<double> weighted = residual * residual / (variance + inflation);
            return -0.5 * std::accumulate(weighted.begin(), weighted.end(), 0.0);
        };
        const Tensor<double> full = sda::test::gradient_fd([&](const Tensor<double>& p) { return log_likelihood(p, nullptr); }, x);
        const Tensor<double> eps0 = model.eps(x, t);
        const Tensor<double> detached = sda::test::gradient_fd([&](const Tensor<double>& p) { return log_likelihood(p, &eps0); }, x);

        CHECK(sda::test::relative_max_error(implied_gradient(sda::guide(model, obs, sda::SDA{.gamma = gamma}), x, t), full) < 1e-6);
        CHECK(sda::test::relative_max_error(implied_gradient(sda::guide(model, obs, sda::DetachedSDA{.gamma = gamma}), x, t),
                                            detached) < 1e-6);
    }
}

TEST_CASE("dps guidance: the gradient of -zeta ||y - A(x_hat)||, per sample") {
    const auto model = prior();
    const auto op = nonlinear_operator();
    const Tensor<double> y = observed_values(3);
    const sda::GaussianObservation obs(op, y, 0.01);
    sda::Generator gen(22);
    const Tensor<double> x = Backend::normal({3, length, chain.dim()}, gen);
    const double zeta = 0.7, t = 0.4;
    const Tensor<double> expected = dps_gradient_fd(model, op, y, x, t, zeta);
    CHECK(sda::test::relative_max_error(implied_gradient(sda::guide(model, obs, sda::DPS{.zeta = zeta}), x, t), expected) <
          1e-6);
}

TEST_CASE("dps guidance, per step (Chung et al.): a predictor step ends with x(s) -= zeta grad ||y - A(x_hat)||") {
    const auto model = prior();
    const auto op = nonlinear_operator();
    const Tensor<double> y = observed_values(3);
    const sda::GaussianObservation obs(op, y, 0.01);
    sda::Generator gen(23);
    const Tensor<double> x = Backend::normal({3, length, chain.dim()}, gen);
    const double zeta = 0.3;
    // what the step moves x by, beyond the prior's step, for the same noise draw
    auto guided_shift = [&](const auto& sampler, double t, double s) {
        const auto posterior = sda::guide(model, obs, sda::DPS::per_step(zeta, sampler));
        sda::Generator a(5), b(5);
        return Tensor<double>(sampler.predictor.step(posterior, x, t, s, a) - sampler.predictor.step(model, x, t, s, b));
    };
    for (const double t : {0.625, 0.125}) {  // a step inside the grid of 8 and the last one, to s = 0
        const double s = t - 0.125;
        const Tensor<double> expected = dps_gradient_fd(model, op, y, x, t, zeta);  // -zeta grad ||r||, per sample
        CAPTURE(t);
        CHECK(sda::test::relative_max_error(guided_shift(sda::DDIM{.steps = 8}, t, s), expected) < 1e-6);
        CHECK(sda::test::relative_max_error(guided_shift(sda::DDPM{.steps = 8}, t, s), expected) < 1e-6);
        CHECK(sda::test::relative_max_error(guided_shift(sda::DDIM{.steps = 8, .predictor = {.eta = 0.5}}, t, s), expected) <
              1e-6);
    }
}

TEST_CASE("mmps guidance: exact posterior score of a Gaussian prior under a linear observation") {
    // x ~ N(m, S), y = A x + N(0, R): p(x(t) | y) = N(mu m_y, mu^2 S_y + sigma^2 I), so the
    // exact posterior eps is the analytic score of N(m_y, S_y). MMPS with CG run to the
    // observation's dimension must reproduce it.
    const auto model = prior();
    Eigen::MatrixXd dense = Eigen::MatrixXd::Zero(4, length * chain.dim());
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < dense.cols(); ++c) dense(r, c) = std::cos(0.37 * (r + 1) * (c + 2));  // a full-rank mixing
    const observe::Linear<double> op(dense);
    const Tensor<double> y = {0.4, -0.2, 0.1, 0.3}, variance = {0.01, 0.02, 0.05, 0.01};

    const Eigen::Map<const Eigen::VectorXd> yv(y.data(), 4), rv(variance.data(), 4);
    const Eigen::MatrixXd& S = model.covariance();
    const Eigen::MatrixXd gain = S * dense.transpose() * (dense * S * dense.transpose() + Eigen::MatrixXd(rv.asDiagonal())).inverse();
    const Eigen::VectorXd posterior_mean = model.mean() + gain * (yv - dense * model.mean());
    Eigen::MatrixXd posterior_cov = S - gain * dense * S;
    posterior_cov = 0.5 * (posterior_cov + posterior_cov.transpose()).eval();
    const sda::GaussianScore exact(sda::VPCosine{}, model.event_shape(), posterior_mean, posterior_cov);

    const auto posterior = sda::guide(model, sda::GaussianObservation(op, y, variance), sda::MMPS{.iterations = 4});
    sda::Generator gen(23);
    const Tensor<double> x = Backend::normal({5, length, chain.dim()}, gen);
    for (double t : {0.02, 0.3, 0.7, 1.0}) CHECK(sda::test::relative_max_error(posterior.eps(x, t), exact.eps(x, t)) < 1e-8);

    // a single CG iteration is only an approximation
    const auto rough = sda::guide(model, sda::GaussianObservation(op, y, variance), sda::MMPS{.iterations = 1});
    CHECK(sda::test::relative_max_error(rough.eps(x, 0.3), exact.eps(x, 0.3)) > 1e-3);
}

TEST_CASE("mmps guidance: a nonlinear observation, against dense Jacobians") {
    // grad = J_hat^T A^T (Sigma_y + A V A^T)^{-1} (y - A(x_hat)), V = (sigma^2 / mu) J_hat^T,
    // J_hat = d x_hat / d x and A = dA/dx at x_hat, both by finite differences.
    const auto model = prior();
    const auto op = nonlinear_operator();
    const Tensor<double> y = observed_values(3);
    const double noise = 0.02, t = 0.35, mu = model.schedule().mu(t), sigma = model.schedule().sigma(t);
    const auto posterior = sda::guide(model, sda::GaussianObservation(op, y, noise), sda::MMPS{.iterations = 6});
    sda::Generator gen(24);
    const Tensor<double> x = Backend::normal({1, length, chain.dim()}, gen);
    auto denoise = [&](const Tensor<double>& p) { return Tensor<double>((p - sigma * model.eps(p, t)) / mu); };
    const Tensor<double> x_hat = denoise(x);
    auto jacobian = [](auto&& f, const Tensor<double>& at, Eigen::Index rows) {
        Eigen::MatrixXd J(rows, static_cast<Eigen::Index>(at.size()));
        for (std::size_t j = 0; j < at.size(); ++j) {
            Tensor<double> up = at, down = at;
            up.data()[j] += 1e-6, down.data()[j] -= 1e-6;
            const Tensor<double> d = (f(up) - f(down)) / 2e-6;
            J.col(static_cast<Eigen::Index>(j)) = Eigen::Map<const Eigen::VectorXd>(d.data(), rows);
        }
        return J;
    };
    const Eigen::MatrixXd J_hat = jacobian(denoise, x, 24), A = jacobian([&](const Tensor<double>& p) { return op.apply(p); }, x_hat, 6);
    const Tensor<double> residual = y - op.apply(x_hat);
    const Eigen::Map<const Eigen::VectorXd> r(residual.data(), 6);
    const Eigen::MatrixXd system = noise * Eigen::MatrixXd::Identity(6, 6) + A * (sigma * sigma / mu) * J_hat.transpose() * A.transpose();
    const Eigen::VectorXd expected = J_hat.transpose() * A.transpose() * system.ldlt().solve(r);
    const Tensor<double> actual = implied_gradient(posterior, x, t);
    CHECK((Eigen::Map<const Eigen::VectorXd>(actual.data(), 24) - expected).norm() < 1e-6 * expected.norm());

    // gamma adds the denoiser's error variance gamma (sigma / mu)^2 A A^T to the system
    const double gamma = 0.05;
    const Eigen::MatrixXd inflated = system + gamma * (sigma / mu) * (sigma / mu) * A * A.transpose();
    const Eigen::VectorXd expected_inflated = J_hat.transpose() * A.transpose() * inflated.ldlt().solve(r);
    const auto posterior_inflated =
        sda::guide(model, sda::GaussianObservation(op, y, noise), sda::MMPS{.iterations = 6, .gamma = gamma});
    const Tensor<double> actual_inflated = implied_gradient(posterior_inflated, x, t);
    CHECK((Eigen::Map<const Eigen::VectorXd>(actual_inflated.data(), 24) - expected_inflated).norm() <
          1e-6 * expected_inflated.norm());
    CHECK((expected_inflated - expected).norm() > 1e-2 * expected.norm());  // gamma made a difference
}

namespace {

/// A denoiser as miscalibrated as a learned eps-network is at high noise: the exact Gaussian
/// eps plus (kappa(t) / sigma) M x, M the mask of the observed entries and kappa(t) = 2 sigma^4.
/// Its V = (sigma / mu)^2 (I - sigma d eps / d x) is V_true - kappa (sigma / mu)^2 M, and since
/// V_true <= (sigma / mu)^2 I, negative definite on the observed entries wherever kappa > 1
/// (t > 0.6 or so); near t = 0 the perturbation fades.
struct Miscalibrated {
    sda::GaussianScore<sda::VPCosine> exact;
    Tensor<double> mask;  // [event]: 1 on observed entries

    Backend backend() const { return {}; }
    const sda::VPCosine& schedule() const { return exact.schedule(); }
    const Shape& event_shape() const { return exact.event_shape(); }
    double factor(double t) const { return 2.0 * std::pow(exact.schedule().sigma(t), 3); }  // kappa / sigma
    Tensor<double> eps(const Tensor<double>& x, double t) const { return exact.eps(x, t) + factor(t) * mask * x; }
    Tensor<double> vjp(const Tensor<double>& x, double t, const Tensor<double>& v) const {
        return exact.vjp(x, t, v) + factor(t) * mask * v;
    }
};

Miscalibrated miscalibrated(const observe::Select& op) {
    const Tensor<double> ones = xt::ones<double>({std::size_t{1}, length, chain.dim()});
    return {prior(), Tensor<double>(xt::view(op.vjp(ones, op.apply(ones)), 0))};
}

}  // namespace

TEST_CASE("mmps guidance: a covariance estimate that is not positive along CG's direction gives no step there") {
    // A V A^T is negative definite at t = 0.9: without the guard, one CG step divides by a negative
    // curvature and pushes the sample the wrong way; with it, the sample keeps the prior's eps.
    const observe::Select op({0, 2, 5}, {0, 1});
    const auto model = miscalibrated(op);
    const Tensor<double> y = observed_values(3);
    sda::Generator gen(26);
    const Tensor<double> x = Backend::normal({4, length, chain.dim()}, gen);
    for (std::size_t iterations : {1, 3}) {
        const auto posterior = sda::guide(model, sda::GaussianObservation(op, y, 0.01), sda::MMPS{.iterations = iterations});
        CHECK(posterior.eps(x, 0.9) == model.eps(x, 0.9));
        // where V is positive (t = 0.05) the guard is silent: the guidance moves eps
        CHECK(sda::test::relative_max_error(posterior.eps(x, 0.05), model.eps(x, 0.05)) > 1e-3);
    }
}

TEST_CASE("mmps guidance: sampling with a miscalibrated denoiser stays within the prior's scale") {
    // The divergence seen with learned priors on Lorenz-63, on a small problem: V indefinite at
    // high noise, small observation noise. Without the curvature guard, steps along negative
    // curvature throw samples far out of the prior's range.
    const observe::Select op({0, 2, 5}, {0, 1});
    const auto model = miscalibrated(op);
    const Tensor<double> y = observed_values(3);
    const double prior_scale = std::sqrt(model.exact.covariance().diagonal().maxCoeff());
    for (std::size_t iterations : {1, 3}) {
        CAPTURE(iterations);
        const auto posterior = sda::guide(model, sda::GaussianObservation(op, y, 0.0025), sda::MMPS{.iterations = iterations});
        const sda::PredictorCorrector sampler{.steps = 64, .corrector = {.corrections = 1, .tau = 0.25}};
        sda::Generator gen(27);
        Tensor<double> samples;
        REQUIRE_NOTHROW(samples = sda::sample(sampler, posterior, 128, gen));
        // 3072 entries of a posterior narrower than the prior: beyond 5 prior standard deviations
        // has probability ~2e-3 even for the prior (with the guard: 1.8; without: 24 and 46)
        CHECK(xt::amax(xt::abs(samples))() < 5.0 * prior_scale);
    }
}

TEST_CASE("guidance: one observation per sample equals separate runs") {
    const auto model = prior();
    const observe::Select op({1, 4}, {0});
    sda::Generator gen(25);
    const Tensor<double> x = Backend::normal({2, length, chain.dim()}, gen);
    const Tensor<double> ys = sda::test::tensor({2, 2, 1}, {0.5, -0.1, 0.2, 0.3});  // one y per sample
    const auto batched = sda::guide(model, sda::GaussianObservation(op, ys, 0.01), sda::SDA{});
    const Tensor<double> together = batched.eps(x, 0.5);
    for (std::size_t b = 0; b < 2; ++b) {
        const auto single = sda::guide(model, sda::GaussianObservation(op, Tensor<double>(xt::view(ys, b)), 0.01), sda::SDA{});
        const Tensor<double> alone = single.eps(Tensor<double>(xt::view(x, xt::range(b, b + 1))), 0.5);
        CHECK(xt::allclose(xt::view(together, b), xt::view(alone, 0), 1e-12, 1e-14));
    }
    CHECK_THROWS_WITH_AS(batched.eps(Backend::normal({3, length, chain.dim()}, gen), 0.5),
                         "sda::Guided: the observation holds one y per sample for 2 samples, but the batch has 3", sda::error);
}

TEST_CASE("guidance: invalid parameters and mismatched observations throw at guide()") {
    const auto model = prior();
    const observe::Select op({1, 4}, {0});
    const Tensor<double> y = xt::zeros<double>({2, 1});
    const sda::GaussianObservation obs(op, y, 0.01);
    CHECK_THROWS_WITH_AS(sda::guide(model, obs, sda::SDA{.gamma = -1.0}),
                         "sda::SDAGuidance: gamma must be finite and non-negative, got -1", sda::error);
    CHECK_THROWS_WITH_AS(sda::guide(model, obs, sda::MMPS{.iterations = 0}), "sda::MMPS: iterations must be >= 1, got 0",
                         sda::error);
    CHECK_THROWS_AS(sda::guide(model, obs, sda::DPS{.zeta = 0.0}), sda::error);
    const sda::GaussianObservation wrong(observe::Select({1, 4, 5}, {0}), y, 0.01);
    CHECK_THROWS_WITH_AS(sda::guide(model, wrong, sda::SDA{}),
                         "sda::GaussianObservation: y has shape [2, 1] but the operator maps events [6, 4] to "
                         "observations [3, 1]",
                         sda::error);
    const sda::GaussianObservation out_of_range(observe::Select({9}, {0}), Tensor<double>(xt::zeros<double>({1, 1})), 0.01);
    CHECK_THROWS_WITH_AS(sda::guide(model, out_of_range, sda::SDA{}),
                         "sda::observe::Select: state index 9 is out of range for 6 states", sda::error);
}
