// sda/sample/predictors.hpp: predictors, one reverse step x(t) -> x(s).
//
// - `DDIM` (Song et al., "Denoising diffusion implicit models", ICLR 2021) with
//   x_hat = (x - sigma_t eps) / mu_t, sigma_{t|s}^2 = sigma_t^2 - (mu_t/mu_s)^2 sigma_s^2,
//   s_eta = eta (sigma_s / sigma_t) sigma_{t|s}:
//     x(s) = mu_s x_hat + sqrt(sigma_s^2 - s_eta^2) eps + s_eta z.
//   With eta = 0 this is the exponential integrator of the paper (Zhang & Chen,
//   "DEIS", ICLR 2023): x(s) = (mu_s/mu_t) x + (sigma_s - (mu_s/mu_t) sigma_t) eps.
// - `Ancestral` (Ho et al., "DDPM", NeurIPS 2020): a draw from q(x(s) | x(t), x = x_hat),
//   which is DDIM with eta = 1 (the coefficients coincide, see docs/concepts/sampler.md).
// - `Heun`: second-order Heun on the probability-flow ODE. In y = x / mu and
//   lambda = sigma / mu it reads dy / dlambda = eps(mu y, t) (Karras et al., "EDM",
//   NeurIPS 2022); two model evaluations per step, no noise.
#pragma once

#include <algorithm>
#include <cmath>

#include "sda/core/error.hpp"
#include "sda/score/concepts.hpp"

namespace sda::predictors {

/// The coefficients of a DDIM step with parameter eta from t to s on `schedule`:
///   x(s) = a x(t) + b eps(x(t), t) + c z,  z ~ N(0, I).
/// Guidance that works per step (DPS in its authors' convention) reads b from here.
struct StepCoefficients {
    double a, b, c;
};

template <class Schedule>
StepCoefficients ddim_coefficients(const Schedule& schedule, double t, double s, double eta) {
    const double mu_t = schedule.mu(t), sigma_t = schedule.sigma(t);
    const double mu_s = schedule.mu(s), sigma_s = schedule.sigma(s);
    const double a = mu_s / mu_t;
    if (eta == 0.0) return {a, sigma_s - a * sigma_t, 0.0};
    const double ratio = mu_t / mu_s;
    const double transition = std::max(0.0, sigma_t * sigma_t - ratio * ratio * sigma_s * sigma_s);
    const double noise = eta * sigma_s / sigma_t * std::sqrt(transition);
    const double kept = std::sqrt(std::max(0.0, sigma_s * sigma_s - noise * noise));
    // x(s) = mu_s (x - sigma_t eps) / mu_t + kept eps + noise z
    return {a, kept - a * sigma_t, noise};
}

namespace detail {

template <EpsModel M>
tensor_t<M> ddim_step(const M& model, const tensor_t<M>& x, double t, double s, double eta, Generator& gen) {
    const auto be = model.backend();
    const StepCoefficients k = ddim_coefficients(model.schedule(), t, s, eta);
    const tensor_t<M> eps = model.eps(x, t);
    if (eta == 0.0) return be.axpby(k.a, x, k.b, eps);
    return be.axpby(1.0, be.axpby(k.a, x, k.b, eps), k.c, be.normal(be.shape(x), gen));
}

}  // namespace detail

/// DDIM step; eta = 0 is the paper's exponential integrator, eta = 1 is DDPM.
struct DDIM {
    double eta = 0.0;

    void validate() const {
        sda::detail::require(std::isfinite(eta) && eta >= 0.0 && eta <= 1.0,
                             "sda::predictors::DDIM: eta must lie in [0, 1], got ", eta);
    }
    template <EpsModel M>
    tensor_t<M> step(const M& model, const tensor_t<M>& x, double t, double s, Generator& gen) const {
        return detail::ddim_step(model, x, t, s, eta, gen);
    }
};

/// The exponential-integrator predictor of Rozet & Louppe (2023): DDIM with eta = 0.
using ExponentialIntegrator = DDIM;

/// DDPM ancestral step: x(s) ~ q(x(s) | x(t), x_hat).
struct Ancestral {
    template <EpsModel M>
    tensor_t<M> step(const M& model, const tensor_t<M>& x, double t, double s, Generator& gen) const {
        return detail::ddim_step(model, x, t, s, 1.0, gen);
    }
};

/// Heun's method on the probability-flow ODE dy/dlambda = eps, y = x / mu, lambda = sigma / mu.
struct Heun {
    template <EpsModel M>
    tensor_t<M> step(const M& model, const tensor_t<M>& x, double t, double s, Generator&) const {
        const auto be = model.backend();
        const auto& schedule = model.schedule();
        const double mu_t = schedule.mu(t), mu_s = schedule.mu(s);
        const double dlambda = schedule.sigma(s) / mu_s - schedule.sigma(t) / mu_t;
        const tensor_t<M> d1 = model.eps(x, t);
        // Euler: x' = mu_s (x / mu_t + dlambda d1)
        const tensor_t<M> euler = be.axpby(mu_s / mu_t, x, mu_s * dlambda, d1);
        const tensor_t<M> d2 = model.eps(euler, s);
        // trapezoid: x(s) = mu_s (x / mu_t + dlambda (d1 + d2) / 2)
        return be.axpby(1.0, euler, 0.5 * mu_s * dlambda, be.sub(d2, d1));
    }
};

}  // namespace sda::predictors
