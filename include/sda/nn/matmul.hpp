// sda/nn/matmul.hpp: the matrix products of sda's fully connected layers, and the
// precision their sampling passes may run in.
//
// Three products on row-major blocks cover every layer (X activations, W a weight
// [out, in] in PyTorch's layout, dY a cotangent):
//   multiply_transposed: Y = X W^T + b, or Y += X W^T + b  (forward)
//   multiply:            Y = dY W, or Y += dY W            (input gradient)
//   add_transposed:      G += dY^T X                       (weight gradient)
// In float, in a program that links `sda::dnnl` (SDA_WITH_DNNL; Debian:
// libdnnl-dev), they run oneDNN's matmul on the calling thread; otherwise, and in
// double, Eigen's GEMM. At the ResMLP's shapes oneDNN's kernels run at 1.3-1.8x
// Eigen's on AVX-512 (bench/bench_network). Single-threaded either way, so a
// product's bits never depend on the thread count (sda/nn/chunks.hpp).
//
// `Precision::bfloat16` is the opt-in reduced precision of sampling passes:
// weights and activations rounded to bfloat16 (8-bit mantissa) at each product,
// products accumulated and everything else (LayerNorm, activations, residual sums)
// computed in float. It needs oneDNN and a CPU with bfloat16 instructions
// (AVX512-BF16 or AMX); `check_bfloat16` says why not otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"

#if defined(SDA_WITH_DNNL)
#include <map>
#include <tuple>
#include <type_traits>
#include <unordered_map>

#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace sda::nn {

/// The arithmetic of a network's sampling passes (eps, linearize, vjp). Training is always float.
enum class Precision {
    float32,   ///< the network's own scalar type throughout
    bfloat16,  ///< products on bfloat16 weights and activations, accumulated in float
};

/// Parameters rounded to bfloat16, element for element (same offsets as the float buffer).
using BFloat16 = Eigen::bfloat16;

namespace detail {
inline std::string bfloat16_unavailable();
}

/// Whether `Precision::bfloat16` can run here: a program linked to oneDNN (`sda::dnnl`) on a CPU
/// with bfloat16 instructions. `set_sampling_precision` says why not otherwise.
inline bool bfloat16_available() { return detail::bfloat16_unavailable().empty(); }

