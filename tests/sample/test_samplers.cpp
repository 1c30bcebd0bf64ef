// Tests of sda/sample: every sampler and schedule reproduces an exact Gaussian
// prior through the analytic score; the Langevin corrector's stationary law.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "sda/backend/cpu.hpp"
#include "sda/sample/correctors.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/rectified.hpp"
#include "sda/schedule/ve.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "support/stats.hpp"

using sda::Tensor;

namespace {

/// N(m, S) on events [3, 2]: correlated, with standard deviations from 0.3 to 2
/// (eigenvalues of S from 0.05 to 4.6), and a mean away from 0.
std::pair<Eigen::VectorXd, Eigen::MatrixXd> target_law() {
    Eigen::MatrixXd correlation(6, 6);
    correlation << 1, 0.3, 0, 0, 0.1, 0,  //
        0.3, 1, 0.2, 0, 0, 0,             //
        0, 0.2, 1, -0.4, 0, 0,            //
        0, 0, -0.4, 1, 0.2, 0,            //
        0.1, 0, 0, 0.2, 1, 0.5,           //
        0, 0, 0, 0, 0.5, 1;
    Eigen::VectorXd sd(6), mean(6);
    sd << 0.3, 1.0, 2.0, 0.5, 1.5, 0.8;
    mean << 1.0, -0.5, 0.3, 2.0, 0.0, -1.0;
    return {mean, sd.asDiagonal() * correlation * sd.asDiagonal()};
}

template <class Schedule>
sda::GaussianScore<Schedule> target_score(const Schedule& schedule) {
    auto [mean, cov] = target_law();
    return {schedule, {3, 2}, mean, cov};
}

/// Samples `count` draws and tests their mean and covariance against the exact
/// law of x(0) = N(mu(0) m, mu(0)^2 S + sigma(0)^2 I), each at level 1e-3.
template <class Schedule, class Sampler>
void check_prior(const Schedule& schedule, const Sampler& sampler, const std::string& name, std::size_t count) {
    const auto score = target_score(schedule);
    sda::Generator gen(2023);
    const Eigen::MatrixXd x = sda::test::as_matrix(sda::sample(sampler, score, count, gen));
    const auto [mean, cov] = score.marginal(0.0);
    const auto m = sda::test::mean_test(x, mean, cov), c = sda::test::covariance_test(x, mean, cov);
    CHECK_MESSAGE(m.pass(), name, ": mean statistic ", m.value, " above its 0.999 quantile ", m.threshold);
    CHECK_MESSAGE(c.pass(), name, ": covariance statistic ", c.value, " above its 0.999 quantile ", c.threshold);
}

}  // namespace

// Steps: first-order samplers need 2048 steps for their O(1/steps) covariance
// bias to fall well inside the Monte-Carlo error of 4096 samples (with 1024
// steps and 10^5 samples, DDPM on the linear-alpha VP schedule gives a
// covariance statistic of 438 against a 0.999 quantile of 47); Heun is second
// order and needs 256. The VE mean is off by about
// m sqrt(S) / sigma_max = 2% of a standard deviation because samplers start
// from N(0, sigma_max^2) rather than N(m, S + sigma_max^2): inside the error of
// 4096 samples. The Langevin corrector uses the batch step (see the next test).
TEST_CASE_TEMPLATE_DEFINE("prior sampling reproduces N(m, S) for every sampler", Schedule, prior_sampling) {
    const Schedule schedule{};
    constexpr std::size_t count = 4096, steps = 2048;
    check_prior(schedule, sda::PredictorCorrector{.steps = steps, .corrector = {.corrections = 0}}, "PC, C = 0",
                count);
    check_prior(schedule,
                sda::PredictorCorrector{.steps = steps,
                                        .corrector = {.corrections = 1, .tau = 0.01, .step = sda::correctors::LangevinStep::batch}},
                "PC, C = 1", count);
    check_prior(schedule, sda::DDPM{.steps = steps}, "DDPM", count);
    check_prior(schedule, sda::DDIM{.steps = steps, .predictor = {.eta = 0.5}}, "DDIM, eta = 0.5", count);
    check_prior(schedule, sda::Heun{.steps = 256}, "Heun", count);
}
TEST_CASE_TEMPLATE_APPLY(prior_sampling, std::tuple<sda::VPCosine, sda::VPLinear, sda::VPExponential, sda::SubVP<>,
                                                    sda::SubSubVP<>, sda::VE, sda::Rectified>);

