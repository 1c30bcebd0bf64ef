// sda/guidance/dps.hpp: diffusion posterior sampling (Chung et al., "Diffusion
// posterior sampling for general noisy inverse problems", ICLR 2023).
//
//   grad = -zeta d ||y - A(x_hat)|| / d x(t),   eps_post = eps - sigma grad,
// a step of fixed length zeta along the residual's direction, normalised per
// sample. It ignores the noise level: a heuristic that needs zeta tuned.
#pragma once

#include "sda/core/check.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/guidance/tweedie.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

struct DPS {
    double zeta = 1.0;  ///< step size

    void validate() const { detail::check_positive(zeta, "sda::DPS: zeta"); }

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
        const tensor_t<M> coef = be.safe_div(be.fill_like(norm, zeta), norm);
        const tensor_t<M> grad = detail::denoise_vjp(be, lin, be.scale_rows(coef, ascent), mu, sigma);
        return be.axpby(1.0, lin.eps(), -sigma, grad);
    }
};

}  // namespace sda