namespace detail {

template <class T>
using ConstBlock = Eigen::Ref<const RowMatrix<T>>;
template <class T>
using Block = Eigen::Ref<RowMatrix<T>>;

/// Empty when bfloat16 products can run here, else why not.
inline std::string bfloat16_unavailable() {
#if defined(SDA_WITH_DNNL)
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto needed = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
    if ((isa & needed) == needed) return {};
    return "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX)";
#else
    return "it needs oneDNN: link sda::dnnl (Debian: libdnnl-dev)";
#endif
}

/// Throws `sda::error` naming `who` unless bfloat16 products can run here.
inline void check_bfloat16(const std::string& who) {
    const std::string why = bfloat16_unavailable();
    sda::detail::require(why.empty(), who, ": bfloat16 sampling is not available: ", why);
}

#if defined(SDA_WITH_DNNL)
namespace onednn {

using dnnl::memory;
using dims = memory::dims;

inline const dnnl::engine& engine() {
    static const dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
    return cpu;
}
inline dnnl::stream& stream() {
    thread_local dnnl::stream s(engine());
    return s;
}

/// A oneDNN memory over the caller's buffer (oneDNN takes non-const handles; inputs are only read).
inline memory wrap(const memory::desc& d, const void* data) { return memory(d, engine(), const_cast<void*>(data)); }

/// OpenMP (oneDNN's threads) at one thread for the scope: the caller's oneTBB task is the parallelism.
class OneThread {
public:
    OneThread() : saved_(omp_get_max_threads()) {
        if (saved_ != 1) omp_set_num_threads(1);
    }
    ~OneThread() {
        if (saved_ != 1) omp_set_num_threads(saved_);
    }
    OneThread(const OneThread&) = delete;
    OneThread& operator=(const OneThread&) = delete;

private:
    int saved_;
};

/// A matrix operand: rows x cols, element (i, j) at i * row_stride + j * col_stride.
struct Operand {
    long rows = 0, cols = 0, row_stride = 0, col_stride = 1;
    auto key() const { return std::tuple{rows, cols, row_stride, col_stride}; }
    memory::desc desc(memory::data_type type) const { return memory::desc({rows, cols}, type, dims{row_stride, col_stride}); }
    memory::desc dense(memory::data_type type) const { return memory::desc({rows, cols}, type, dims{cols, 1}); }
    /// Stored without gaps, by rows or by columns.
    bool dense() const { return (col_stride == 1 && row_stride == cols) || (row_stride == 1 && col_stride == rows); }
    /// A row-major dense copy of the operand at `data`, in `buffer`.
    template <class S>
    const S* copy_dense(const S* data, AlignedVector<S>& buffer) const {
        buffer.resize(static_cast<std::size_t>(rows * cols));
        for (long i = 0; i < rows; ++i)
            for (long j = 0; j < cols; ++j) buffer[static_cast<std::size_t>(i * cols + j)] = data[i * row_stride + j * col_stride];
        return buffer.data();
    }
};

/// C (+)= A B (+ bias row) in oneDNN, primitives kept per thread by shape. With `low_b` null,
/// all in float; otherwise A is rounded to bfloat16 into a per-thread buffer and `low_b` is B in
/// bfloat16, same strides as B. A B that is a block of a wider matrix (a weight's leading
/// columns) is copied dense first: oneDNN's fast kernels take dense weights only (strided ones
/// ran 10-60x slower, in its generic gemm).
inline void gemm(const Operand& a, const float* A, Operand b, const float* B, const BFloat16* low_b, float* C, long ldc,
                 const float* bias, bool accumulate) {
    using dt = memory::data_type;
    const OneThread one;  // from here: primitives are made for the threads they run on
    const bool low = low_b != nullptr;
    if (!b.dense()) {
        if (low) {
            thread_local AlignedVector<BFloat16> copy;
            low_b = b.copy_dense(low_b, copy);
        } else {
            thread_local AlignedVector<float> copy;
            B = b.copy_dense(B, copy);
        }
        b = Operand{b.rows, b.cols, b.cols, 1};
    }
    const Operand c{a.rows, b.cols, ldc, 1};
    const memory::desc bias_desc({1, b.cols}, dt::f32, dims{b.cols, 1});
    using Key = std::tuple<decltype(a.key()), decltype(b.key()), long, bool, bool, bool>;
    struct Entry {
        dnnl::matmul product;
        dnnl::reorder round;  // A to bfloat16
    };
    thread_local std::map<Key, Entry> primitives;
    const Key key{a.key(), b.key(), ldc, bias != nullptr, accumulate, low};
    auto found = primitives.find(key);
    if (found == primitives.end()) {
        if (primitives.size() >= 512) primitives.clear();  // a bound for programs of many shapes
        const dt type = low ? dt::bf16 : dt::f32;
        dnnl::primitive_attr attr;
        if (accumulate) {
            dnnl::post_ops ops;
            ops.append_sum(1.f);
            attr.set_post_ops(ops);
        }
        const memory::desc a_desc = low ? a.dense(type) : a.desc(type), b_desc = b.desc(type), c_desc = c.desc(dt::f32);
        const auto desc = bias ? dnnl::matmul::desc(a_desc, b_desc, bias_desc, c_desc)
                               : dnnl::matmul::desc(a_desc, b_desc, c_desc);
        Entry entry{dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine())), {}};
        if (low) entry.round = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), a.desc(dt::f32), engine(), a_desc));
        found = primitives.emplace(key, std::move(entry)).first;
    }
    std::unordered_map<int, memory> args{{DNNL_ARG_DST, wrap(c.desc(dt::f32), C)}};
    if (bias) args.emplace(DNNL_ARG_BIAS, wrap(bias_desc, bias));
    if (low) {
        thread_local AlignedVector<BFloat16> rounded;
        rounded.resize(static_cast<std::size_t>(a.rows * a.cols));
        memory from = wrap(a.desc(dt::f32), A), to = wrap(a.dense(dt::bf16), rounded.data());
        found->second.round.execute(stream(), from, to);
        args.emplace(DNNL_ARG_SRC, to);
        args.emplace(DNNL_ARG_WEIGHTS, wrap(b.desc(dt::bf16), low_b));
    } else {
        args.emplace(DNNL_ARG_SRC, wrap(a.desc(dt::f32), A));
        args.emplace(DNNL_ARG_WEIGHTS, wrap(b.desc(dt::f32), B));
    }
    found->second.product.execute(stream(), args);
    stream().wait();
}

inline Operand plain(long rows, long cols, long ld) { return {rows, cols, ld, 1}; }
inline Operand transposed(long rows, long cols, long ld) { return {cols, rows, 1, ld}; }  // of a rows x cols block

}  // namespace onednn

/// oneDNN takes the product when the scalar is float (and every size is positive: `check_shapes`).
template <class T>
constexpr bool onednn_scalar = std::is_same_v<T, float>;
#endif

/// Refuses a product (m x k) (k2 x n) into C unless k == k2 and C is m x n: oneDNN would
/// read and write past the buffers where Eigen's debug build would assert. Returns whether
/// every size is positive: oneDNN takes only those (Eigen the empty ones).
template <class Out>
bool check_shapes(const char* what, Eigen::Index m, Eigen::Index k, Eigen::Index k2, Eigen::Index n, const Out& C) {
    sda::detail::require(k == k2 && C.rows() == m && C.cols() == n, "sda::nn: the product ", what, " of ", m, " x ", k,
                         " by ", k2, " x ", n, " into ", C.rows(), " x ", C.cols());
    return m > 0 && k > 0 && n > 0;
}

