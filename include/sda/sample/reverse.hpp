// sda/sample/reverse.hpp: `ReverseDiffusion<Predictor, Corrector>`, the one
// sampler loop, and the shipped samplers (docs/concepts/sampler.md) as aliases of it.
//
// The time grid is uniform from t = 1 to t = 0 in `steps` steps, as in the
// paper's code: after the predictor moves x(t_k) to x(t_{k+1}), the corrector
// runs at t_{k+1}.
#pragma once

#include <cstddef>
#include <utility>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/sample/concepts.hpp"
#include "sda/sample/correctors.hpp"
#include "sda/sample/predictors.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

/// A callback that does nothing; any type with `on_step(k, steps, t)` may replace it.
struct NoCallback {};

template <class P, class C = correctors::None>
struct ReverseDiffusion {
    std::size_t steps = 256;  ///< number of predictor steps from t = 1 to 0
    P predictor{};
    C corrector{};

    void validate() const {
        detail::require(steps >= 1, "sda::ReverseDiffusion: steps must be >= 1, got ", steps);
        if constexpr (requires { predictor.validate(); }) predictor.validate();
        if constexpr (requires { corrector.validate(); }) corrector.validate();
    }

    /// Integrates x(1) -> x(0). `callback.on_step(k, steps, t)` runs after step k (1-based) when present.
    template <EpsModel M, class Callback = NoCallback>
        requires Predictor<P, M> && Corrector<C, M>
    tensor_t<M> run(const M& model, tensor_t<M> x, Generator& gen, Callback&& callback = {}) const {
        validate();
        const Shape shape = model.backend().shape(x);
        detail::require(shape.size() == model.event_shape().size() + 1 && event_shape_of(shape) == Shape(model.event_shape()),
                        "sda::ReverseDiffusion: x has shape ", format_shape(shape), ", the model's events are ",
                        format_shape(model.event_shape()));
        for (std::size_t k = 0; k < steps; ++k) {
            const double t = 1.0 - static_cast<double>(k) / static_cast<double>(steps);
            const double s = 1.0 - static_cast<double>(k + 1) / static_cast<double>(steps);
            x = predictor.step(model, x, t, s, gen);
            x = corrector.correct(model, std::move(x), s, gen);
            if constexpr (requires { callback.on_step(k + 1, steps, s); }) callback.on_step(k + 1, steps, s);
        }
        return x;
    }
};

/// The paper's sampler: exponential-integrator predictor, C Langevin corrections.
using PredictorCorrector = ReverseDiffusion<predictors::ExponentialIntegrator, correctors::Langevin>;
/// Ancestral sampling (Ho et al., 2020).
using DDPM = ReverseDiffusion<predictors::Ancestral>;
/// DDIM with its eta (Song et al., 2021); eta = 0 is deterministic.
using DDIM = ReverseDiffusion<predictors::DDIM>;
/// Heun on the probability-flow ODE; 2 model evaluations per step, deterministic.
using Heun = ReverseDiffusion<predictors::Heun>;

}  // namespace sda
