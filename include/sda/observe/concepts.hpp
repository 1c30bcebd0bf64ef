// sda/observe/concepts.hpp: the `ObservationOperator` and `Observation` concepts.
//
// An observation operator A maps a batch of events [B, event...] to a batch of
// observations [B, obs...]. Observations enter only at sampling time
// (zero-shot): guidance needs A, its VJP (A^T v) and, for MMPS, its JVP (A dx),
// each at a point x since A may be nonlinear.
#pragma once

#include <concepts>
#include <type_traits>
#include <utility>

#include "sda/fwd.hpp"

namespace sda {

/// Requirements, for batches of type `Tensor`:
/// - `op.output_shape(event)`: the observation shape `[obs...]` of one event of
///   shape `event`; throws `sda::error` when the event does not fit the operator.
/// - `op.apply(x)`: A(x), [B, event...] -> [B, obs...].
/// - `op.vjp(x, v)`: (dA/dx at x)^T v for v of shape [B, obs...]; shaped like x.
/// - `op.jvp(x, dx)`: (dA/dx at x) dx for dx shaped like x; shaped like A(x).
template <class Op, class Tensor>
concept ObservationOperator =
    std::copy_constructible<Op> && requires(const Op& op, const Tensor& x, const Tensor& v, const Shape& event) {
        { op.output_shape(event) } -> std::convertible_to<Shape>;
        { op.apply(x) } -> std::same_as<Tensor>;
        { op.vjp(x, v) } -> std::same_as<Tensor>;
        { op.jvp(x, v) } -> std::same_as<Tensor>;
    };

/// A Gaussian observation y ~ N(A(x), diag(variance)). Requirements:
/// - `o.op()`: its `ObservationOperator`.
/// - `o.y()`: the observation, `[obs...]` shared by the batch or `[B, obs...]` one per sample.
/// - `o.variance()`: the noise variance, broadcastable against `[B, obs...]` (a scalar or `[obs...]`).
template <class O, class Tensor>
concept Observation = requires(const O& o) {
    { o.y() } -> std::convertible_to<const Tensor&>;
    { o.variance() } -> std::convertible_to<const Tensor&>;
} && ObservationOperator<std::remove_cvref_t<decltype(std::declval<const O&>().op())>, Tensor>;

}  // namespace sda