/// Y = X W^T + bias (bias may be null), or Y += X W^T + bias with `accumulate`. `low_w`: W in
/// bfloat16 (same strides), for a bfloat16 product; null for the scalar type's.
template <class T>
void multiply_transposed(const ConstBlock<T>& X, const ConstBlock<T>& W, Block<T> Y, const T* bias, bool accumulate,
                         const BFloat16* low_w = nullptr) {
    [[maybe_unused]] const bool sized = check_shapes("X W^T", X.rows(), X.cols(), W.cols(), W.rows(), Y);
#if defined(SDA_WITH_DNNL)
    if constexpr (onednn_scalar<T>) {
        if (sized) {
            onednn::gemm(onednn::plain(X.rows(), X.cols(), X.outerStride()), X.data(),
                         onednn::transposed(W.rows(), W.cols(), W.outerStride()), W.data(), low_w, Y.data(),
                         Y.outerStride(), bias, accumulate);
            return;
        }
    }
#endif
    sda::detail::require(low_w == nullptr, "sda::nn: a bfloat16 product without oneDNN");
    if (accumulate) Y.noalias() += X * W.transpose();
    else Y.noalias() = X * W.transpose();
    if (bias) Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, W.rows());
}

/// Y = dY W, or Y += dY W with `accumulate`; `low_w` as for `multiply_transposed`.
template <class T>
void multiply(const ConstBlock<T>& dY, const ConstBlock<T>& W, Block<T> Y, bool accumulate, const BFloat16* low_w = nullptr) {
    [[maybe_unused]] const bool sized = check_shapes("dY W", dY.rows(), dY.cols(), W.rows(), W.cols(), Y);
#if defined(SDA_WITH_DNNL)
    if constexpr (onednn_scalar<T>) {
        if (sized) {
            onednn::gemm(onednn::plain(dY.rows(), dY.cols(), dY.outerStride()), dY.data(),
                         onednn::plain(W.rows(), W.cols(), W.outerStride()), W.data(), low_w, Y.data(), Y.outerStride(),
                         nullptr, accumulate);
            return;
        }
    }
#endif
    sda::detail::require(low_w == nullptr, "sda::nn: a bfloat16 product without oneDNN");
    if (accumulate) Y.noalias() += dY * W;
    else Y.noalias() = dY * W;
}

/// G += dY^T X (always in the scalar type: a training product).
template <class T>
void add_transposed(const ConstBlock<T>& dY, const ConstBlock<T>& X, Block<T> G) {
    [[maybe_unused]] const bool sized = check_shapes("dY^T X", dY.cols(), dY.rows(), X.rows(), X.cols(), G);
#if defined(SDA_WITH_DNNL)
    if constexpr (onednn_scalar<T>) {
        if (sized) {
            onednn::gemm(onednn::transposed(dY.rows(), dY.cols(), dY.outerStride()), dY.data(),
                         onednn::plain(X.rows(), X.cols(), X.outerStride()), X.data(), nullptr, G.data(), G.outerStride(),
                         nullptr, true);
            return;
        }
    }
#endif
    G.noalias() += dY.transpose() * X;
}

/// b += the column sums of dY (a bias gradient), for `b` of dY.cols() entries anywhere in
/// memory: the sums go into an aligned row first, since a vectorised sum straight into `b`
/// would take the scalar or the packet path per column depending on where `b` starts.
template <class T>
void add_column_sums(const ConstBlock<T>& dY, T* b) {
    const Eigen::Matrix<T, 1, Eigen::Dynamic> sums = dY.colwise().sum();
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(b, dY.cols()) += sums;
}

/// `n` floats rounded to bfloat16 (to nearest, ties to even), into `out`.
inline void round_to_bfloat16(const float* x, std::size_t n, BFloat16* out) {
#if defined(SDA_WITH_DNNL)
    using onednn::memory;
    const onednn::OneThread one;
    const memory::desc from({static_cast<long>(n)}, memory::data_type::f32, memory::format_tag::a),
        to({static_cast<long>(n)}, memory::data_type::bf16, memory::format_tag::a);
    memory src = onednn::wrap(from, x), dst = onednn::wrap(to, out);
    dnnl::reorder(src, dst).execute(onednn::stream(), src, dst);
    onednn::stream().wait();
#else
    for (std::size_t i = 0; i < n; ++i) out[i] = BFloat16(x[i]);
#endif
}

}  // namespace detail
}  // namespace sda::nn
