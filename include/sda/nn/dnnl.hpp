// sda/nn/dnnl.hpp: float convolutions through oneDNN, the kernels `sda::nn::Conv`
// uses for float maps when the program links `sda::dnnl` (which defines
// SDA_WITH_DNNL; Debian: libdnnl-dev). Included by sda/nn/conv.hpp then; not
// meant to be used alone.
//
// Maps stay channels-last (oneDNN's nhwc, a 1-D signal being one row of
// pixels); weights keep PyTorch's [out, in, (k,) k] and are reordered into
// the layout oneDNN's kernel picks, once: `WeightCache` keeps the reordering
// until the values change. oneDNN pads with zeros only: a circular
// convolution runs on a copy of its input with the wrapped rows and columns
// around it, and its input gradient is folded back onto the map (the adjoint
// of that copy). With `Shape::winograd`, 3 x 3 convolutions at stride 1 use
// Winograd's F(4x4, 3x3) (on oneDNN's blocked maps, reordered in and out),
// where oneDNN implements it for the CPU.
//
// Every call runs on the calling thread alone. sda's networks split a batch
// into fixed chunks over oneTBB tasks, one thread each, and oneDNN's OpenMP
// threads would only oversubscribe the cores. Single-threaded, the result of a
// convolution does not depend on how many cores the machine has (it does on
// which kernels oneDNN picks for the CPU, as Eigen's do on -march).
#pragma once

#if !defined(SDA_WITH_DNNL)
#error "sda/nn/dnnl.hpp needs oneDNN: link sda::dnnl, which defines SDA_WITH_DNNL"
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <Eigen/Core>
#include <oneapi/dnnl/dnnl.hpp>

#include "sda/core/eigen.hpp"
#include "sda/core/memory.hpp"
#include "sda/nn/matmul.hpp"

namespace sda::nn::dnnl_kernels {

/// The shape of one convolution call: n maps of `height` x `width` pixels and `in`
/// channels to maps of `out_height` x `out_width` pixels and `out` channels, with a
/// square (2-D) or 1 x k (1-D) kernel, stride and 'same' padding of kernel / 2.
struct Shape {
    long n = 0, in = 0, out = 0, height = 1, width = 1, out_height = 1, out_width = 1;
    long kernel_height = 1, kernel = 1, stride = 1;
    bool circular = false;
    bool winograd = false;  ///< Winograd's algorithm where it applies (3 x 3, stride 1)

    long pad_height() const { return kernel_height / 2; }
    long pad_width() const { return kernel / 2; }
    /// The rows and columns the convolution reads, padding included.
    long reach_height() const { return (out_height - 1) * stride + kernel_height; }
    long reach_width() const { return (out_width - 1) * stride + kernel; }
    /// oneDNN gets an explicitly padded copy (and no padding of its own) when the padding
    /// is circular, or when the map's far side would need a negative padding.
    bool copies_input() const {
        return circular || reach_height() < height + pad_height() || reach_width() < width + pad_width();
    }
    long input_height() const { return copies_input() ? reach_height() : height; }
    long input_width() const { return copies_input() ? reach_width() : width; }
};

namespace detail {

using dnnl::memory;
using tag = memory::format_tag;

// one engine, a stream per thread, oneDNN on the calling thread only, and memories over the
// caller's buffers: those of the matrix products
using sda::nn::detail::onednn::engine;
using sda::nn::detail::onednn::OneThread;
using sda::nn::detail::onednn::stream;
using sda::nn::detail::onednn::wrap;

inline memory::desc map_desc(long n, long c, long h, long w) {
    return memory::desc({n, c, h, w}, memory::data_type::f32, tag::nhwc);
}

/// What oneDNN sees of a call: the (possibly copied) input map and the output map in the
/// callers' layout, the weights, the padding, and the algorithm.
struct Descs {
    memory::desc src, dst, weights_any, weights_user, bias;
    memory::dims strides, pad_before, pad_after;
    dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;

