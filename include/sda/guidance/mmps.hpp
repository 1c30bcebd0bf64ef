// sda/guidance/mmps.hpp: moment-matching posterior sampling (Rozet et al.,
// "Learning diffusion priors from observations by expectation maximization",
// NeurIPS 2024).
//
// Approximates p(x | x(t)) by a Gaussian with Tweedie's mean x_hat and
// covariance V = (sigma^2 / mu) d x_hat / d x(t), so that
//   p(y | x(t)) ~= N(y | A(x_hat), Sigma_y + A V A^T + gamma (sigma / mu)^2 A A^T).
// Solving that system for u = (...)^{-1} (y - A(x_hat)) by conjugate gradients
// (one model VJP per iteration; V is symmetric for a true score, so VJPs stand
// in for JVPs) gives the likelihood score grad = (d x_hat / d x(t))^T A^T u.
// For a Gaussian prior, a linear A and gamma = 0 this is the exact posterior score.
//
// With a learned eps-network, x_hat = (x - sigma eps) / mu and V = (sigma / mu)^2
// (I - sigma d eps / d x) magnify the network's errors by sigma / mu and
// (sigma / mu)^2 sigma: 10^3 and 10^6 at t = 1 under the VP schedules' eta = 1e-3.
// Near t = 1, V's estimate is then indefinite for a large share of samples (on
// Lorenz-63 with the K = 2 prior its Rayleigh quotient along the residual reaches
// -6 10^4 where the true value is about 1), and one CG step along a direction of
// negative or vanishing curvature throws a sample far out of the data's range.
// Two remedies, both inactive on a true score:
// - curvature guard: a covariance is positive semi-definite, so a sample whose
//   A V A^T is not positive along CG's search direction stops there (Steihaug's
//   rule for truncated CG), keeping the solution so far: no guidance at the first
//   iteration, the last iterate later;
// - `gamma`: the denoiser's error as extra variance, gamma (sigma / mu)^2 (as in
//   SDA-gamma), which keeps the solve well-conditioned where x_hat is least
//   accurate. 0 (the default) is the published method.
#pragma once

#include <cstddef>

#include "sda/core/check.hpp"
#include "sda/core/error.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/guidance/tweedie.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

struct MMPS {
    std::size_t iterations = 1;  ///< conjugate-gradient iterations (the observation size solves exactly)
    double gamma = 0.0;          ///< denoiser-error variance gamma (sigma / mu)^2 added to the covariance

    void validate() const {
        detail::require(iterations >= 1, "sda::MMPS: iterations must be >= 1, got ", iterations);
        detail::check_non_negative(gamma, "sda::MMPS: gamma");
    }

    template <ScoreModel M, class O>
    tensor_t<M> eps(const M& model, const O& obs, const tensor_t<M>& x, double t) const {
        const auto be = model.backend();
        const auto& op = obs.op();
        const double mu = model.schedule().mu(t), sigma = model.schedule().sigma(t);
        const double inflation = gamma * (sigma / mu) * (sigma / mu);
        const auto lin = linearize(model, x, t);
        const tensor_t<M> x_hat = detail::denoise(be, x, lin.eps(), mu, sigma);
        const tensor_t<M> residual = be.sub(obs.y(), op.apply(x_hat));

        // u -> N u + A V A^T u, with N = Sigma_y + gamma (sigma/mu)^2 A A^T (the noise terms) and
        // V w = (sigma^2 / mu) (d x_hat / d x)^T w; returns both terms, the guard needs V's
        struct Terms {
            tensor_t<M> noise, covariance;
        };
        auto system = [&](const tensor_t<M>& u) {
            const tensor_t<M> w = op.vjp(x_hat, u);
            const tensor_t<M> vw = be.scale(sigma * sigma / mu, detail::denoise_vjp(be, lin, w, mu, sigma));
            tensor_t<M> noise = be.mul(obs.variance(), u);
            if (inflation > 0.0) noise = be.add(noise, be.scale(inflation, op.jvp(x_hat, w)));
            return Terms{std::move(noise), op.jvp(x_hat, vw)};
        };
        const tensor_t<M> u = conjugate_gradient(be, system, residual);
        const tensor_t<M> grad = detail::denoise_vjp(be, lin, op.vjp(x_hat, u), mu, sigma);
        return be.axpby(1.0, lin.eps(), -sigma, grad);
    }

private:
    /// Per-sample CG for `N u + C u = b` from u = 0 (`system(p)` returns N p and C p). A
    /// sample stops moving once its residual vanishes (safe_div gives a zero step) or once
    /// C, a covariance, is not positive along its search direction (the curvature guard).
    template <class Be, class System>
    typename Be::tensor_type conjugate_gradient(const Be& be, System&& system, const typename Be::tensor_type& b) const {
        using tensor = typename Be::tensor_type;
        tensor u = be.scale(0.0, b), r = b, p = b;
        tensor rr = be.dot(r, r);
        tensor active;  // [B]: 1 while a sample's search directions have positive covariance curvature
        for (std::size_t k = 0; k < iterations; ++k) {
            const auto [np, cp] = system(p);
            const tensor ap = be.add(np, cp);
            const tensor curvature = be.positive(be.dot(p, cp));
            active = k == 0 ? curvature : be.mul(active, curvature);
            const tensor alpha = be.mul(active, be.safe_div(rr, be.dot(p, ap)));
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
