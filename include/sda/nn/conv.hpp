// sda/nn/conv.hpp: 1-D and 2-D convolutions (PyTorch's nn.Conv1d / nn.Conv2d
// with 'same' padding, zero or circular, and an optional stride) and nearest
// upsampling, the layers of the U-Net score network.
//
// Feature maps are channels-last matrices: n samples of a `Grid` of pixels, one
// row per pixel (sample-major, then row-major pixels) and one column per
// channel. A convolution is then im2col plus one GEMM: row r of the column
// matrix holds the k x k neighbourhood of output pixel r, tap by tap, so
//   Y = cols W_taps^T + b,  W_taps[o, tap * in + c] = W[o, c, tap],
// and both backward products are GEMMs with the same column matrix. Weights
// keep PyTorch's layout [out, in, (k,) k] and default initialisation.
// Layer norms over channels and per-channel shifts are row operations in
// this layout.
//
// With `sda::dnnl` linked (SDA_WITH_DNNL), float convolutions wider than one
// pixel run in oneDNN instead (sda/nn/dnnl.hpp), on the same layouts; the
// im2col kernels stay for double, 1 x 1 convolutions (plain GEMMs) and as
// the reference the tests hold oneDNN to (`forward_im2col`, ...). Every kernel
// runs on the calling thread: the networks parallelise over chunks of a batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/nn/matmul.hpp"
#include "sda/nn/parameters.hpp"

#if defined(SDA_WITH_DNNL)
#include "sda/nn/dnnl.hpp"
#endif

namespace sda::nn {

/// Whether this program's float convolutions run in oneDNN (it links `sda::dnnl`).
#if defined(SDA_WITH_DNNL)
inline constexpr bool dnnl_convolutions = true;
#else
inline constexpr bool dnnl_convolutions = false;
#endif

/// Which algorithm a oneDNN convolution may use: `direct`, or the `fastest` oneDNN has for
/// the shape (Winograd's F(4x4, 3x3) for 3 x 3 kernels at stride 1: about twice the speed,
/// float errors 1.3-1.5 times the direct algorithm's, both near 1e-6 of eps on the
/// Kolmogorov U-Nets). Its weights are transformed once and cached until they change, so it
/// pays when weights stay fixed over many calls (sampling), not in training. The im2col
/// kernels are always direct.
enum class ConvAlgorithm { direct, fastest };

/// How a convolution sees beyond the edge: zeros, or the periodic continuation.
enum class Padding { zeros, circular };

inline std::string_view name_of(Padding p) { return p == Padding::zeros ? "zeros" : "circular"; }

inline Padding padding_from_name(std::string_view name) {
    if (name == "zeros") return Padding::zeros;
    if (name == "circular") return Padding::circular;
    sda::detail::fail("sda::nn: unknown padding \"", std::string(name), "\" (expected zeros or circular)");
}

/// JSON as the name (configurations, sda/nn/config.hpp); an unknown name throws `sda::error`.
inline void to_json(nlohmann::json& j, Padding p) { j = std::string(name_of(p)); }
inline void from_json(const nlohmann::json& j, Padding& p) { p = padding_from_name(j.get<std::string>()); }

/// The pixels of one feature map: height x width (height 1 for 1-D signals).
struct Grid {
    std::size_t height = 1, width = 1;
    std::size_t pixels() const { return height * width; }
    bool operator==(const Grid&) const = default;
};

/// A convolution of `spatial` = 1 or 2 dimensions with an odd kernel, padding
/// kernel / 2 on each side ('same' size at stride 1, half size at stride 2).
template <class T>
struct Conv {
    using ConstRef = Eigen::Ref<const RowMatrix<T>>;
    using Ref = Eigen::Ref<RowMatrix<T>>;

    std::size_t spatial = 2, in = 0, out = 0, kernel = 3, stride = 1;
    Padding padding = Padding::circular;
    std::size_t weight = 0, bias = 0;  ///< offsets in the parameter buffer

    Conv() = default;
    /// Registers "<name>.weight" [out, in, k] (1-D) or [out, in, k, k] (2-D) and "<name>.bias" [out].
    Conv(ParameterSet<T>& params, const std::string& name, std::size_t spatial_, std::size_t in_, std::size_t out_,
         std::size_t kernel_ = 3, std::size_t stride_ = 1, Padding padding_ = Padding::circular)
        : spatial(spatial_), in(in_), out(out_), kernel(kernel_), stride(stride_), padding(padding_) {
        sda::detail::require(spatial == 1 || spatial == 2, "sda::nn::Conv ", name, ": spatial dimensions must be 1 or 2, not ",
                             spatial);
        sda::detail::require(kernel % 2 == 1, "sda::nn::Conv ", name, ": the kernel size must be odd, not ", kernel);
        sda::detail::require(in > 0 && out > 0 && stride > 0, "sda::nn::Conv ", name,
                             ": channels and stride must be positive");
        Shape shape{out, in, kernel};
        if (spatial == 2) shape.push_back(kernel);
        weight = params.add(name + ".weight", shape);
        bias = params.add(name + ".bias", {out});
    }

