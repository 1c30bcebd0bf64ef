// sda/backend/cpu.hpp: `CpuBackend<T>`, the backend of CPU models on xtensor arrays.
//
// Element-wise work is xtensor expressions; per-sample reductions and the window
// copies of the Markov composition are plain loops over contiguous rows, split
// over samples with oneTBB. Every reduction runs in a fixed order within a
// sample, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <type_traits>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "sda/backend/concepts.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda {

namespace detail {

/// Runs `body(begin, end)` over [0, n), in parallel when there is enough `work`
/// (elements touched) to pay for it.
template <class Body>
void parallel_rows(std::size_t n, std::size_t work, Body&& body) {
    constexpr std::size_t serial_work = 1 << 15;
    if (n <= 1 || work <= serial_work) {
        body(std::size_t{0}, n);
        return;
    }
    const std::size_t grain = std::max<std::size_t>(1, n * serial_work / work);
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, grain),
                      [&](const tbb::blocked_range<std::size_t>& r) { body(r.begin(), r.end()); });
}

}  // namespace detail

template <class T>
struct CpuBackend {
    using scalar_type = T;
    using tensor_type = Tensor<T>;
    /// Reductions accumulate in double, also for float tensors.
    using accumulator_type = std::conditional_t<(sizeof(T) < sizeof(double)), double, T>;

    // --- creation -----------------------------------------------------------
    static Shape shape(const tensor_type& x) { return shape_of(x); }
    static tensor_type zeros(const Shape& shape) { return xt::zeros<T>(shape); }
    static tensor_type fill_like(const tensor_type& x, double a) {
        return xt::broadcast(static_cast<T>(a), x.shape());
    }
    static tensor_type normal(const Shape& shape, Generator& gen) {
        tensor_type x = empty_tensor<T>(shape);
        const std::size_t rows = shape.empty() ? 1 : shape[0];
        fill_normal(x.data(), rows, rows ? x.size() / rows : 0, gen);
        return x;
    }

    // --- element-wise ---------------------------------------------------------
    static tensor_type axpby(double a, const tensor_type& x, double b, const tensor_type& y) {
        same_shape(x, y, "axpby");
        return static_cast<T>(a) * x + static_cast<T>(b) * y;
    }
    static tensor_type scale(double a, const tensor_type& x) { return static_cast<T>(a) * x; }
    static tensor_type add_scalar(const tensor_type& x, double a) { return x + static_cast<T>(a); }
    static tensor_type add(const tensor_type& x, const tensor_type& y) { return x + y; }
    static tensor_type sub(const tensor_type& x, const tensor_type& y) { return x - y; }
    static tensor_type mul(const tensor_type& x, const tensor_type& y) { return x * y; }
    static tensor_type div(const tensor_type& x, const tensor_type& y) { return x / y; }
    static tensor_type safe_div(const tensor_type& x, const tensor_type& y) {
        return xt::where(xt::equal(y, T(0)), T(0), x / y);
    }
    static tensor_type sqrt(const tensor_type& x) { return xt::sqrt(x); }

