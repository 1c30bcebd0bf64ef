// sda/backend/cpu.hpp: `CpuBackend<T>`, the backend of CPU models on xtensor arrays.
//
// Element-wise work is xtensor expressions; per-sample reductions, gathers and
// scatters are plain loops over contiguous rows, split over samples with oneTBB;
// the matrix products are Eigen GEMMs. Every reduction runs in a fixed order
// within a sample, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
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
    static tensor_type positive(const tensor_type& x) { return xt::where(x > T(0), T(1), T(0)); }

    // --- per sample -----------------------------------------------------------
    static tensor_type scale_rows(const tensor_type& v, const tensor_type& x) {
        const auto [rows, columns] = rows_of(x, v, "scale_rows");
        const std::size_t cols = columns;  // clang 14 cannot capture a structured binding (C++20; clang 16 can)
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

    // --- gather and scatter over per-sample positions -------------------------
    /// Positions into one sample's flat entries, built once (an operator's binding, the Markov
    /// composition) and used at every step. Consecutive positions are kept as runs, so a
    /// gather of whole states is a few copies.
    struct Index {
        std::vector<std::size_t> positions;
        struct Run {
            std::size_t at, from, length;  // positions[at + i] = from + i, i < length
        };
        std::vector<Run> runs;
        std::size_t bound = 0;  // 1 + the largest position (0 when empty)
    };
    using index_type = Index;

    static Index index(std::vector<std::size_t> positions) {
        Index out;
        for (std::size_t k = 0; k < positions.size(); ++k) {
            if (!out.runs.empty() && positions[k] == out.runs.back().from + out.runs.back().length &&
                k == out.runs.back().at + out.runs.back().length)
                ++out.runs.back().length;
            else
                out.runs.push_back({k, positions[k], 1});
            out.bound = std::max(out.bound, positions[k] + 1);
        }
        out.positions = std::move(positions);
        return out;
    }

    /// [B, shape...] with out[b, k] = x[b, positions[k]] over each sample's flat entries.
    static tensor_type gather(const tensor_type& x, const Index& index, const Shape& shape) {
        const std::size_t batch = x.dimension() ? x.shape()[0] : 0, cols = batch ? x.size() / batch : 0;
        const std::size_t m = index.positions.size();
        detail::require(x.dimension() >= 1 && index.bound <= cols && element_count(shape) == m,
                        "sda::CpuBackend::gather: ", m, " positions below ", index.bound, " into samples of ", cols,
                        " entries (shape ", format_shape(shape_of(x)), ") for an output of shape ", format_shape(shape));
        tensor_type out = empty_tensor<T>(batch_shape(batch, shape));
        detail::parallel_rows(batch, out.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t b = begin; b < end; ++b) {
                const T* in = x.data() + b * cols;
                T* o = out.data() + b * m;
                for (const auto& run : index.runs) std::memcpy(o + run.at, in + run.from, run.length * sizeof(T));
            }
        });
        return out;
    }
    /// [B, shape...], zero but out[b, positions[k]] += v[b, k] (in the order of k), the adjoint of `gather`.
    static tensor_type scatter_add(const tensor_type& v, const Index& index, const Shape& shape) {
        const std::size_t batch = v.dimension() ? v.shape()[0] : 0, m = index.positions.size();
        const std::size_t cols = element_count(shape);
        detail::require(v.dimension() >= 1 && (batch ? v.size() / batch : 0) == m && index.bound <= cols,
                        "sda::CpuBackend::scatter_add: ", m, " positions below ", index.bound, " from samples of shape ",
                        format_shape(shape_of(v)), " into an output of shape ", format_shape(shape));
        tensor_type out = xt::zeros<T>(batch_shape(batch, shape));
        detail::parallel_rows(batch, v.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t b = begin; b < end; ++b) {
                const T* in = v.data() + b * m;
                T* o = out.data() + b * cols;
                for (const auto& run : index.runs)
                    for (std::size_t i = 0; i < run.length; ++i) o[run.from + i] += in[run.at + i];
            }
        });
        return out;
    }
    /// The same entries, in the same order, with another shape.
    /// (Taken by value: a temporary is reshaped in place, without a copy.)
    static tensor_type reshape(tensor_type x, const Shape& shape) {
        detail::require(element_count(shape) == x.size(), "sda::CpuBackend::reshape: ", format_shape(shape_of(x)),
                        " cannot become ", format_shape(shape));
        x.reshape(shape);
        return x;
    }

    // --- dense algebra ------------------------------------------------------------
    /// A tensor of `shape` holding `values` (host doubles, row-major).
    static tensor_type from_host(std::span<const double> values, const Shape& shape) {
        detail::require(values.size() == element_count(shape), "sda::CpuBackend::from_host: ", values.size(),
                        " values for shape ", format_shape(shape));
        tensor_type out = empty_tensor<T>(shape);
        std::transform(values.begin(), values.end(), out.begin(), [](double v) { return static_cast<T>(v); });
        return out;
    }
    /// [B, M]: each sample's flat entries times a^T, for a matrix a of shape [M, N].
    static tensor_type matmul(const tensor_type& x, const tensor_type& a) {
        const std::size_t batch = x.dimension() ? x.shape()[0] : 0;
        detail::require(a.dimension() == 2 && x.dimension() >= 1 && batch * a.shape()[1] == x.size(),
                        "sda::CpuBackend::matmul: samples of shape ", format_shape(shape_of(x)),
                        " against a matrix of shape ", format_shape(shape_of(a)));
        using Map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
        const auto rows = static_cast<Eigen::Index>(a.shape()[0]), cols = static_cast<Eigen::Index>(a.shape()[1]);
        tensor_type out = empty_tensor<T>({batch, a.shape()[0]});
        Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            out.data(), static_cast<Eigen::Index>(batch), rows)
            .noalias() = Map(x.data(), static_cast<Eigen::Index>(batch), cols) * Map(a.data(), rows, cols).transpose();
        return out;
    }
    /// [B, N]: each sample's entries times a, for v of shape [B, M] and a of shape [M, N] (`matmul`'s adjoint).
    static tensor_type matmul_adjoint(const tensor_type& v, const tensor_type& a) {
        const std::size_t batch = v.dimension() ? v.shape()[0] : 0;
        detail::require(a.dimension() == 2 && v.dimension() == 2 && v.shape()[1] == a.shape()[0],
                        "sda::CpuBackend::matmul_adjoint: cotangent of shape ", format_shape(shape_of(v)),
                        " against a matrix of shape ", format_shape(shape_of(a)));
        using Map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
        const auto rows = static_cast<Eigen::Index>(a.shape()[0]), cols = static_cast<Eigen::Index>(a.shape()[1]);
        tensor_type out = empty_tensor<T>({batch, a.shape()[1]});
        Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            out.data(), static_cast<Eigen::Index>(batch), cols)
            .noalias() = Map(v.data(), static_cast<Eigen::Index>(batch), rows) * Map(a.data(), rows, cols);
        return out;
    }

    static bool all_finite(const tensor_type& x) {
        return std::all_of(x.begin(), x.end(), [](T value) { return std::isfinite(value); });
    }
    /// The indices b of the samples x[b] with a NaN or infinite entry.
    static std::vector<std::size_t> non_finite_samples(const tensor_type& x) {
        std::vector<std::size_t> out;
        const std::size_t batch = x.dimension() ? x.shape()[0] : 1, per = batch ? x.size() / batch : 0;
        for (std::size_t b = 0; b < batch; ++b)
            if (!std::all_of(x.data() + b * per, x.data() + (b + 1) * per, [](T value) { return std::isfinite(value); }))
                out.push_back(b);
        return out;
    }
    static double min(const tensor_type& x) {
        detail::require(x.size() > 0, "sda::CpuBackend::min: empty tensor");
        return static_cast<double>(*std::min_element(x.begin(), x.end()));
    }

protected:  // the shape check, shared with backends built on this one (sda::mpi::Backend)
    static void same_shape(const tensor_type& x, const tensor_type& y, const char* op) {
        detail::require(std::equal(x.shape().begin(), x.shape().end(), y.shape().begin(), y.shape().end()),
                        "sda::CpuBackend::", op, ": shapes ", format_shape(shape_of(x)), " and ",
                        format_shape(shape_of(y)), " differ");
    }

private:
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
};

static_assert(Backend<CpuBackend<double>>, "CpuBackend<double> must satisfy sda::Backend");
static_assert(Backend<CpuBackend<float>>, "CpuBackend<float> must satisfy sda::Backend");

}  // namespace sda