    /// The maps' layouts the primitive is asked for: the callers' (direct), or oneDNN's choice.
    memory::desc src_wanted() const { return winograd() ? any(src) : src; }
    memory::desc dst_wanted() const { return winograd() ? any(dst) : dst; }
    bool winograd() const { return algorithm == dnnl::algorithm::convolution_winograd; }

private:
    static memory::desc any(const memory::desc& d) { return memory::desc(d.dims(), memory::data_type::f32, tag::any); }
};

inline Descs descs(const Shape& s, dnnl::algorithm algorithm) {
    Descs d;
    d.src = map_desc(s.n, s.in, s.input_height(), s.input_width());
    d.dst = map_desc(s.n, s.out, s.out_height, s.out_width);
    const memory::dims w{s.out, s.in, s.kernel_height, s.kernel};
    d.weights_any = memory::desc(w, memory::data_type::f32, tag::any);
    d.weights_user = memory::desc(w, memory::data_type::f32, tag::oihw);  // PyTorch's layout; 1-D: kernel height 1
    d.bias = memory::desc({s.out}, memory::data_type::f32, tag::x);
    d.strides = {s.stride, s.stride};
    if (s.copies_input()) {
        d.pad_before = {0, 0};
        d.pad_after = {0, 0};
    } else {
        d.pad_before = {s.pad_height(), s.pad_width()};
        d.pad_after = {s.reach_height() - s.height - s.pad_height(), s.reach_width() - s.width - s.pad_width()};
    }
    d.algorithm = algorithm;
    return d;
}

/// The forward primitive of a call, and the descriptions it was made from: Winograd's
/// F(4x4, 3x3) where the shape allows it and oneDNN implements it, else direct.
struct Forward {
    Descs d;
    dnnl::convolution_forward::primitive_desc pd;
};

inline Forward forward_pd(const Shape& s, dnnl::prop_kind kind) {
    const auto make = [&](dnnl::algorithm algorithm) {
        Descs d = descs(s, algorithm);
        dnnl::convolution_forward::primitive_desc pd(
            dnnl::convolution_forward::desc(kind, algorithm, d.src_wanted(), d.weights_any, d.bias, d.dst_wanted(), d.strides,
                                            d.pad_before, d.pad_after),
            engine());
        return Forward{std::move(d), std::move(pd)};
    };
    if (s.winograd && s.kernel_height == 3 && s.kernel == 3 && s.stride == 1) {
        try {
            return make(dnnl::algorithm::convolution_winograd);
        } catch (const dnnl::error&) {  // not implemented for this shape or CPU: direct
        }
    }
    return make(dnnl::algorithm::convolution_direct);
}

/// `user` in the layout `wanted`: itself, or a reordered copy.
inline memory as(memory user, const memory::desc& wanted) {
    if (user.get_desc() == wanted) return user;
    memory copy(wanted, engine());
    dnnl::reorder(user, copy).execute(stream(), user, copy);
    return copy;
}

/// Where a primitive writes an output the caller wants in `user`: `user` itself or a scratch
/// memory of the layout `wanted`, copied back by `finish`.
inline memory output(const memory& user, const memory::desc& wanted) {
    return user.get_desc() == wanted ? user : memory(wanted, engine());
}
inline void finish(memory& written, memory& user) {
    if (written.get_data_handle() != user.get_data_handle()) dnnl::reorder(written, user).execute(stream(), written, user);
    stream().wait();
}

/// Row `i` of the padded copy is row `i - pad` of the map, wrapped (circular) or none (-1).
inline long source(long i, long pad, long size, bool circular) {
    const long at = i - pad;
    if (at >= 0 && at < size) return at;
    return circular ? ((at % size) + size) % size : -1;
}

/// The input map X (rows of `ld` floats) as oneDNN's src: X itself when it is dense and
/// needs no copy, else a dense padded copy in `buffer`.
inline const float* input(const Shape& s, const float* X, long ld, AlignedVector<float>& buffer) {
    if (!s.copies_input() && ld == s.in) return X;
    const long H = s.input_height(), W = s.input_width(), c = s.in;
    buffer.resize(static_cast<std::size_t>(s.n * H * W * c));
    for (long b = 0; b < s.n; ++b)
        for (long i = 0; i < H; ++i) {
            const long y = s.copies_input() ? source(i, s.pad_height(), s.height, s.circular) : i;
            for (long j = 0; j < W; ++j) {
                float* dst = buffer.data() + ((b * H + i) * W + j) * c;
                const long x = s.copies_input() ? source(j, s.pad_width(), s.width, s.circular) : j;
                if (y < 0 || x < 0) std::fill(dst, dst + c, 0.f);
                else std::copy_n(X + ((b * s.height + y) * s.width + x) * ld, c, dst);
            }
        }
    return buffer.data();
}

/// A dense copy of rows of `cols` floats `ld` apart, in `buffer`; the rows themselves when dense.
inline const float* dense(const float* rows, long count, long cols, long ld, AlignedVector<float>& buffer) {
    if (ld == cols) return rows;
    buffer.resize(static_cast<std::size_t>(count * cols));
    Eigen::Map<RowMatrix<float>>(buffer.data(), count, cols) =
        Eigen::Map<const RowMatrix<float>, 0, Eigen::OuterStride<>>(rows, count, cols, Eigen::OuterStride<>(ld));
    return buffer.data();
}


/// Weights reordered into a primitive's layout, kept while the caller's values stay the same.
///
/// Reordering is a pass over the weights per call, and for Winograd's algorithm a transform
/// that costs several times the convolution of a small batch. An entry is keyed by the
/// caller's buffer and the layout, and holds a copy of the values it was made from: a call
/// whose values differ in any bit (an optimiser step, other weights at the same address)
/// reorders again. Shared by all threads; a network's chunks reuse one reordering. Entries
/// beyond `budget` bytes (those of networks no longer used, first) are dropped, least
/// recently used first.
class WeightCache {
public:
    /// At most this many bytes of copies and reorderings are kept (2 GiB unless set); one
    /// entry is kept whatever its size.
    void set_budget(std::size_t bytes) {
        const std::lock_guard<std::mutex> lock(mutex_);
        budget_ = bytes;
        shrink();
    }
    /// Bytes held now.
    std::size_t bytes() const {
        const std::lock_guard<std::mutex> lock(mutex_);
        return held();
    }