    // --- per sample -----------------------------------------------------------
    static tensor_type scale_rows(const tensor_type& v, const tensor_type& x) {
        const auto [rows, cols] = rows_of(x, v, "scale_rows");
        tensor_type out = empty_tensor<T>(shape_of(x));
        detail::parallel_rows(rows, x.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t r = begin; r < end; ++r) {
                const T a = v.data()[r];
                const T* in = x.data() + r * cols;
                T* o = out.data() + r * cols;
                for (std::size_t c = 0; c < cols; ++c) o[c] = a * in[c];
            }
        });
        return out;
    }
    static tensor_type dot(const tensor_type& x, const tensor_type& y) {
        same_shape(x, y, "dot");
        return row_reduce(x, [&](std::size_t r, std::size_t cols) {
            const T* a = x.data() + r * cols;
            const T* b = y.data() + r * cols;
            accumulator_type sum = 0;
            for (std::size_t c = 0; c < cols; ++c) sum += accumulator_type(a[c]) * b[c];
            return static_cast<T>(sum);
        });
    }
    static tensor_type mean_square(const tensor_type& x) {
        return row_reduce(x, [&](std::size_t r, std::size_t cols) {
            const T* a = x.data() + r * cols;
            accumulator_type sum = 0;
            for (std::size_t c = 0; c < cols; ++c) sum += accumulator_type(a[c]) * a[c];
            return cols ? static_cast<T>(sum / static_cast<accumulator_type>(cols)) : T(0);
        });
    }

    static tensor_type mean_like(const tensor_type& x) {
        detail::require(x.size() > 0, "sda::CpuBackend::mean_like: empty tensor");
        // a fixed-order sum, as every reduction here
        const auto mean = static_cast<T>(std::accumulate(x.begin(), x.end(), accumulator_type(0)) /
                                         static_cast<accumulator_type>(x.size()));
        return xt::broadcast(mean, x.shape());
    }

    // --- windows of a trajectory ------------------------------------------------
    /// [B, L, S...] -> [B (L-w+1), w, S...]: every stride-1 window of w states.
    static tensor_type unfold(const tensor_type& x, std::size_t width) {
        const Shape shape = shape_of(x);
        detail::require(shape.size() >= 2 && width >= 1 && width <= shape[1], "sda::CpuBackend::unfold: cannot cut ",
                        width, "-state windows from shape ", format_shape(shape));
        const std::size_t batch = shape[0], length = shape[1], state = x.size() / (batch * length);
        const std::size_t windows = length - width + 1;
        Shape out_shape = shape;
        out_shape[0] = batch * windows;
        out_shape[1] = width;
        tensor_type out = empty_tensor<T>(out_shape);
        detail::parallel_rows(batch * windows, out.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t w = begin; w < end; ++w) {
                const std::size_t b = w / windows, i = w % windows;
                std::memcpy(out.data() + w * width * state, x.data() + (b * length + i) * state,
                            width * state * sizeof(T));
            }
        });
        return out;
    }
    /// Adjoint of `unfold`: [B W, w, S...] -> [B, W+w-1, S...], summing overlaps.
    static tensor_type unfold_adjoint(const tensor_type& g, std::size_t batch) {
        const Shape shape = shape_of(g);
        detail::require(shape.size() >= 2 && batch >= 1 && shape[0] % batch == 0,
                        "sda::CpuBackend::unfold_adjoint: shape ", format_shape(shape), " is not a batch of ",
                        batch, " sets of windows");
        const std::size_t windows = shape[0] / batch, width = shape[1];
        const std::size_t state = g.size() / (shape[0] * width), length = windows + width - 1;
        Shape out_shape = shape;
        out_shape[0] = batch;
        out_shape[1] = length;
        tensor_type out = xt::zeros<T>(out_shape);
        detail::parallel_rows(batch, g.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t b = begin; b < end; ++b)
                for (std::size_t i = 0; i < windows; ++i) {
                    const T* in = g.data() + (b * windows + i) * width * state;
                    T* o = out.data() + (b * length + i) * state;
                    for (std::size_t k = 0; k < width * state; ++k) o[k] += in[k];
                }
        });
        return out;
    }
    /// The Markov blanket composition: from window outputs [B W, 2K+1, S...] keep
    /// states 0..K-1 of the first window, the centre K of every window, and states
    /// K+1..2K of the last window -> [B, W+2K, S...].
    static tensor_type pick_centres(const tensor_type& e, std::size_t order, std::size_t batch) {
        return centres(e, order, batch, /*adjoint=*/false);
    }
    /// Adjoint of `pick_centres`: [B, L, S...] -> [B W, 2K+1, S...], zero where not picked.
    static tensor_type pick_centres_adjoint(const tensor_type& v, std::size_t order) {
        return centres(v, order, 0, /*adjoint=*/true);
    }

    static bool all_finite(const tensor_type& x) {
        return std::all_of(x.begin(), x.end(), [](T value) { return std::isfinite(value); });
    }
    static double min(const tensor_type& x) {
        detail::require(x.size() > 0, "sda::CpuBackend::min: empty tensor");
        return static_cast<double>(*std::min_element(x.begin(), x.end()));
    }

