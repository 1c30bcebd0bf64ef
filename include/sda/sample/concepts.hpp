// sda/sample/concepts.hpp: the `Predictor`, `Corrector` and `Sampler` concepts.
//
// A sampler integrates the reverse diffusion from t = 1 to t = 0. The
// predictor-corrector family splits each step in a predictor, moving x(t) to
// x(s) for s < t, and a corrector, moving x(s) towards p(x(s)) at fixed s
// (Song et al., ICLR 2021).
#pragma once

#include <concepts>

#include "sda/fwd.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

/// Requirements, for a model M:
/// - `p.step(model, x, t, s, gen)`: x(t) -> x(s), 0 <= s < t <= 1, for a batch
///   [B, event...]; draws noise from `gen` if it needs any.
/// Optional: `p.validate()`.
template <class P, class M>
concept Predictor = EpsModel<M> && std::copy_constructible<P> &&
    requires(const P& p, const M& model, const tensor_t<M>& x, double t, Generator& gen) {
        { p.step(model, x, t, t, gen) } -> std::same_as<tensor_t<M>>;
    };

/// Requirements, for a model M:
/// - `c.correct(model, x, s, gen)`: x(s) -> x(s), a few steps of a Markov chain
///   that leaves p(x(s)) invariant (or x itself, for no correction).
/// Optional: `c.validate()`.
template <class C, class M>
concept Corrector = EpsModel<M> && std::copy_constructible<C> &&
    requires(const C& c, const M& model, const tensor_t<M>& x, double s, Generator& gen) {
        { c.correct(model, x, s, gen) } -> std::same_as<tensor_t<M>>;
    };

/// Requirements, for a model M:
/// - `s.run(model, x, gen)`: x(1) -> x(0) for a batch drawn at t = 1; throws
///   `sda::error` for invalid parameters (zero steps, ...).
/// Optional: `s.run(model, x, gen, callback)`, calling `callback.on_step(k, steps, t)` after step k.
template <class S, class M>
concept Sampler = EpsModel<M> && requires(const S& s, const M& model, const tensor_t<M>& x, Generator& gen) {
    { s.run(model, x, gen) } -> std::same_as<tensor_t<M>>;
};

}  // namespace sda
