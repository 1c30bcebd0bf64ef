// sda/sample/reverse.hpp: `ReverseDiffusion<Predictor, Corrector>`, the one
// sampler loop, and the shipped samplers (docs/concepts/sampler.md) as aliases of it.
//
// The time grid is uniform from t = 1 to t = 0 in `steps` steps, as in the
// paper's code: after the predictor moves x(t_k) to x(t_{k+1}), the corrector
// runs at t_{k+1}.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/sample/concepts.hpp"
#include "sda/sample/correctors.hpp"
#include "sda/sample/predictors.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

/// A callback that does nothing; any type with `on_step(k, steps, t)` may replace it, and
/// one with `on_nonfinite(k, t, samples)` hears of samples that became NaN or infinite.
struct NoCallback {};

/// What a sampler does when a sample becomes NaN or infinite (a diverging guidance, a
/// step too large for the model): `fail` throws `sda::error` naming the samples, the step
/// and t (the default); `report` lets the other samples finish and tells the callback's
/// `on_nonfinite(k, t, samples)` once per sample, at the step it went bad.
enum class NonFinite { fail, report };

namespace detail {

/// The samples of `x` with a NaN or infinite entry (all of them when the backend cannot say which).
template <class B, class X>
std::vector<std::size_t> non_finite_samples(const B& backend, const X& x) {
    if constexpr (requires { backend.non_finite_samples(x); }) {
        return backend.non_finite_samples(x);
    } else {
        std::vector<std::size_t> all(backend.shape(x)[0]);
        for (std::size_t b = 0; b < all.size(); ++b) all[b] = b;
        return all;
    }
}

}  // namespace detail

template <class P, class C = correctors::None>
struct ReverseDiffusion {
    std::size_t steps = 256;  ///< number of predictor steps from t = 1 to 0
    P predictor{};
    C corrector{};
    NonFinite nonfinite = NonFinite::fail;  ///< when a sample becomes NaN or infinite

    void validate() const {
        detail::require(steps >= 1, "sda::ReverseDiffusion: steps must be >= 1, got ", steps);
        if constexpr (requires { predictor.validate(); }) predictor.validate();
        if constexpr (requires { corrector.validate(); }) corrector.validate();
    }

    /// Integrates x(1) -> x(0). `callback.on_step(k, steps, t)` runs after step k (1-based) when
    /// present. `x` must be finite; after every step the samples are checked for NaN and Inf
    /// (one pass over x) and handled by `nonfinite`. A backend on an asynchronous device may
    /// defer the checks (`be.defers_checks()`, `finite_flag`, `first_false`: TorchBackend on
    /// CUDA): with `NonFinite::fail`, the run then waits for the device only after its last
    /// step, and fails there naming the first step that went bad.
    template <EpsModel M, class Callback = NoCallback>
        requires Predictor<P, M> && Corrector<C, M>
    tensor_t<M> run(const M& model, tensor_t<M> x, Generator& gen, Callback&& callback = {}) const {
        validate();
        const Shape shape = model.backend().shape(x);
        detail::require(shape.size() == model.event_shape().size() + 1 && event_shape_of(shape) == Shape(model.event_shape()),
                        "sda::ReverseDiffusion: x has shape ", format_shape(shape), ", the model's events are ",
                        format_shape(model.event_shape()));
        const auto be = model.backend();
        if constexpr (requires { be.defers_checks(); })
            if (nonfinite == NonFinite::fail && be.defers_checks()) return run_deferred(be, model, std::move(x), gen, callback);
        if (!be.all_finite(x))
            report_nonfinite(be, x, 0, 1.0, "the initial state x(1) has NaN or infinite entries in sample(s) ");
        std::vector<bool> reported(shape[0], false);
        for (std::size_t k = 0; k < steps; ++k) {
            const double s = time(k + 1);
            x = advance(model, std::move(x), k, gen);
            if (!be.all_finite(x)) {
                if (nonfinite == NonFinite::fail) report_nonfinite(be, x, k + 1, s, "sample(s) ");
                std::vector<std::size_t> fresh;
                for (std::size_t b : detail::non_finite_samples(be, x))
                    if (!reported[b]) reported[b] = true, fresh.push_back(b);
                if constexpr (requires { callback.on_nonfinite(k + 1, s, fresh); })
                    if (!fresh.empty()) callback.on_nonfinite(k + 1, s, fresh);
            }
            after_step(callback, k);
        }
        return x;
    }

private:
    double time(std::size_t k) const { return 1.0 - static_cast<double>(k) / static_cast<double>(steps); }

    /// Step k: the predictor from t_k to t_{k+1}, then the corrector at t_{k+1}.
    template <class M, class X>
    X advance(const M& model, X x, std::size_t k, Generator& gen) const {
        x = predictor.step(model, x, time(k), time(k + 1), gen);
        return corrector.correct(model, std::move(x), time(k + 1), gen);
    }

    template <class Callback>
    void after_step(Callback& callback, std::size_t k) const {
        if constexpr (requires { callback.on_step(k + 1, steps, time(k + 1)); }) callback.on_step(k + 1, steps, time(k + 1));
    }

    /// `run` with the checks kept on the device (flag k: x after step k, 0 the initial state) and read once.
    template <class B, class M, class X, class Callback>
    X run_deferred(const B& be, const M& model, X x, Generator& gen, Callback& callback) const {
        std::vector<decltype(be.finite_flag(x))> flags;
        flags.reserve(steps + 1);
        flags.push_back(be.finite_flag(x));
        for (std::size_t k = 0; k < steps; ++k) {
            x = advance(model, std::move(x), k, gen);
            flags.push_back(be.finite_flag(x));
            after_step(callback, k);
        }
        const std::size_t k = be.first_false(flags);
        if (k == 0) report_nonfinite(be, x, 0, 1.0, "the initial state x(1) has NaN or infinite entries (now) in sample(s) ");
        if (k < flags.size()) report_nonfinite(be, x, k, time(k), "sample(s) ");
        return x;
    }

    template <class B, class X>
    [[noreturn]] void report_nonfinite(const B& be, const X& x, std::size_t k, double t, const char* what) const {
        const std::vector<std::size_t> bad = detail::non_finite_samples(be, x);
        std::string list;
        for (std::size_t i = 0; i < bad.size() && i < 8; ++i) list += (i ? ", " : "") + std::to_string(bad[i]);
        if (bad.size() > 8) list += " and " + std::to_string(bad.size() - 8) + " more";
        if (k == 0) detail::fail("sda::ReverseDiffusion: ", what, list);
        detail::fail("sda::ReverseDiffusion: ", what, list, " of ", be.shape(x)[0], " became NaN or infinite at step ", k,
                     " of ", steps, " (t = ", t, "); set nonfinite = sda::NonFinite::report to let the others finish");
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
