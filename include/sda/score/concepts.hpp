// sda/score/concepts.hpp: the `EpsModel` and `ScoreModel` concepts, and
// `linearize`, the one way guidance asks a model for input VJPs.
//
// A model predicts the noise eps(x(t), t) of x(t) = mu(t) x + sigma(t) z; its
// score is -eps / sigma(t) (Rozet & Louppe 2023). Samplers need only eps;
// likelihood guidance that differentiates through the denoiser needs the input
// vector-Jacobian product (d eps / d x)^T v as well.
#pragma once

#include <concepts>
#include <type_traits>
#include <utility>

#include "sda/backend/concepts.hpp"
#include "sda/fwd.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda {

/// The backend, tensor and schedule types of a model.
template <class M>
using backend_t = std::remove_cvref_t<decltype(std::declval<const M&>().backend())>;
template <class M>
using tensor_t = typename backend_t<M>::tensor_type;
template <class M>
using schedule_t = std::remove_cvref_t<decltype(std::declval<const M&>().schedule())>;

/// What a sampler needs. Requirements:
/// - `m.backend()`: the `Backend` its tensors live on (cheap to copy).
/// - `m.schedule()`: the `NoiseSchedule` the model was built or trained for.
/// - `m.event_shape()`: the shape of one sample, e.g. `[L, D]` for a trajectory.
/// - `m.eps(x, t)`: for a batch `x` of shape `[B, event...]` at diffusion time t,
///   the predicted noise, same shape. `const`, safe to call from several threads.
template <class M>
concept EpsModel =
    requires(const M& m) {
        m.backend();
        m.schedule();
        { m.event_shape() } -> std::convertible_to<Shape>;
    } && Backend<backend_t<M>> && NoiseSchedule<schedule_t<M>> &&
    requires(const M& m, const tensor_t<M>& x, double t) {
        { m.eps(x, t) } -> std::same_as<tensor_t<M>>;
    };

/// An `EpsModel` that also gives its input VJP. Requirements, beyond `EpsModel`:
/// - `m.vjp(x, t, v)`: (d eps(x, t) / d x)^T v for a cotangent `v` shaped like
///   x; the result is shaped like x.
/// Optional: `m.linearize(x, t)`, returning an object with `eps()` and `vjp(v)`
/// that evaluates eps once and reuses that work for several VJPs at the same x
/// (as backpropagation does); `sda::linearize` falls back to eps + vjp.
template <class M>
concept ScoreModel = EpsModel<M> && requires(const M& m, const tensor_t<M>& x, const tensor_t<M>& v, double t) {
    { m.vjp(x, t, v) } -> std::same_as<tensor_t<M>>;
};

/// A model linearised at one input: `eps()` is eps(x, t), `vjp(v)` the input VJP there.
template <class L, class Tensor>
concept Linearization = requires(const L& lin, const Tensor& v) {
    { lin.eps() } -> std::convertible_to<const Tensor&>;
    { lin.vjp(v) } -> std::same_as<Tensor>;
};

namespace detail {

/// The fallback linearisation: eps once, then one `vjp(x, t, v)` call per product.
/// Owns a copy of x, so it outlives the caller's tensor.
template <class M>
class RecomputingLinearization {
public:
    RecomputingLinearization(const M& model, tensor_t<M> x, double t)
        : model_(&model), x_(std::move(x)), t_(t), eps_(model.eps(x_, t)) {}
    const tensor_t<M>& eps() const { return eps_; }
    tensor_t<M> vjp(const tensor_t<M>& v) const { return model_->vjp(x_, t_, v); }

private:
    const M* model_;
    tensor_t<M> x_;
    double t_;
    tensor_t<M> eps_;
};

}  // namespace detail

/// Linearises `model` at (x, t): the model's own `linearize` when it has one.
/// The result refers to `model`, which must outlive it.
template <ScoreModel M>
Linearization<tensor_t<M>> auto linearize(const M& model, const tensor_t<M>& x, double t) {
    if constexpr (requires { model.linearize(x, t); }) {
        return model.linearize(x, t);
    } else {
        return detail::RecomputingLinearization<M>(model, x, t);
    }
}

}  // namespace sda
