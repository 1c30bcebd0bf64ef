// sda/sample/sample.hpp: `sda::sample`, the verb that draws samples from a model.
//
//   auto x = sda::sample(sda::PredictorCorrector{.steps = 256}, model, 1024, gen);
//
// draws x(1) ~ N(0, sigma(1)^2 I) (the mu(1) x part is negligible for the
// shipped schedules) and runs the sampler to t = 0.
#pragma once

#include <cstddef>
#include <utility>

#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/shape.hpp"
#include "sda/sample/concepts.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

/// `batch` samples of `model`'s events, shape [batch, event...].
template <class S, EpsModel M, class Callback = NoCallback>
    requires Sampler<S, M>
tensor_t<M> sample(const S& sampler, const M& model, std::size_t batch, Generator& gen, Callback&& callback = {}) {
    detail::require(batch >= 1, "sda::sample: batch must be >= 1, got ", batch);
    const auto be = model.backend();
    tensor_t<M> x = be.scale(model.schedule().sigma(1.0), be.normal(batch_shape(batch, model.event_shape()), gen));
    if constexpr (requires { sampler.run(model, std::move(x), gen, callback); }) {
        return sampler.run(model, std::move(x), gen, std::forward<Callback>(callback));
    } else {
        return sampler.run(model, std::move(x), gen);
    }
}

}  // namespace sda
