// sda/guidance/guided.hpp: `guide`, which pairs a prior model with an
// observation and a guidance policy into a model of the posterior.
//
// The result is an `EpsModel`: any sampler draws posterior samples from it
// exactly as it draws prior samples from the prior. The observation's operator
// is bound to the prior's events here, once; guidance sees the bound observation.
#pragma once

#include <cstddef>
#include <utility>

#include "sda/core/error.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/observe/concepts.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

/// The posterior model eps_post(x, t) of `prior` given `obs` under `guidance`.
/// Holds all three by value.
template <EpsModel Prior, class Obs, class G>
class Guided {
public:
    using backend_type = backend_t<Prior>;
    using tensor_type = tensor_t<Prior>;
    using schedule_type = schedule_t<Prior>;
    using bound_observation_type = decltype(std::declval<const Obs&>().bind(Shape{}));

    Guided(Prior prior, Obs obs, G guidance)
        : prior_(std::move(prior)), obs_(std::move(obs)), guidance_(std::move(guidance)),
          bound_(obs_.bind(prior_.event_shape())) {
        if constexpr (requires { guidance_.validate(); }) guidance_.validate();
        observed_batch_ = obs_.check_event(prior_.event_shape());
    }

    backend_type backend() const { return prior_.backend(); }
    decltype(auto) schedule() const { return prior_.schedule(); }
    decltype(auto) event_shape() const { return prior_.event_shape(); }
    const Prior& prior() const { return prior_; }
    const Obs& observation() const { return obs_; }
    const G& guidance() const { return guidance_; }

    tensor_type eps(const tensor_type& x, double t) const {
        if (observed_batch_ != 0) {
            const std::size_t batch = backend().shape(x).at(0);
            detail::require(batch == observed_batch_, "sda::Guided: the observation holds one y per sample for ",
                            observed_batch_, " samples, but the batch has ", batch);
        }
        return guidance_.eps(prior_, bound_, x, t);
    }

private:
    Prior prior_;
    Obs obs_;
    G guidance_;
    bound_observation_type bound_;
    std::size_t observed_batch_ = 0;
};

/// `guide(prior, obs, guidance)`: the posterior model. Checks that y matches the
/// operator's output for the prior's events and that the guidance's parameters are
/// valid, and binds the operator to the prior's events once, for every step to come.
template <EpsModel Prior, class Obs, class G>
    requires Observation<Obs, backend_t<Prior>> &&
             Guidance<G, Prior, decltype(std::declval<const Obs&>().bind(Shape{}))>
Guided<Prior, Obs, G> guide(Prior prior, Obs obs, G guidance) {
    return {std::move(prior), std::move(obs), std::move(guidance)};
}

}  // namespace sda
