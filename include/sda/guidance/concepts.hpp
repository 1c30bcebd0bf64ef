// sda/guidance/concepts.hpp: the `Guidance` concept, approximate likelihood
// scores added to a prior at sampling time only (zero-shot observations).
//
// A guidance policy turns the prior's eps into the posterior's:
//   eps_post(x, t) = eps(x, t) - sigma(t) grad_x log p(y | x(t)),
// each policy approximating the intractable likelihood p(y | x(t)) its own way.
#pragma once

#include <concepts>

#include "sda/score/concepts.hpp"

namespace sda {

/// Requirements, for a prior model M and an observation O bound to M's events
/// (a `BoundObservation`: `obs.op()` with apply, vjp and jvp, `obs.y()`, `obs.variance()`):
/// - `g.eps(model, obs, x, t)`: the guided noise prediction for a batch x of
///   shape [B, event...] at time t, shaped like x.
/// Optional: `g.validate()`, throwing `sda::error` for invalid parameters; `sda::guide` calls it.
template <class G, class M, class O>
concept Guidance = EpsModel<M> && std::copy_constructible<G> &&
    requires(const G& g, const M& model, const O& obs, const tensor_t<M>& x, double t) {
        { g.eps(model, obs, x, t) } -> std::same_as<tensor_t<M>>;
    };

}  // namespace sda