TEST_CASE("langevin corrector: per-sample steps target p |score|^2, batch steps target p") {
    // At fixed s, many small Langevin steps from exact samples of p(x(s)) = N(mu m, V).
    // The paper's per-sample step h(x) = tau sigma^2 / mean(eps^2) converges to
    // q ~ p |score|^2, whose covariance is V + 2 I / tr(V^-1) (mean unchanged);
    // the batch step keeps V up to its O(tau) discretisation bias (~1% here).
    const auto score = target_score(sda::VPCosine{});
    const double s = 0.3;
    const auto [mean, V] = score.marginal(s);
    const Eigen::MatrixXd distorted = V + 2.0 / V.inverse().trace() * Eigen::MatrixXd::Identity(6, 6);
    const Eigen::LLT<Eigen::MatrixXd> llt(V);
    constexpr std::size_t count = 4096;

    auto run = [&](sda::correctors::LangevinStep step) {
        sda::Generator gen(77);
        Tensor<double> z = sda::CpuBackend<double>::normal({count, 3, 2}, gen);
        Tensor<double> x = sda::empty_tensor<double>({count, 3, 2});
        sda::rows_view(x) = (sda::rows_view(z) * Eigen::MatrixXd(llt.matrixL()).transpose()).rowwise() + mean.transpose();
        const sda::correctors::Langevin langevin{.corrections = 3000, .tau = 0.01, .step = step};
        return sda::test::as_matrix(langevin.correct(score, x, s, gen));
    };

    const Eigen::MatrixXd per_sample = run(sda::correctors::LangevinStep::per_sample);
    const auto distorted_cov = sda::test::covariance_entries_test(per_sample, mean, distorted);
    CHECK_MESSAGE(distorted_cov.pass(), "per-sample step: largest |z| ", distorted_cov.value, " against V + 2I/tr(V^-1)");
    CHECK(sda::test::covariance_entries_test(per_sample, mean, V).value > 3.0 * distorted_cov.threshold);
    CHECK(sda::test::mean_test(per_sample, mean, distorted).pass());

    const Eigen::MatrixXd batch = run(sda::correctors::LangevinStep::batch);
    const auto exact_cov = sda::test::covariance_entries_test(batch, mean, V);
    CHECK_MESSAGE(exact_cov.pass(), "batch step: largest |z| ", exact_cov.value, " against V");
    CHECK(sda::test::mean_test(batch, mean, V).pass());
}

TEST_CASE("samplers: invalid parameters throw sda::error naming them") {
    const auto score = target_score(sda::VPCosine{});
    sda::Generator gen(1);
    CHECK_THROWS_WITH_AS(sda::sample(sda::PredictorCorrector{.steps = 0}, score, 4, gen),
                         "sda::ReverseDiffusion: steps must be >= 1, got 0", sda::error);
    CHECK_THROWS_WITH_AS(sda::sample(sda::PredictorCorrector{.corrector = {.tau = -1.0}}, score, 4, gen),
                         "sda::correctors::Langevin: tau must be finite and positive, got -1", sda::error);
    CHECK_THROWS_AS(sda::sample(sda::DDIM{.predictor = {.eta = 2.0}}, score, 4, gen), sda::error);
    CHECK_THROWS_WITH_AS(sda::sample(sda::Heun{}, score, 0, gen), "sda::sample: batch must be >= 1, got 0", sda::error);
    CHECK_THROWS_WITH_AS(sda::DDIM{}.run(score, sda::Tensor<double>(xt::zeros<double>({4, 2, 3})), gen),
                         "sda::ReverseDiffusion: x has shape [4, 2, 3], the model's events are [3, 2]", sda::error);
}

