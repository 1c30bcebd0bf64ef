// sda/observe/pool.hpp: `AvgPool`, the coarsening of 2-D fields by average
// pooling, A(x)[..., i, j] = mean of the fy x fx block x[..., i fy : (i + 1) fy, j fx : (j + 1) fx].
//
// A coarse-grid observation of a flow, as in the Kolmogorov experiment of Rozet &
// Louppe (2023): events are [L, C, H, W] (L states of C velocity channels on an
// H x W grid) and the observation keeps every state and channel on an
// (H / fy) x (W / fx) grid. Compose with `Subsample` for sparse times, with
// `Mask` for sparse coarse cells, with `Saturation` for a nonlinear sensor.
//
// Linear, so its JVP is itself; its VJP (the adjoint) spreads v / (fy fx) over each block.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <type_traits>

#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda::observe {

/// Average pooling over the last two axes of the event, [B, ..., H, W] ->
/// [B, ..., H / fy, W / fx], in non-overlapping fy x fx blocks; the leading
/// axes are kept. `AvgPool::last_axis(f)` pools the last axis alone,
/// [B, ..., D] -> [B, ..., D / f]. H, W (or D) must be multiples of the factors.
class AvgPool {
public:
    /// f x f blocks.
    explicit AvgPool(std::size_t factor) : AvgPool(factor, factor) {}
    /// fy x fx blocks: fy along axis -2 (rows), fx along axis -1 (columns).
    AvgPool(std::size_t fy, std::size_t fx) : AvgPool(fy, fx, 2) {}
    /// Blocks of f consecutive entries along the last axis.
    static AvgPool last_axis(std::size_t factor) { return AvgPool(1, factor, 1); }

    /// The block: {fy, fx}, or {f} for `last_axis`.
    Shape block() const { return axes_ == 2 ? Shape{fy_, fx_} : Shape{fx_}; }

    Shape output_shape(const Shape& event) const {
        sda::detail::require(event.size() >= axes_, "sda::observe::AvgPool: a ", describe(), " pool needs events of ",
                             axes_, axes_ == 2 ? " or more axes" : " axis or more", ", got shape ",
                             format_shape(event));
        const std::size_t rows = axes_ == 2 ? event[event.size() - 2] : 1, cols = event.back();
        sda::detail::require(rows % fy_ == 0 && cols % fx_ == 0, "sda::observe::AvgPool: events of shape ",
                             format_shape(event), " do not split into ", describe(), " blocks (",
                             rows % fy_ != 0 ? rows : cols, " is not a multiple of ", rows % fy_ != 0 ? fy_ : fx_,
                             ")");
        Shape out = event;
        out.back() /= fx_;
        if (axes_ == 2) out[out.size() - 2] /= fy_;
        return out;
    }

    template <class T>
    Tensor<T> apply(const Tensor<T>& x) const {
        const Planes p = planes_of(shape_of(x));
        Tensor<T> y = empty_tensor<T>(p.output);
        with_fx([&](auto fx) { pool<decltype(fx)::value>(x.data(), y.data(), p); });
        return y;
    }
    template <class T>
    Tensor<T> vjp(const Tensor<T>& x, const Tensor<T>& v) const {
        const Planes p = planes_of(shape_of(x));
        sda::detail::require(shape_of(v) == p.output, "sda::observe::AvgPool: cotangent of shape ",
                             format_shape(shape_of(v)), " does not match the observation ", format_shape(p.output));
        Tensor<T> g = empty_tensor<T>(shape_of(x));
        with_fx([&](auto fx) { spread<decltype(fx)::value>(v.data(), g.data(), p); });
        return g;
    }
    template <class T>
    Tensor<T> jvp(const Tensor<T>&, const Tensor<T>& dx) const {
        return apply(dx);
    }

private:
    AvgPool(std::size_t fy, std::size_t fx, std::size_t axes) : fy_(fy), fx_(fx), axes_(axes) {
        sda::detail::require(fy >= 1 && fx >= 1, "sda::observe::AvgPool: the pooling factor must be >= 1, got ",
                             axes == 2 ? "(fy, fx) = (" + std::to_string(fy) + ", " + std::to_string(fx) + ")"
                                       : std::to_string(fx));
    }

