// sda/sample/correctors.hpp: correctors, applied at fixed diffusion time after
// each predictor step.
//
// `Langevin` is the corrector of Rozet & Louppe (2023): C steps of Langevin
// Monte Carlo on p(x(s)),
//   delta = tau / mean(eps^2),   x <- x - (delta eps(x, s) + sqrt(2 delta) z) sigma(s),
// i.e. x <- x + h score + sqrt(2 h) z with h = delta sigma^2.
//
// The paper takes mean(eps^2) per sample, over the event. That step depends on
// the state, h(x) ~ 1 / |score(x)|^2, and a Langevin chain with a state-dependent
// step does not target p: as tau -> 0 it converges to q(x) ~ p(x) |score(x)|^2
// (its Fokker-Planck equation balances at h q ~ p). For a Gaussian N(m, V), q
// has mean m and covariance V + 2 I / tr(V^-1) (tests/sample/test_samplers.cpp
// checks this law): negligible when many directions share the smallest
// variance, as for high-dimensional trajectories, but large for small events.
// `LangevinStep::batch` takes the mean over the whole batch instead (the step
// of Song et al., ICLR 2021), a constant step whose bias vanishes as tau -> 0.
#pragma once

#include <cmath>
#include <cstddef>

#include "sda/core/check.hpp"
#include "sda/score/concepts.hpp"

namespace sda::correctors {

/// No correction.
struct None {
    template <EpsModel M>
    tensor_t<M> correct(const M&, tensor_t<M> x, double, Generator&) const {
        return x;
    }
};

/// How the Langevin step is normalised: by mean(eps^2) over each sample's event
/// (the paper), or over the whole batch (state-independent within the batch).
enum class LangevinStep { per_sample, batch };

/// C Langevin corrections with step tau / mean(eps^2).
struct Langevin {
    std::size_t corrections = 1;                    ///< C; 0 turns the corrector off
    double tau = 0.25;                              ///< relative step size
    LangevinStep step = LangevinStep::per_sample;  ///< the paper's normalisation by default

    void validate() const { sda::detail::check_positive(tau, "sda::correctors::Langevin: tau"); }

    template <EpsModel M>
    tensor_t<M> correct(const M& model, tensor_t<M> x, double s, Generator& gen) const {
        const auto be = model.backend();
        const double sigma = model.schedule().sigma(s);
        for (std::size_t c = 0; c < corrections; ++c) {
            const tensor_t<M> eps = model.eps(x, s);
            const tensor_t<M> energy =
                step == LangevinStep::batch ? be.mean_like(be.mean_square(eps)) : be.mean_square(eps);
            const tensor_t<M> delta = be.safe_div(be.fill_like(energy, tau), energy);
            const tensor_t<M> noise = be.scale_rows(be.sqrt(be.scale(2.0, delta)), be.normal(be.shape(x), gen));
            x = be.axpby(1.0, x, -sigma, be.add(be.scale_rows(delta, eps), noise));
        }
        return x;
    }
};

}  // namespace sda::correctors
