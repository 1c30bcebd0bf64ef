// examples/extend.cpp: adding your own policies. A schedule, an observation
// operator and a predictor written outside sda, each checked by its concept,
// composed with sda's own pieces. docs/concepts/*.md quote this file.
#include <sda/sda.hpp>

#include <cmath>
#include <cstdio>

// --- a noise schedule: variance exploding with a linear sweep of sigma ---------------
// NoiseSchedule asks for mu(t) and sigma(t), with sigma / mu increasing.
struct LinearVE {
    double sigma_min = 1e-3, sigma_max = 20.0;
    double mu(double) const { return 1.0; }
    double sigma(double t) const { return sigma_min + (sigma_max - sigma_min) * t; }
};
static_assert(sda::NoiseSchedule<LinearVE>);

// --- an observation operator: the mean of each state's coordinates ------------------
// [B, L, D] -> [B, L]; linear, so jvp is apply and vjp spreads v evenly.
struct StateMean {
    sda::Shape output_shape(const sda::Shape& event) const {
        if (event.size() != 2) throw sda::error("StateMean: events must be [L, D]");
        return {event[0]};
    }
    sda::Tensor<double> apply(const sda::Tensor<double>& x) const { return xt::mean(x, {2}); }
    sda::Tensor<double> vjp(const sda::Tensor<double>& x, const sda::Tensor<double>& v) const {
        const double d = static_cast<double>(x.shape()[2]);
        return xt::broadcast(xt::view(v, xt::all(), xt::all(), xt::newaxis()) / d, x.shape());
    }
    sda::Tensor<double> jvp(const sda::Tensor<double>&, const sda::Tensor<double>& dx) const { return apply(dx); }
};
static_assert(sda::ObservationOperator<StateMean, sda::CpuBackend<double>>);

// --- a predictor: Euler-Maruyama on the reverse SDE (Song et al., ICLR 2021) --------
// dx = [f x - g^2 score] dt + g dw with f = dlog(mu)/dt, g^2 = d(sigma^2)/dt - 2 f sigma^2
// and score = -eps / sigma. Written with backend operations only, so it runs on
// whatever backend the model lives on.
struct EulerMaruyama {
    template <sda::EpsModel M>
    sda::tensor_t<M> step(const M& model, const sda::tensor_t<M>& x, double t, double s, sda::Generator& gen) const {
        const auto be = model.backend();
        const auto& schedule = model.schedule();
        const double h = 1e-6, dt = t - s, sigma = schedule.sigma(t);
        const double f = (std::log(schedule.mu(t)) - std::log(schedule.mu(t - h))) / h;
        const double g2 = (std::pow(schedule.sigma(t), 2) - std::pow(schedule.sigma(t - h), 2)) / h - 2.0 * f * sigma * sigma;
        // x(s) = (1 - f dt) x - (g^2 / sigma) dt eps + g sqrt(dt) z
        const auto drift = be.axpby(1.0 - f * dt, x, -g2 / sigma * dt, model.eps(x, t));
        return be.axpby(1.0, drift, std::sqrt(g2 * dt), be.normal(be.shape(x), gen));
    }
};
using EulerMaruyamaSampler = sda::ReverseDiffusion<EulerMaruyama>;

int main() {
    // An exact Gaussian prior over 9 states of the damped spring, on the custom schedule.
    const auto chain = sda::systems::LinearGaussianChain::damped_spring();
    const auto [mean, cov] = chain.joint_law(9);
    const sda::GaussianScore prior(LinearVE{}, {9, 4}, mean, cov);

    // Observe the coordinate mean of every state, then sample with the custom predictor.
    sda::Generator gen(3);
    const sda::Tensor<double> truth = chain.simulate(1, 9, gen);
    const sda::GaussianObservation obs(StateMean{}, sda::Tensor<double>(xt::view(StateMean{}.apply(truth), 0)), 0.01);
    const auto posterior = sda::guide(prior, obs, sda::MMPS{.iterations = 3});
    const sda::Tensor<double> x = sda::sample(EulerMaruyamaSampler{.steps = 500}, posterior, 512, gen);

    // The posterior of the state means must sit within a few noise std of the observation.
    const sda::Tensor<double> observed_mean = xt::mean(StateMean{}.apply(x), {0});
    const double worst = xt::amax(xt::abs(observed_mean - xt::view(obs.y(), xt::all())))();
    std::printf("largest gap between the posterior's state means and the observation: %.3f (noise std 0.1)\n", worst);
    return worst < 0.1 ? 0 : 1;
}