    /// A batch seen as `count` planes of rows x cols (rows = 1 for `last_axis`).
    struct Planes {
        std::size_t count, rows, cols;
        Shape output;  // [B, obs...]
    };
    Planes planes_of(const Shape& batched) const {
        sda::detail::require(batched.size() >= 2 && batched[0] >= 1, "sda::observe::AvgPool: input of shape ",
                             format_shape(batched), " is not a batch [B, event...]");
        const Shape event = event_shape_of(batched);
        Planes p{0, axes_ == 2 ? event[event.size() - 2] : 1, 0, batch_shape(batched[0], output_shape(event))};
        p.cols = event.back();
        p.count = p.rows * p.cols == 0 ? 0 : element_count(batched) / (p.rows * p.cols);
        return p;
    }

    /// Calls `f` with fx as a compile-time constant for the common factors (0
    /// for any other), so that the inner loops over a block's row vectorise.
    template <class F>
    void with_fx(F&& f) const {
        switch (fx_) {
            case 2: return f(std::integral_constant<std::size_t, 2>{});
            case 4: return f(std::integral_constant<std::size_t, 4>{});
            case 8: return f(std::integral_constant<std::size_t, 8>{});
            default: return f(std::integral_constant<std::size_t, 0>{});
        }
    }

    /// y[plane, i, j] = (1 / (fy fx)) sum of the block (i, j) of x[plane].
    template <std::size_t FX, class T>
    void pool(const T* x, T* y, const Planes& p) const {
        const std::size_t fx = FX ? FX : fx_, fy = fy_, ho = p.rows / fy, wo = p.cols / fx;
        const T scale = T(1) / static_cast<T>(fy * fx);
        for (std::size_t plane = 0; plane < p.count; ++plane, x += p.rows * p.cols) {
            for (std::size_t i = 0; i < ho; ++i, y += wo) {
                std::fill(y, y + wo, T(0));
                for (std::size_t dy = 0; dy < fy; ++dy) {
                    const T* row = x + (i * fy + dy) * p.cols;
                    for (std::size_t j = 0; j < wo; ++j) {
                        T sum = T(0);
                        for (std::size_t dx = 0; dx < fx; ++dx) sum += row[j * fx + dx];
                        y[j] += sum;
                    }
                }
                for (std::size_t j = 0; j < wo; ++j) y[j] *= scale;
            }
        }
    }

    /// g[plane, block (i, j)] = v[plane, i, j] / (fy fx), the adjoint of `pool`.
    template <std::size_t FX, class T>
    void spread(const T* v, T* g, const Planes& p) const {
        const std::size_t fx = FX ? FX : fx_, fy = fy_, ho = p.rows / fy, wo = p.cols / fx;
        const T scale = T(1) / static_cast<T>(fy * fx);
        for (std::size_t plane = 0; plane < p.count; ++plane, g += p.rows * p.cols) {
            for (std::size_t i = 0; i < ho; ++i, v += wo) {
                for (std::size_t dy = 0; dy < fy; ++dy) {
                    T* row = g + (i * fy + dy) * p.cols;
                    for (std::size_t j = 0; j < wo; ++j)
                        for (std::size_t dx = 0; dx < fx; ++dx) row[j * fx + dx] = v[j] * scale;
                }
            }
        }
    }

    std::string describe() const {
        return axes_ == 2 ? std::to_string(fy_) + " x " + std::to_string(fx_) : std::to_string(fx_) + "-entry";
    }

    std::size_t fy_, fx_, axes_;
};

static_assert(ObservationOperator<AvgPool, Tensor<double>>);
static_assert(ObservationOperator<AvgPool, Tensor<float>>);

}  // namespace sda::observe