    std::size_t kernel_height() const { return spatial == 2 ? kernel : 1; }
    std::size_t taps() const { return kernel_height() * kernel; }
    bool pointwise() const { return taps() == 1 && stride == 1; }

    /// The output grid for an input grid.
    Grid output_grid(Grid g) const {
        const auto size = [&](std::size_t n, std::size_t k) { return (n + 2 * (k / 2) - k) / stride + 1; };
        return {size(g.height, kernel_height()), size(g.width, kernel)};
    }

    /// torch's default (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    void initialise(ParameterSet<T>& params, const std::string& name, Generator& gen) const {
        const double bound = 1.0 / std::sqrt(static_cast<double>(in * taps()));
        params.fill_uniform(params.find(name + ".weight"), bound, gen);
        params.fill_uniform(params.find(name + ".bias"), bound, gen);
    }

    /// FLOPs of the GEMM of a forward pass over n samples of grid g (2 per multiply-add).
    double flops(std::size_t n, Grid g) const {
        return 2.0 * double(n * output_grid(g).pixels()) * double(in * taps() * out);
    }

    /// The weights as [out, taps * in], column tap * in + c.
    RowMatrix<T> tap_weights(const T* p) const {
        const auto k = static_cast<Eigen::Index>(taps());
        RowMatrix<T> W(static_cast<Eigen::Index>(out), k * static_cast<Eigen::Index>(in));
        const T* w = p + weight;
        for (Eigen::Index o = 0; o < W.rows(); ++o)
            for (Eigen::Index c = 0; c < static_cast<Eigen::Index>(in); ++c)
                for (Eigen::Index tap = 0; tap < k; ++tap) W(o, tap * static_cast<Eigen::Index>(in) + c) = *w++;
        return W;
    }

    /// cols = im2col(X) for n samples on grid g: [n * output pixels, taps * in].
    void im2col(const ConstRef& X, std::size_t n, Grid g, RowMatrix<T>& cols) const {
        check_input(X, n, g);
        gather(X, in, n, g, cols);
    }

    /// dX += col2im(dcols), the adjoint of im2col.
    void col2im(const ConstRef& dcols, std::size_t n, Grid g, Ref dX) const {
        visit(n, g, [&](std::size_t row, std::size_t tap, std::ptrdiff_t source) {
            if (source < 0) return;
            const T* src = dcols.data() + static_cast<Eigen::Index>(row) * dcols.outerStride() + static_cast<Eigen::Index>(tap * in);
            T* dst = dX.data() + source * dX.outerStride();
            for (std::size_t c = 0; c < in; ++c) dst[c] += src[c];
        });
    }

    /// Whether `forward` and both backward products run in oneDNN: float maps, a kernel
    /// wider than one pixel or a stride, and `sda::dnnl` linked.
    bool uses_dnnl() const { return dnnl_convolutions && std::is_same_v<T, float> && !pointwise(); }

    /// Y = conv(X): X [n * g.pixels(), in] -> Y [n * output pixels, out].
    void forward(const T* p, const ConstRef& X, std::size_t n, Grid g, Ref Y,
                 [[maybe_unused]] ConvAlgorithm algorithm = ConvAlgorithm::direct) const {
#if defined(SDA_WITH_DNNL)
        if constexpr (std::is_same_v<T, float>)
            if (uses_dnnl()) {
                check_input(X, n, g);
                check_output(Y, n, g);
                dnnl_kernels::forward(dnnl_shape(n, g, algorithm), p + weight, p + bias, X.data(), X.outerStride(), Y.data(), Y.outerStride());
                return;
            }
#endif
        forward_im2col(p, X, n, g, Y);
    }

