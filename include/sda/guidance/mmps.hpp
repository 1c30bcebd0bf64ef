// sda/guidance/mmps.hpp: moment-matching posterior sampling (Rozet et al.,
// "Learning diffusion priors from observations by expectation maximization",
// NeurIPS 2024).
//
// Approximates p(x | x(t)) by a Gaussian with Tweedie's mean x_hat and
// covariance V = (sigma^2 / mu) d x_hat / d x(t), so that
//   p(y | x(t)) ~= N(y | A(x_hat), Sigma_y + A V A^T).
// Solving (Sigma_y + A V A^T) u = y - A(x_hat) by conjugate gradients (one
// model VJP per iteration; V is symmetric for a true score, so VJPs stand in
// for JVPs) gives the likelihood score grad = (d x_hat / d x(t))^T A^T u. For a
// Gaussian prior and a linear A this is the exact posterior score.
#pragma once

#include <cstddef>

#include "sda/core/error.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/guidance/tweedie.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

struct MMPS {
    std::size_t iterations = 1;  ///< conjugate-gradient iterations (the observation size solves exactly)

    void validate() const {
        detail::require(iterations >= 1, "sda::MMPS: iterations must be >= 1, got ", iterations);
    }

    template <ScoreModel M, class O>
    tensor_t<M> eps(const M& model, const O& obs, const tensor_t<M>& x, double t) const {
        const auto be = model.backend();
        const auto& op = obs.op();
        const double mu = model.schedule().mu(t), sigma = model.schedule().sigma(t);
        const auto lin = linearize(model, x, t);
        const tensor_t<M> x_hat = detail::denoise(be, x, lin.eps(), mu, sigma);
        const tensor_t<M> residual = be.sub(obs.y(), op.apply(x_hat));

        // u -> Sigma_y u + A V A^T u, with V w = (sigma^2 / mu) (d x_hat / d x)^T w
        auto system = [&](const tensor_t<M>& u) {
            const tensor_t<M> w = op.vjp(x_hat, u);
            const tensor_t<M> vw = be.scale(sigma * sigma / mu, detail::denoise_vjp(be, lin, w, mu, sigma));
            return be.add(be.mul(obs.variance(), u), op.jvp(x_hat, vw));
        };
        const tensor_t<M> u = conjugate_gradient(be, system, residual);
        const tensor_t<M> grad = detail::denoise_vjp(be, lin, op.vjp(x_hat, u), mu, sigma);
        return be.axpby(1.0, lin.eps(), -sigma, grad);
    }

private:
    /// Per-sample CG for `system(u) = b` from u = 0; a sample whose residual
    /// vanished stops moving (safe_div gives 0 step).
    template <class Be, class System>
    typename Be::tensor_type conjugate_gradient(const Be& be, System&& system, const typename Be::tensor_type& b) const {
        using tensor = typename Be::tensor_type;
        tensor u = be.scale(0.0, b), r = b, p = b;
        tensor rr = be.dot(r, r);
        for (std::size_t k = 0; k < iterations; ++k) {
            const tensor ap = system(p);
            const tensor alpha = be.safe_div(rr, be.dot(p, ap));
            u = be.add(u, be.scale_rows(alpha, p));
            if (k + 1 == iterations) break;
            r = be.sub(r, be.scale_rows(alpha, ap));
            const tensor rr_next = be.dot(r, r);
            p = be.add(r, be.scale_rows(be.safe_div(rr_next, rr), p));
            rr = rr_next;
        }
        return u;
    }
};

}  // namespace sda
