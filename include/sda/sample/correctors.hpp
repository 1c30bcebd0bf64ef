// sda/sample/correctors.hpp: correctors, applied at fixed diffusion time after
// each predictor step.
//
// `Langevin` is the corrector of Rozet & Louppe (2023): C steps of Langevin
// Monte Carlo on p(x(s)), with a step that adapts per sample,
//   delta = tau / mean(eps^2),   x <- x - (delta eps(x, s) + sqrt(2 delta) z) sigma(s),
// i.e. x <- x + delta sigma^2 score + sqrt(2 delta sigma^2) z.
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

/// C Langevin corrections with step tau / mean(eps^2) per sample.
struct Langevin {
    std::size_t corrections = 1;  ///< C; 0 turns the corrector off
    double tau = 0.25;            ///< relative step size

    void validate() const { sda::detail::check_positive(tau, "sda::correctors::Langevin: tau"); }

    template <EpsModel M>
    tensor_t<M> correct(const M& model, tensor_t<M> x, double s, Generator& gen) const {
        const auto be = model.backend();
        const double sigma = model.schedule().sigma(s);
        for (std::size_t c = 0; c < corrections; ++c) {
            const tensor_t<M> eps = model.eps(x, s);
            const tensor_t<M> energy = be.mean_square(eps);
            const tensor_t<M> delta = be.safe_div(be.fill_like(energy, tau), energy);
            const tensor_t<M> noise = be.scale_rows(be.sqrt(be.scale(2.0, delta)), be.normal(be.shape(x), gen));
            x = be.axpby(1.0, x, -sigma, be.add(be.scale_rows(delta, eps), noise));
        }
        return x;
    }
};

}  // namespace sda::correctors