private:
    static void same_shape(const tensor_type& x, const tensor_type& y, const char* op) {
        detail::require(std::equal(x.shape().begin(), x.shape().end(), y.shape().begin(), y.shape().end()),
                        "sda::CpuBackend::", op, ": shapes ", format_shape(shape_of(x)), " and ",
                        format_shape(shape_of(y)), " differ");
    }
    struct Rows { std::size_t rows, cols; };
    static Rows rows_of(const tensor_type& x, const tensor_type& v, const char* op) {
        detail::require(x.dimension() >= 1 && v.dimension() == 1 && v.size() == x.shape()[0], "sda::CpuBackend::",
                        op, ": per-sample vector of shape ", format_shape(shape_of(v)), " does not match batch ",
                        format_shape(shape_of(x)));
        const std::size_t rows = x.shape()[0];
        return {rows, rows ? x.size() / rows : 0};
    }
    template <class RowSum>
    static tensor_type row_reduce(const tensor_type& x, RowSum&& row_sum) {
        detail::require(x.dimension() >= 1, "sda::CpuBackend: a per-sample reduction needs a batch dimension");
        const std::size_t rows = x.shape()[0], cols = rows ? x.size() / rows : 0;
        tensor_type out = empty_tensor<T>({rows});
        detail::parallel_rows(rows, x.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t r = begin; r < end; ++r) out.data()[r] = row_sum(r, cols);
        });
        return out;
    }
    static tensor_type centres(const tensor_type& in, std::size_t order, std::size_t batch, bool adjoint) {
        const Shape shape = shape_of(in);
        const std::size_t width = 2 * order + 1;
        std::size_t windows = 0;
        if (adjoint) {
            detail::require(shape.size() >= 2 && shape[1] >= width, "sda::CpuBackend::pick_centres_adjoint: shape ",
                            format_shape(shape), " holds fewer than 2K+1 = ", width, " states");
            batch = shape[0];
            windows = shape[1] - 2 * order;
        } else {
            detail::require(shape.size() >= 2 && shape[1] == width && batch >= 1 && shape[0] % batch == 0,
                            "sda::CpuBackend::pick_centres: shape ", format_shape(shape),
                            " is not a batch of ", batch, " sets of ", width, "-state windows");
            windows = shape[0] / batch;
        }
        const std::size_t length = windows + 2 * order;
        const std::size_t state = in.size() / (adjoint ? batch * length : batch * windows * width);
        Shape out_shape = shape;
        out_shape[0] = adjoint ? batch * windows : batch;
        out_shape[1] = adjoint ? width : length;
        tensor_type out = adjoint ? tensor_type(xt::zeros<T>(out_shape)) : empty_tensor<T>(out_shape);
        detail::parallel_rows(batch, in.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t b = begin; b < end; ++b)
                for (std::size_t i = 0; i < length; ++i) {
                    // state i of the trajectory comes from window w at position j
                    const std::size_t w = i < order ? 0 : (i >= length - order ? windows - 1 : i - order);
                    const std::size_t j = i - w;
                    const std::size_t traj = (b * length + i) * state;
                    const std::size_t win = ((b * windows + w) * width + j) * state;
                    std::memcpy(out.data() + (adjoint ? win : traj), in.data() + (adjoint ? traj : win),
                                state * sizeof(T));
                }
        });
        return out;
    }
};

static_assert(Backend<CpuBackend<double>>, "CpuBackend<double> must satisfy sda::Backend");
static_assert(Backend<CpuBackend<float>>, "CpuBackend<float> must satisfy sda::Backend");

}  // namespace sda
