// sda/nn/concepts.hpp: `TrainableScoreModel`, what the training loop needs of
// a network beyond `ScoreModel`.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>

#include "sda/nn/parameters.hpp"
#include "sda/score/concepts.hpp"

namespace sda::nn {

namespace detail {
/// Stands for the per-sample loss callback of `accumulate_gradient` in concept checks.
struct LossArchetype {
    template <class Row, class Gradient>
    double operator()(std::size_t, const Row&, Gradient&&) const;
};
}  // namespace detail

/// Requirements, beyond `ScoreModel`:
/// - `typename M::scalar_type`, the parameters' element type;
/// - `m.parameters()`: the `ParameterSet` of all trainable tensors (and a const overload);
/// - `m.forward(x, t)`: eps with one diffusion time per sample (`std::span<const double>`);
/// - `m.accumulate_gradient(x, t, loss, grad)`: adds d/dtheta of sum_b loss(b, eps_b, d_eps_b)
///   to `grad` (the layout of `parameters()`), returns the summed loss; `loss`
///   writes dloss/deps_b into d_eps_b;
/// - `m.config().to_json()`: the architecture, stored in checkpoints.
template <class M>
concept TrainableScoreModel =
    ScoreModel<M> && requires { typename M::scalar_type; } &&
    requires(M& m, const M& cm, const tensor_t<M>& x, std::span<const double> t,
             std::span<typename M::scalar_type> grad) {
        { m.parameters() } -> std::same_as<ParameterSet<typename M::scalar_type>&>;
        { cm.parameters() } -> std::same_as<const ParameterSet<typename M::scalar_type>&>;
        { cm.forward(x, t) } -> std::same_as<tensor_t<M>>;
        { cm.accumulate_gradient(x, t, detail::LossArchetype{}, grad) } -> std::convertible_to<double>;
        cm.config().to_json();
    };

}  // namespace sda::nn