    memory get(const float* w, const memory::desc& user, const memory::desc& wanted) {
        const std::size_t count = user.get_size() / sizeof(float);
        std::shared_ptr<const Entry> found;
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            for (Slot& slot : slots_)
                if (slot.entry->source == w && slot.entry->wanted == wanted && slot.entry->values.size() == count) {
                    found = slot.entry;
                    slot.last_use = ++clock_;
                }
        }
        // entries never change once made: compare (and reorder) outside the lock
        if (found && std::memcmp(found->values.data(), w, count * sizeof(float)) == 0) return found->reordered;
        auto fresh = std::make_shared<const Entry>(w, user, wanted);
        const std::lock_guard<std::mutex> lock(mutex_);
        std::erase_if(slots_, [&](const Slot& slot) { return slot.entry->source == w && slot.entry->wanted == wanted; });
        slots_.push_back({fresh, ++clock_});
        shrink();
        return fresh->reordered;
    }

    static WeightCache& instance() {
        static WeightCache cache;
        return cache;
    }

private:
    struct Entry {
        const float* source;
        memory::desc wanted;
        std::vector<float> values;  // what `reordered` was made from
        memory reordered;
        Entry(const float* w, const memory::desc& user, const memory::desc& wanted_)
            : source(w), wanted(wanted_), values(w, w + user.get_size() / sizeof(float)), reordered(wanted_, engine()) {
            memory from = wrap(user, values.data());
            dnnl::reorder(from, reordered).execute(stream(), from, reordered);
            stream().wait();
        }
        std::size_t bytes() const { return values.size() * sizeof(float) + wanted.get_size(); }
    };
    struct Slot {
        std::shared_ptr<const Entry> entry;
        std::uint64_t last_use = 0;
    };
    std::size_t held() const {
        std::size_t bytes = 0;
        for (const Slot& slot : slots_) bytes += slot.entry->bytes();
        return bytes;
    }
    /// Drops the least recently used entries until the rest fit the budget (the lock held).
    void shrink() {
        std::size_t bytes = held();
        while (bytes > budget_ && slots_.size() > 1) {
            const auto oldest = std::min_element(slots_.begin(), slots_.end(),
                                                 [](const Slot& a, const Slot& b) { return a.last_use < b.last_use; });
            bytes -= oldest->entry->bytes();
            slots_.erase(oldest);
        }
    }

