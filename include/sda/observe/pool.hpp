// sda/observe/pool.hpp: `AvgPool`, the coarsening of 2-D fields by average
// pooling, A(x)[..., i, j] = mean of the fy x fx block x[..., i fy : (i + 1) fy, j fx : (j + 1) fx].
//
// A coarse-grid observation of a flow, as in the Kolmogorov experiment of Rozet &
// Louppe (2023): events are [L, C, H, W] (L states of C velocity channels on an
// H x W grid) and the observation keeps every state and channel on an
// (H / fy) x (W / fx) grid. Compose with `Subsample` for sparse times, with
// `Mask` for sparse coarse cells, with `Saturation` for a nonlinear sensor.
//
// Linear, so its JVP is itself; its VJP (the adjoint) spreads v / (fy fx) over
// each block. Both are one backend primitive over the cell of every entry, an
// index list built once when the operator is bound to the event shape.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "sda/backend/concepts.hpp"
#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"
#include "sda/observe/cpu_calls.hpp"

namespace sda::observe {

/// Average pooling over the last two axes of the event, [B, ..., H, W] ->
/// [B, ..., H / fy, W / fx], in non-overlapping fy x fx blocks; the leading
/// axes are kept. `AvgPool::last_axis(f)` pools the last axis alone,
/// [B, ..., D] -> [B, ..., D / f]. H, W (or D) must be multiples of the factors.
class AvgPool : public detail::CpuCalls<AvgPool> {
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

    /// Bound to events of shape `event` on `backend`: the block of every entry, built once.
    /// A(x) sums each block's entries into its cell (a scatter-add) and scales; the VJP
    /// gives each entry its cell's cotangent (a gather) scaled.
    template <Backend B>
    auto bind(const Shape& event, const B& backend) const {
        return Bound<B>(backend, *this, event);
    }

private:
    AvgPool(std::size_t fy, std::size_t fx, std::size_t axes) : fy_(fy), fx_(fx), axes_(axes) {
        sda::detail::require(fy >= 1 && fx >= 1, "sda::observe::AvgPool: the pooling factor must be >= 1, got ",
                             axes == 2 ? "(fy, fx) = (" + std::to_string(fy) + ", " + std::to_string(fx) + ")"
                                       : std::to_string(fx));
    }

    template <Backend B>
    class Bound {
    public:
        using tensor_type = typename B::tensor_type;

        Bound(B backend, const AvgPool& pool, const Shape& event)
            : backend_(std::move(backend)), output_(pool.output_shape(event)), event_(event),
              scale_(1.0 / double(pool.fy_ * pool.fx_)) {
            // entry (plane, r, c) of the event lies in cell (plane, r / fy, c / fx) of the output
            const std::size_t rows = pool.axes_ == 2 ? event[event.size() - 2] : 1, cols = event.back();
            const std::size_t planes = element_count(event) / (rows * cols), wo = cols / pool.fx_;
            std::vector<std::size_t> cells;
            cells.reserve(element_count(event));
            for (std::size_t plane = 0; plane < planes; ++plane)
                for (std::size_t r = 0; r < rows; ++r)
                    for (std::size_t c = 0; c < cols; ++c)
                        cells.push_back((plane * (rows / pool.fy_) + r / pool.fy_) * wo + c / pool.fx_);
            cells_ = backend_.index(std::move(cells));
        }

        tensor_type apply(const tensor_type& x) const {
            return backend_.scale(scale_, backend_.scatter_add(x, cells_, output_));
        }
        tensor_type vjp(const tensor_type& x, const tensor_type& v) const {
            const Shape vs = backend_.shape(v), expected = batch_shape(backend_.shape(x).at(0), output_);
            sda::detail::require(vs == expected, "sda::observe::AvgPool: cotangent of shape ", format_shape(vs),
                                 " does not match the observation ", format_shape(expected));
            return backend_.scale(scale_, backend_.gather(v, cells_, event_));
        }
        tensor_type jvp(const tensor_type&, const tensor_type& dx) const { return apply(dx); }

    private:
        B backend_;
        Shape output_, event_;
        double scale_;
        typename B::index_type cells_;
    };

    std::string describe() const {
        return axes_ == 2 ? std::to_string(fy_) + " x " + std::to_string(fx_) : std::to_string(fx_) + "-entry";
    }

    std::size_t fy_, fx_, axes_;
};

static_assert(ObservationOperator<AvgPool, CpuBackend<double>>);
static_assert(ObservationOperator<AvgPool, CpuBackend<float>>);

}  // namespace sda::observe