    /// dX = (d conv / dX)^T dY, or dX += with `accumulate`.
    void backward_input(const T* p, const ConstRef& dY, std::size_t n, Grid g, Ref dX, bool accumulate = false,
                        [[maybe_unused]] ConvAlgorithm algorithm = ConvAlgorithm::direct) const {
#if defined(SDA_WITH_DNNL)
        if constexpr (std::is_same_v<T, float>)
            if (uses_dnnl()) {
                check_output(dY, n, g);
                check_input(dX, n, g);
                dnnl_kernels::backward_input(dnnl_shape(n, g, algorithm), p + weight, dY.data(), dY.outerStride(), dX.data(), dX.outerStride(),
                                             accumulate);
                return;
            }
#endif
        backward_input_im2col(p, dY, n, g, dX, accumulate);
    }

    /// grad(W) += dY^T im2col(X), grad(b) += column sums of dY.
    void backward_params(const ConstRef& X, std::size_t n, Grid g, const ConstRef& dY, T* grad) const {
#if defined(SDA_WITH_DNNL)
        if constexpr (std::is_same_v<T, float>)
            if (uses_dnnl()) {
                check_input(X, n, g);
                check_output(dY, n, g);
                dnnl_kernels::backward_params(dnnl_shape(n, g), X.data(), X.outerStride(), dY.data(), dY.outerStride(), grad + weight,
                                              grad + bias);
                return;
            }
#endif
        backward_params_im2col(X, n, g, dY, grad);
    }

    /// `forward` by im2col and one Eigen GEMM (any T, any build).
    void forward_im2col(const T* p, const ConstRef& X, std::size_t n, Grid g, Ref Y) const {
        if (pointwise()) {
            check_input(X, n, g);
            Y.noalias() = X * weights(p).transpose();
        } else {
            RowMatrix<T> cols;
            im2col(X, n, g, cols);
            Y.noalias() = cols * tap_weights(p).transpose();
        }
        Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(p + bias, static_cast<Eigen::Index>(out));
    }

    /// `backward_input` by Eigen GEMMs. At stride 1 the adjoint
    /// of a 'same' correlation is the correlation of dY with the flipped kernel,
    /// channels swapped (a gather); at stride 2, a scatter (col2im).
    void backward_input_im2col(const T* p, const ConstRef& dY, std::size_t n, Grid g, Ref dX, bool accumulate = false) const {
        if (pointwise()) {
            if (accumulate) dX.noalias() += dY * weights(p);
            else dX.noalias() = dY * weights(p);
            return;
        }
        if (stride == 1) {
            RowMatrix<T> cols;
            gather(dY, out, n, g, cols);
            if (accumulate) dX.noalias() += cols * flipped_weights(p).transpose();
            else dX.noalias() = cols * flipped_weights(p).transpose();
            return;
        }
        const RowMatrix<T> dcols = dY * tap_weights(p);
        if (!accumulate) dX.setZero();
        col2im(dcols, n, g, dX);
    }

    /// `backward_params` by im2col and an Eigen GEMM.
    void backward_params_im2col(const ConstRef& X, std::size_t n, Grid g, const ConstRef& dY, T* grad) const {
        detail::add_column_sums<T>(dY, grad + bias);
        if (pointwise()) {
            Eigen::Map<RowMatrix<T>>(grad + weight, static_cast<Eigen::Index>(out), static_cast<Eigen::Index>(in))
                .noalias() += dY.transpose() * X;
            return;
        }
        RowMatrix<T> cols;
        im2col(X, n, g, cols);
        const RowMatrix<T> gW = dY.transpose() * cols;
        const auto k = static_cast<Eigen::Index>(taps());
        T* w = grad + weight;
        for (Eigen::Index o = 0; o < gW.rows(); ++o)
            for (Eigen::Index c = 0; c < static_cast<Eigen::Index>(in); ++c)
                for (Eigen::Index tap = 0; tap < k; ++tap) *w++ += gW(o, tap * static_cast<Eigen::Index>(in) + c);
    }

private:
    /// The weights of the adjoint at stride 1, as [in, taps * out]: column tap * out + o
    /// holds W[o, c, taps - 1 - tap] (the kernel flipped along every axis).
    RowMatrix<T> flipped_weights(const T* p) const {
        const auto k = static_cast<Eigen::Index>(taps()), o_ = static_cast<Eigen::Index>(out), i_ = static_cast<Eigen::Index>(in);
        RowMatrix<T> W(i_, k * o_);
        const T* w = p + weight;
        for (Eigen::Index o = 0; o < o_; ++o)
            for (Eigen::Index c = 0; c < i_; ++c)
                for (Eigen::Index tap = 0; tap < k; ++tap) W(c, (k - 1 - tap) * o_ + o) = *w++;
        return W;
    }

