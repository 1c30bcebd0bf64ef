// sda/backend/concepts.hpp: the `Backend` concept, the array algebra of sda.
//
// Samplers, guidance and `MarkovComposedScore` touch data only through a
// backend (the "algebra" policy of Boost.Odeint), so the same code drives
// xtensor arrays on the CPU (`CpuBackend`) and device tensors on a GPU. A model
// names its backend; `model.backend()` hands out the instance (which may hold a
// device). Scalars cross the interface as `double`; batches are `[B, ...]` and
// per-sample quantities are tensors of shape `[B]`, so nothing leaves the device.
// Everything that moves entries (selections, pooling, the windows of the Markov
// composition) is built on two primitives, `gather` and its adjoint
// `scatter_add`, with index lists made once by `index`.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "sda/fwd.hpp"

namespace sda {

template <class B>
concept Backend = std::copyable<B> && requires { typename B::tensor_type; typename B::index_type; } &&
    requires(const B& be, const typename B::tensor_type& x, const typename B::tensor_type& y,
             const typename B::index_type& index, const Shape& shape, double a, Generator& gen,
             std::vector<std::size_t> positions, std::span<const double> values) {
        // --- creation -----------------------------------------------------------
        { be.shape(x) } -> std::convertible_to<Shape>;                  // extents of x
        { be.zeros(shape) } -> std::same_as<typename B::tensor_type>;   // new zero tensor
        { be.fill_like(x, a) } -> std::same_as<typename B::tensor_type>;  // shaped like x, every entry a
        { be.from_host(values, shape) } -> std::same_as<typename B::tensor_type>;  // host doubles, row-major
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
        { be.positive(x) } -> std::same_as<typename B::tensor_type>;        // 1 where x > 0, else 0 (NaN: 0)
        // --- per sample: v is [B], x is [B, ...] ---------------------------------------------
        { be.scale_rows(x, y) } -> std::same_as<typename B::tensor_type>;   // v[b] * x[b, ...]
        { be.dot(x, y) } -> std::same_as<typename B::tensor_type>;          // [B]: sum over the event of x y
        { be.mean_square(x) } -> std::same_as<typename B::tensor_type>;     // [B]: mean over the event of x^2
        { be.mean_like(x) } -> std::same_as<typename B::tensor_type>;       // shaped like x, every entry mean(x)
        // --- gather and scatter over each sample's flat entries (observation operators, the
        //     Markov composition): an index is built once, from positions, and reused ----------
        { be.index(positions) } -> std::same_as<typename B::index_type>;
        { be.gather(x, index, shape) } -> std::same_as<typename B::tensor_type>;  // [B, shape...]: x[b, pos[k]]
        { be.scatter_add(x, index, shape) } -> std::same_as<typename B::tensor_type>;  // [B, shape...]: zeros,
                                                                        // += x[b, k] at pos[k] (gather's adjoint)
        { be.reshape(x, shape) } -> std::same_as<typename B::tensor_type>;  // same entries, same order
        // --- dense algebra over each sample's flat entries: a is a matrix [M, N] ---------------
        { be.matmul(x, y) } -> std::same_as<typename B::tensor_type>;          // [B, M]: x[b] a^T
        { be.matmul_adjoint(x, y) } -> std::same_as<typename B::tensor_type>;  // [B, N]: v[b] a
        // --- checks at boundaries -----------------------------------------------
        { be.all_finite(x) } -> std::convertible_to<bool>;
        { be.min(x) } -> std::convertible_to<double>;                     // smallest entry (x non-empty)
    };

}  // namespace sda