    mutable std::mutex mutex_;
    std::vector<Slot> slots_;
    std::uint64_t clock_ = 0;
    std::size_t budget_ = std::size_t(2) << 30;
};

/// The weights `w` (PyTorch's layout) in the layout `wanted`: the buffer itself, or a cached reordering.
inline memory weights(const Descs& d, const float* w, const memory::desc& wanted) {
    if (wanted == d.weights_user) return wrap(d.weights_user, w);
    return WeightCache::instance().get(w, d.weights_user, wanted);
}

}  // namespace detail

/// Y = conv(X) + bias: X [n * pixels, in] and Y [n * output pixels, out], rows `ld_x`, `ld_y` apart.
inline void forward(const Shape& s, const float* w, const float* bias, const float* X, long ld_x, float* Y, long ld_y) {
    using namespace detail;
    const OneThread one;
    const auto [d, pd] = forward_pd(s, dnnl::prop_kind::forward_inference);
    AlignedVector<float> padded, result;
    const long rows_out = s.n * s.out_height * s.out_width;
    float* dst = ld_y == s.out ? Y : (result.resize(static_cast<std::size_t>(rows_out * s.out)), result.data());
    memory dst_user = wrap(d.dst, dst), dst_m = output(dst_user, pd.dst_desc());
    dnnl::convolution_forward(pd).execute(stream(), {{DNNL_ARG_SRC, as(wrap(d.src, input(s, X, ld_x, padded)), pd.src_desc())},
                                                     {DNNL_ARG_WEIGHTS, weights(d, w, pd.weights_desc())},
                                                     {DNNL_ARG_BIAS, wrap(d.bias, bias)},
                                                     {DNNL_ARG_DST, dst_m}});
    finish(dst_m, dst_user);
    if (dst != Y)
        Eigen::Map<RowMatrix<float>, 0, Eigen::OuterStride<>>(Y, rows_out, s.out, Eigen::OuterStride<>(ld_y)) =
            Eigen::Map<const RowMatrix<float>>(dst, rows_out, s.out);
}