    /// im2col of a map with `channels` columns: [n * output pixels, taps * channels].
    void gather(const ConstRef& X, std::size_t channels, std::size_t n, Grid g, RowMatrix<T>& cols) const {
        const Grid o = output_grid(g);
        cols.resize(static_cast<Eigen::Index>(n * o.pixels()), static_cast<Eigen::Index>(taps() * channels));
        if (stride == 1) return gather_rows(X, channels, n, g, cols);
        visit(n, g, [&](std::size_t row, std::size_t tap, std::ptrdiff_t source) {
            T* dst = cols.data() + static_cast<Eigen::Index>(row) * cols.outerStride() + static_cast<Eigen::Index>(tap * channels);
            if (source < 0) {
                for (std::size_t c = 0; c < channels; ++c) dst[c] = T(0);
            } else {
                const T* src = X.data() + source * X.outerStride();
                for (std::size_t c = 0; c < channels; ++c) dst[c] = src[c];
            }
        });
    }

    /// `gather` at stride 1, one image row and tap at a time: the sources of a row of
    /// output pixels are a contiguous run of input pixels but at the wrapped or
    /// zero-padded ends, so each is one block copy.
    void gather_rows(const ConstRef& X, std::size_t channels, std::size_t n, Grid g, RowMatrix<T>& cols) const {
        const auto kh = static_cast<Eigen::Index>(kernel_height()), kw = static_cast<Eigen::Index>(kernel);
        const auto H = static_cast<Eigen::Index>(g.height), W = static_cast<Eigen::Index>(g.width);
        const auto C = static_cast<Eigen::Index>(channels), pw = kw / 2;
        for (Eigen::Index b = 0; b < static_cast<Eigen::Index>(n); ++b)
            for (Eigen::Index oy = 0; oy < H; ++oy) {
                const Eigen::Index row = (b * H + oy) * W;  // first output pixel of this image row
                for (Eigen::Index ky = 0; ky < kh; ++ky) {
                    Eigen::Index iy = oy + ky - kh / 2;
                    const bool outside = iy < 0 || iy >= H;
                    if (outside && padding == Padding::circular) iy = (iy % H + H) % H;
                    for (Eigen::Index kx = 0; kx < kw; ++kx) {
                        auto dst = cols.block(row, (ky * kw + kx) * C, W, C);
                        if (outside && padding == Padding::zeros) {
                            dst.setZero();
                            continue;
                        }
                        const Eigen::Index source = (b * H + iy) * W, shift = kx - pw;
                        // output ox reads input ox + shift: the run [max(0, -shift), min(W, W - shift))
                        const Eigen::Index first = std::max<Eigen::Index>(0, -shift), last = std::min(W, W - shift);
                        if (last > first) dst.middleRows(first, last - first) = X.block(source + first + shift, 0, last - first, C);
                        for (Eigen::Index ox = 0; ox < W; ++ox) {
                            if (ox >= first && ox < last) {
                                ox = last - 1;
                                continue;
                            }
                            if (padding == Padding::zeros) dst.row(ox).setZero();
                            else dst.row(ox) = X.row(source + ((ox + shift) % W + W) % W);
                        }
                    }
                }
            }
    }

    Eigen::Map<const RowMatrix<T>> weights(const T* p) const {
        return {p + weight, static_cast<Eigen::Index>(out), static_cast<Eigen::Index>(in)};
    }

#if defined(SDA_WITH_DNNL)
    dnnl_kernels::Shape dnnl_shape(std::size_t n, Grid g, ConvAlgorithm algorithm = ConvAlgorithm::direct) const {
        const Grid o = output_grid(g);
        return {.n = long(n), .in = long(in), .out = long(out), .height = long(g.height), .width = long(g.width),
                .out_height = long(o.height), .out_width = long(o.width), .kernel_height = long(kernel_height()),
                .kernel = long(kernel), .stride = long(stride), .circular = padding == Padding::circular,
                .winograd = algorithm == ConvAlgorithm::fastest};
    }
#endif

    void check_output(const ConstRef& Y, std::size_t n, Grid g) const {
        sda::detail::require(Y.rows() == static_cast<Eigen::Index>(n * output_grid(g).pixels()) &&
                                 Y.cols() == static_cast<Eigen::Index>(out),
                             "sda::nn::Conv: output of ", Y.rows(), " x ", Y.cols(), ", expected ", n * output_grid(g).pixels(),
                             " x ", out);
    }

    void check_input(const ConstRef& X, std::size_t n, Grid g) const {
        sda::detail::require(X.rows() == static_cast<Eigen::Index>(n * g.pixels()) && X.cols() == static_cast<Eigen::Index>(in),
                             "sda::nn::Conv: input of ", X.rows(), " x ", X.cols(), ", expected ", n * g.pixels(), " x ", in);
    }

