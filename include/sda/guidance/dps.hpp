// sda/guidance/dps.hpp: diffusion posterior sampling (Chung et al., "Diffusion
// posterior sampling for general noisy inverse problems", ICLR 2023).
//
// DPS moves x(t) against the gradient of the residual's norm ||y - A(x_hat)||,
// normalised per sample, by a step of size zeta. Two conventions for zeta:
// - continuous (`DPS{.zeta = z}`): the likelihood score is -z grad ||r||, so
//   eps_post = eps + sigma z grad ||r||; what one step moves then shrinks with
//   the step, and zeta means the same for any number of steps.
// - per step (`DPS::per_step(z, sampler)`), the authors' algorithm and code: every
//   predictor step ends with x(s) -= z grad_{x(t)} ||r||, so the total pull grows
//   with the number of steps. For a DDIM-family predictor x(s) = a x + b eps + c z
//   this is eps_post = eps + (z / |b|) grad ||r||, exact on the sampler's grid.
// It ignores the noise level either way: a heuristic whose zeta needs tuning
// (docs/lorenz63.md shows a sweep).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "sda/core/check.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/guidance/tweedie.hpp"
#include "sda/sample/predictors.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

struct DPS {
    double zeta = 1.0;      ///< step size
    std::size_t steps = 0;  ///< 0: continuous convention; N: per-step convention on a grid of N steps
    double eta = 0.0;       ///< per step: the DDIM eta of the sampler's predictor (1 for ancestral)

    /// DPS in its authors' convention for `sampler`: x(s) -= zeta grad ||y - A(x_hat)|| after each of
    /// the sampler's predictor steps (DDIM, the exponential integrator or Ancestral; Heun has no
    /// such form). A corrector step at time t sees the guidance of the predictor step that starts at t.
    template <class C>
    static DPS per_step(double zeta, const ReverseDiffusion<predictors::DDIM, C>& sampler) {
        return {.zeta = zeta, .steps = sampler.steps, .eta = sampler.predictor.eta};
    }
    template <class C>
    static DPS per_step(double zeta, const ReverseDiffusion<predictors::Ancestral, C>& sampler) {
        return {.zeta = zeta, .steps = sampler.steps, .eta = 1.0};
    }

    void validate() const {
        detail::check_positive(zeta, "sda::DPS: zeta");
        detail::require(std::isfinite(eta) && eta >= 0.0 && eta <= 1.0, "sda::DPS: eta must lie in [0, 1], got ", eta);
    }

    /// The factor of grad ||r|| in eps_post at time t: sigma zeta, or zeta / |b| for the
    /// grid step that starts at t (for t below 1/N, the grid's last step, from 1/N to 0).
    template <class Schedule>
    double scale(const Schedule& schedule, double t) const {
        if (steps == 0) return zeta * schedule.sigma(t);
        const double h = 1.0 / static_cast<double>(steps), start = std::max(t, h);
        const double b = predictors::ddim_coefficients(schedule, start, std::max(0.0, start - h), eta).b;
        return zeta / std::abs(b);
    }

    template <ScoreModel M, class O>
    tensor_t<M> eps(const M& model, const O& obs, const tensor_t<M>& x, double t) const {
        const auto be = model.backend();
        const double mu = model.schedule().mu(t), sigma = model.schedule().sigma(t);
        const auto lin = linearize(model, x, t);
        const tensor_t<M> x_hat = detail::denoise(be, x, lin.eps(), mu, sigma);
        const tensor_t<M> residual = be.sub(obs.y(), obs.op().apply(x_hat));
        // -d||r|| / d x_hat = A^T r / ||r||, per sample
        const tensor_t<M> norm = be.sqrt(be.dot(residual, residual));
        const tensor_t<M> ascent = obs.op().vjp(x_hat, residual);
        const tensor_t<M> coef = be.safe_div(be.fill_like(norm, scale(model.schedule(), t)), norm);
        // -grad_x ||r||, scaled
        const tensor_t<M> descent = detail::denoise_vjp(be, lin, be.scale_rows(coef, ascent), mu, sigma);
        return be.axpby(1.0, lin.eps(), -1.0, descent);
    }
};

}  // namespace sda