TEST_CASE("samplers: the paper's predictor with C = 0 is DDIM with eta = 0, and callbacks see every step") {
    const auto score = target_score(sda::VPCosine{});
    sda::Generator a(5), b(5);
    const Tensor<double> pc = sda::sample(sda::PredictorCorrector{.steps = 16, .corrector = {.corrections = 0}}, score, 8, a);
    const Tensor<double> ddim = sda::sample(sda::DDIM{.steps = 16}, score, 8, b);
    CHECK(pc == ddim);
    struct Counter {
        std::size_t calls = 0;
        double last_t = 1.0;
        void on_step(std::size_t k, std::size_t steps, double t) {
            CHECK(k == calls + 1);
            CHECK(steps == 16);
            CHECK(t < last_t);
            ++calls, last_t = t;
        }
    } counter;
    sda::sample(sda::DDIM{.steps = 16}, score, 2, a, counter);
    CHECK(counter.calls == 16);
    CHECK(counter.last_t == 0.0);
}

namespace {

/// The exact Gaussian score, except that sample `bad` of every batch turns NaN once t < 0.5.
struct Poisoned {
    sda::GaussianScore<sda::VPCosine> exact;
    std::size_t bad = 2;
    auto backend() const { return exact.backend(); }
    const sda::VPCosine& schedule() const { return exact.schedule(); }
    const sda::Shape& event_shape() const { return exact.event_shape(); }
    Tensor<double> eps(const Tensor<double>& x, double t) const {
        Tensor<double> out = exact.eps(x, t);
        if (t < 0.5 && out.shape()[0] > bad) out(bad, 0, 0) = std::nan("");
        return out;
    }
};

}  // namespace

TEST_CASE("samplers: a NaN never passes silently: it fails, or is reported once per sample") {
    const Poisoned model{target_score(sda::VPCosine{})};
    sda::Generator gen(3);
    // the default fails fast, naming the sample, the step and t: DDIM evaluates eps at the start
    // of each step, and the first start below 0.5 is t = 1 - 9/16, in step 10, which ends at 0.375
    CHECK_THROWS_WITH_AS(sda::sample(sda::DDIM{.steps = 16}, model, 4, gen),
                         doctest::Contains("sample(s) 2 of 4 became NaN or infinite at step 10 of 16 (t = 0.375)"),
                         sda::error);
    // reporting lets the others finish, each bad sample told once
    struct Health {
        std::vector<std::pair<std::size_t, std::vector<std::size_t>>> events;
        void on_nonfinite(std::size_t k, double, const std::vector<std::size_t>& samples) { events.push_back({k, samples}); }
    } health;
    const Tensor<double> x = sda::sample(sda::DDIM{.steps = 16, .nonfinite = sda::NonFinite::report}, model, 4, gen, health);
    REQUIRE(health.events.size() == 1);
    CHECK(health.events[0].first == 10);
    CHECK(health.events[0].second == std::vector<std::size_t>{2});
    for (std::size_t b = 0; b < 4; ++b) {
        const std::size_t per = x.size() / 4;
        const bool finite = std::all_of(x.data() + b * per, x.data() + (b + 1) * per, [](double v) { return std::isfinite(v); });
        CHECK_MESSAGE(finite == (b != 2), "sample ", b);
    }
    // a NaN or Inf in the initial state is refused before the first step
    Tensor<double> start = xt::zeros<double>({3, 3, 2});
    start(1, 2, 1) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(sda::DDIM{}.run(target_score(sda::VPCosine{}), start, gen),
                         "sda::ReverseDiffusion: the initial state x(1) has NaN or infinite entries in sample(s) 1",
                         sda::error);
}

TEST_CASE("models: a diffusion time outside [0, 1], or NaN, is refused") {
    const auto score = target_score(sda::VPCosine{});
    const Tensor<double> x = xt::zeros<double>({2, 3, 2});
    for (double t : {-0.5, 2.0, 1.0 + 1e-9, std::nan(""), std::numeric_limits<double>::infinity()})
        CHECK_THROWS_WITH_AS(score.eps(x, t), doctest::Contains("is outside [0, 1]"), sda::error);
    CHECK_NOTHROW(score.eps(x, 0.0));
    CHECK_NOTHROW(score.eps(x, 1.0));
}
