// sda/observe/concepts.hpp: the `ObservationOperator`, `BoundOperator`,
// `Observation` and `BoundObservation` concepts.
//
// An observation operator A maps a batch of events [B, event...] to a batch of
// observations [B, obs...]. Observations enter only at sampling time
// (zero-shot): guidance needs A, its VJP (A^T v) and, for MMPS, its JVP (A dx),
// each at a point x since A may be nonlinear. An operator is bound once to the
// event shape and the backend it will see (`sda::bind`, called by `guide`):
// whatever can be computed ahead (index lists, a matrix on the device) is then
// validated and computed, never inside the sampling loop.
#pragma once

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "sda/backend/concepts.hpp"
#include "sda/fwd.hpp"

namespace sda {

/// An operator bound to one event shape on one backend, what guidance calls at every step.
/// Requirements, for batches of type `Tensor`:
/// - `op.apply(x)`: A(x), [B, event...] -> [B, obs...];
/// - `op.vjp(x, v)`: (dA/dx at x)^T v for v of shape [B, obs...]; shaped like x;
/// - `op.jvp(x, dx)`: (dA/dx at x) dx for dx shaped like x; shaped like A(x).
template <class Op, class Tensor>
concept BoundOperator = std::copy_constructible<Op> && requires(const Op& op, const Tensor& x, const Tensor& v) {
    { op.apply(x) } -> std::same_as<Tensor>;
    { op.vjp(x, v) } -> std::same_as<Tensor>;
    { op.jvp(x, v) } -> std::same_as<Tensor>;
};

/// `op.bind(event, backend)` when the operator has it; otherwise the operator is its own
/// binding (nothing to precompute: element-wise operators, most user-written ones).
template <class Op, class B>
auto bind(const Op& op, const Shape& event, const B& backend) {
    if constexpr (requires { op.bind(event, backend); }) return op.bind(event, backend);
    else return op;
}

template <class Op, class B>
using bound_operator_t = decltype(sda::bind(std::declval<const Op&>(), std::declval<const Shape&>(), std::declval<const B&>()));

/// Requirements, for a `Backend` B:
/// - `op.output_shape(event)`: the observation shape `[obs...]` of one event of
///   shape `event`; throws `sda::error` when the event does not fit the operator;
/// - `sda::bind(op, event, backend)`: a `BoundOperator` on B's tensors for events of that
///   shape (throws `sda::error` when they do not fit): `op.bind(event, backend)` when the
///   operator precomputes something, else the operator itself, with apply, vjp and jvp.
template <class Op, class B>
concept ObservationOperator = Backend<B> && std::copy_constructible<Op> &&
    requires(const Op& op, const Shape& event) {
        { op.output_shape(event) } -> std::convertible_to<Shape>;
    } && BoundOperator<bound_operator_t<Op, B>, typename B::tensor_type>;

/// What guidance reads at every step: y ~ N(A(x), diag(variance)) with A bound. Requirements:
/// - `o.op()`: a `BoundOperator` on `Tensor`;
/// - `o.y()`: the observation, `[obs...]` shared by the batch or `[B, obs...]` one per sample;
/// - `o.variance()`: the noise variance, broadcastable against `[B, obs...]` (a scalar or `[obs...]`).
template <class O, class Tensor>
concept BoundObservation = requires(const O& o) {
    { o.y() } -> std::convertible_to<const Tensor&>;
    { o.variance() } -> std::convertible_to<const Tensor&>;
} && BoundOperator<std::remove_cvref_t<decltype(std::declval<const O&>().op())>, Tensor>;

/// A Gaussian observation as `guide` takes it. Requirements, for a `Backend` B:
/// - `o.op()`: its `ObservationOperator` on B; `o.y()`, `o.variance()` as in `BoundObservation`;
/// - `o.check_event(event)`: throws `sda::error` unless y matches the operator's output for
///   events of shape `event`; returns the batch y holds one observation per sample for (0: shared);
/// - `o.bind(event)`: the observation with its operator bound, a `BoundObservation`.
template <class O, class B>
concept Observation = Backend<B> && requires(const O& o, const Shape& event) {
    { o.y() } -> std::convertible_to<const typename B::tensor_type&>;
    { o.variance() } -> std::convertible_to<const typename B::tensor_type&>;
    { o.check_event(event) } -> std::convertible_to<std::size_t>;
    { o.bind(event) } -> BoundObservation<typename B::tensor_type>;
} && ObservationOperator<std::remove_cvref_t<decltype(std::declval<const O&>().op())>, B>;

}  // namespace sda
