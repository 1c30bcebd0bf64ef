// sda/backend/concepts.hpp: the `Backend` concept, the array algebra of sda.
//
// Samplers, guidance and `MarkovComposedScore` touch data only through a
// backend (the "algebra" policy of Boost.Odeint), so the same code drives
// xtensor arrays on the CPU (`CpuBackend`) and device tensors on a GPU. A model
// names its backend; `model.backend()` hands out the instance (which may hold a
// device). Scalars cross the interface as `double`; batches are `[B, ...]` and
// per-sample quantities are tensors of shape `[B]`, so nothing leaves the device.
#pragma once

#include <concepts>
#include <cstddef>

#include "sda/fwd.hpp"

namespace sda {

template <class B>
concept Backend = std::copyable<B> && requires { typename B::tensor_type; } &&
    requires(const B& be, const typename B::tensor_type& x, const typename B::tensor_type& y,
             const Shape& shape, double a, std::size_t n, Generator& gen) {
        // --- creation -----------------------------------------------------------
        { be.shape(x) } -> std::convertible_to<Shape>;                  // extents of x
        { be.zeros(shape) } -> std::same_as<typename B::tensor_type>;   // new zero tensor
        { be.fill_like(x, a) } -> std::same_as<typename B::tensor_type>;  // shaped like x, every entry a
        { be.normal(shape, gen) } -> std::same_as<typename B::tensor_type>;  // iid N(0, 1), one draw of gen;
                                                                        // row b keyed by b (batch-size invariant)
        // --- element-wise, numpy broadcasting (y may be [event...] against x [B, event...]) ---
        { be.axpby(a, x, a, y) } -> std::same_as<typename B::tensor_type>;  // a x + b y (same shape)
        { be.scale(a, x) } -> std::same_as<typename B::tensor_type>;        // a x
        { be.add_scalar(x, a) } -> std::same_as<typename B::tensor_type>;   // x + a
        { be.add(x, y) } -> std::same_as<typename B::tensor_type>;
        { be.sub(x, y) } -> std::same_as<typename B::tensor_type>;
        { be.mul(x, y) } -> std::same_as<typename B::tensor_type>;
        { be.div(x, y) } -> std::same_as<typename B::tensor_type>;
        { be.safe_div(x, y) } -> std::same_as<typename B::tensor_type>;     // x / y, 0 where y == 0
        { be.sqrt(x) } -> std::same_as<typename B::tensor_type>;
        // --- per sample: v is [B], x is [B, ...] ---------------------------------------------
        { be.scale_rows(x, y) } -> std::same_as<typename B::tensor_type>;   // v[b] * x[b, ...]
        { be.dot(x, y) } -> std::same_as<typename B::tensor_type>;          // [B]: sum over the event of x y
        { be.mean_square(x) } -> std::same_as<typename B::tensor_type>;     // [B]: mean over the event of x^2
        { be.mean_like(x) } -> std::same_as<typename B::tensor_type>;       // shaped like x, every entry mean(x)
        // --- windows of a trajectory [B, L, S...] (MarkovComposedScore) --------------------
        { be.unfold(x, n) } -> std::same_as<typename B::tensor_type>;       // -> [B (L-n+1), n, S...]
        { be.unfold_adjoint(x, n) } -> std::same_as<typename B::tensor_type>;  // sum back, n = batch B
        { be.pick_centres(x, n, n) } -> std::same_as<typename B::tensor_type>;  // (windows, K, B) -> [B, L, S...]
        { be.pick_centres_adjoint(x, n) } -> std::same_as<typename B::tensor_type>;  // (v, K) -> windows
        // --- checks at boundaries -----------------------------------------------
        { be.all_finite(x) } -> std::convertible_to<bool>;
        { be.min(x) } -> std::convertible_to<double>;                     // smallest entry (x non-empty)
    };

}  // namespace sda