    /// Calls f(output row, tap, input row or -1 for zero padding) for every tap of every output pixel.
    template <class F>
    void visit(std::size_t n, Grid g, F&& f) const {
        const Grid o = output_grid(g);
        const auto kh = static_cast<std::ptrdiff_t>(kernel_height()), kw = static_cast<std::ptrdiff_t>(kernel);
        const auto H = static_cast<std::ptrdiff_t>(g.height), W = static_cast<std::ptrdiff_t>(g.width);
        const auto s = static_cast<std::ptrdiff_t>(stride);
        const auto wrap = [&](std::ptrdiff_t i, std::ptrdiff_t size) -> std::ptrdiff_t {
            if (i >= 0 && i < size) return i;
            if (padding == Padding::zeros) return -1;
            return ((i % size) + size) % size;
        };
        std::size_t row = 0;
        for (std::size_t b = 0; b < n; ++b)
            for (std::ptrdiff_t oy = 0; oy < static_cast<std::ptrdiff_t>(o.height); ++oy)
                for (std::ptrdiff_t ox = 0; ox < static_cast<std::ptrdiff_t>(o.width); ++ox, ++row)
                    for (std::ptrdiff_t ky = 0; ky < kh; ++ky) {
                        const std::ptrdiff_t iy = wrap(oy * s + ky - kh / 2, H);
                        for (std::ptrdiff_t kx = 0; kx < kw; ++kx) {
                            const std::ptrdiff_t ix = wrap(ox * s + kx - kw / 2, W);
                            const std::size_t tap = static_cast<std::size_t>(ky * kw + kx);
                            f(row, tap,
                              (iy < 0 || ix < 0) ? std::ptrdiff_t(-1)
                                                 : (static_cast<std::ptrdiff_t>(b) * H + iy) * W + ix);
                        }
                    }
    }
};

/// nn.Conv1d(in, out, kernel, stride, padding=kernel // 2, padding_mode)
template <class T>
Conv<T> conv1d(ParameterSet<T>& params, const std::string& name, std::size_t in, std::size_t out, std::size_t kernel = 3,
               std::size_t stride = 1, Padding padding = Padding::circular) {
    return Conv<T>(params, name, 1, in, out, kernel, stride, padding);
}
/// nn.Conv2d(in, out, kernel, stride, padding=kernel // 2, padding_mode)
template <class T>
Conv<T> conv2d(ParameterSet<T>& params, const std::string& name, std::size_t in, std::size_t out, std::size_t kernel = 3,
               std::size_t stride = 1, Padding padding = Padding::circular) {
    return Conv<T>(params, name, 2, in, out, kernel, stride, padding);
}

/// The grid after nearest upsampling by 2 (both axes in 2-D, the width in 1-D).
inline Grid upsampled(Grid g, std::size_t spatial) { return {spatial == 2 ? 2 * g.height : g.height, 2 * g.width}; }

/// Y = nearest upsampling of X by 2 (nn.Upsample(scale_factor=2, mode='nearest')).
template <class T>
void upsample(const Eigen::Ref<const RowMatrix<T>>& X, std::size_t n, Grid g, std::size_t spatial,
              Eigen::Ref<RowMatrix<T>> Y) {
    const Grid u = upsampled(g, spatial);
    const std::size_t fy = u.height / g.height;
    for (std::size_t b = 0; b < n; ++b)
        for (std::size_t i = 0; i < u.height; ++i)
            for (std::size_t j = 0; j < u.width; ++j)
                Y.row(static_cast<Eigen::Index>((b * u.height + i) * u.width + j)) =
                    X.row(static_cast<Eigen::Index>((b * g.height + i / fy) * g.width + j / 2));
}

/// dX = the adjoint of `upsample`: each coarse pixel sums its 2 or 4 copies.
template <class T>
void upsample_adjoint(const Eigen::Ref<const RowMatrix<T>>& dY, std::size_t n, Grid g, std::size_t spatial,
                      Eigen::Ref<RowMatrix<T>> dX) {
    const Grid u = upsampled(g, spatial);
    const std::size_t fy = u.height / g.height;
    dX.setZero();
    for (std::size_t b = 0; b < n; ++b)
        for (std::size_t i = 0; i < u.height; ++i)
            for (std::size_t j = 0; j < u.width; ++j)
                dX.row(static_cast<Eigen::Index>((b * g.height + i / fy) * g.width + j / 2)) +=
                    dY.row(static_cast<Eigen::Index>((b * u.height + i) * u.width + j));
}

}  // namespace sda::nn