/// dX = (d conv / dX)^T dY, or dX += with `accumulate`.
inline void backward_input(const Shape& shape, const float* w, const float* dY, long ld_dy, float* dX, long ld_dx, bool accumulate) {
    using namespace detail;
    const OneThread one;
    // oneDNN's Winograd input gradient trails the direct one on small maps (0.7x at 8 x 8, 1.2x at
    // 16 x 16, 2x at 64 x 64, one thread, 2 samples of 128, 64 and 96 channels)
    Shape s = shape;
    if (s.out_height < 16 || s.out_width < 16) s.winograd = false;
    const auto [d, hint] = forward_pd(s, dnnl::prop_kind::forward_training);
    const dnnl::convolution_backward_data::primitive_desc pd(
        dnnl::convolution_backward_data::desc(d.algorithm, d.src_wanted(), d.weights_any, d.dst_wanted(), d.strides,
                                              d.pad_before, d.pad_after),
        engine(), hint);
    AlignedVector<float> dense_dy, result;
    const long rows_out = s.n * s.out_height * s.out_width, rows_in = s.n * s.input_height() * s.input_width();
    const bool direct = !s.copies_input() && !accumulate && ld_dx == s.in;
    float* diff_src = direct ? dX : (result.resize(static_cast<std::size_t>(rows_in * s.in)), result.data());
    memory src_user = wrap(d.src, diff_src), src_m = output(src_user, pd.diff_src_desc());
    dnnl::convolution_backward_data(pd).execute(
        stream(), {{DNNL_ARG_DIFF_DST, as(wrap(d.dst, dense(dY, rows_out, s.out, ld_dy, dense_dy)), pd.diff_dst_desc())},
                   {DNNL_ARG_WEIGHTS, weights(d, w, pd.weights_desc())},
                   {DNNL_ARG_DIFF_SRC, src_m}});
    finish(src_m, src_user);
    if (direct) return;
    const long rows = s.n * s.height * s.width;
    Eigen::Map<RowMatrix<float>, 0, Eigen::OuterStride<>> out(dX, rows, s.in, Eigen::OuterStride<>(ld_dx));
    if (!s.copies_input()) {  // only the accumulation or the stride of dX differ
        const Eigen::Map<const RowMatrix<float>> g(diff_src, rows, s.in);
        if (accumulate) out += g;
        else out = g;
        return;
    }
    if (!accumulate) out.setZero();
    // fold the padded copy's gradient back onto the pixels it copied (the adjoint of `input`)
    const long H = s.input_height(), W = s.input_width();
    for (long b = 0; b < s.n; ++b)
        for (long i = 0; i < H; ++i) {
            const long y = source(i, s.pad_height(), s.height, s.circular);
            if (y < 0) continue;
            for (long j = 0; j < W; ++j) {
                const long x = source(j, s.pad_width(), s.width, s.circular);
                if (x < 0) continue;
                const float* g = diff_src + ((b * H + i) * W + j) * s.in;
                float* target = dX + ((b * s.height + y) * s.width + x) * ld_dx;
                for (long c = 0; c < s.in; ++c) target[c] += g[c];
            }
        }
}

/// grad(W) += dY^T-weighted input patches, grad(b) += column sums of dY (PyTorch's layouts).
inline void backward_params(const Shape& s, const float* X, long ld_x, const float* dY, long ld_dy, float* grad_w, float* grad_b) {
    using namespace detail;
    const OneThread one;
    const auto [d, hint] = forward_pd(s, dnnl::prop_kind::forward_training);
    const dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(d.algorithm, d.src_wanted(), d.weights_any, d.bias, d.dst_wanted(), d.strides,
                                                 d.pad_before, d.pad_after),
        engine(), hint);
    AlignedVector<float> padded, dense_dy, gw(static_cast<std::size_t>(s.out * s.in * s.kernel_height * s.kernel)),
        gb(static_cast<std::size_t>(s.out));
    const long rows_out = s.n * s.out_height * s.out_width;
    memory w_user = wrap(d.weights_user, gw.data()), w_m = output(w_user, pd.diff_weights_desc());
    memory b_user = wrap(d.bias, gb.data()), b_m = output(b_user, pd.diff_bias_desc());
    dnnl::convolution_backward_weights(pd).execute(
        stream(), {{DNNL_ARG_SRC, as(wrap(d.src, input(s, X, ld_x, padded)), pd.src_desc())},
                   {DNNL_ARG_DIFF_DST, as(wrap(d.dst, dense(dY, rows_out, s.out, ld_dy, dense_dy)), pd.diff_dst_desc())},
                   {DNNL_ARG_DIFF_WEIGHTS, w_m},
                   {DNNL_ARG_DIFF_BIAS, b_m}});
    finish(w_m, w_user);
    finish(b_m, b_user);
    using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
    Eigen::Map<Array>(grad_w, static_cast<Eigen::Index>(gw.size())) += Eigen::Map<const Array>(gw.data(), static_cast<Eigen::Index>(gw.size()));
    Eigen::Map<Array>(grad_b, s.out) += Eigen::Map<const Array>(gb.data(), s.out);
}

}  // namespace sda::nn::dnnl_kernels
