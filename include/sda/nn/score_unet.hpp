// sda/nn/score_unet.hpp: `ScoreUNet`, the convolutional score network of the
// paper's 2-D experiments, eps(x, t) = UNet(x, embedding(t)), a trainable
// `ScoreModel` on events of fields.
//
// An event [..., C, H, W] (spatial = 2) or [..., C, W] (spatial = 1) is a
// stack of fields on one grid: every axis before the grid folds into the
// channels, so a window [2K+1, C, H, W] of states is 2K+1 times C channels, as
// the paper stacks them (and `MarkovComposedScore` works unchanged). Optional
// fixed context channels (the Kolmogorov forcing, as the paper's
// LocalScoreUNet) are appended to the input. Parameters carry the PyTorch
// names of the paper's ScoreUNet ("embedding.*", "network.*"). `ScoreUNet` is
// `ScoreShell` (sda/nn/shell.hpp: embedding, chunked batches, linearisation,
// training gradient) around `UNetCore`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/nn/config.hpp"
#include "sda/nn/shell.hpp"
#include "sda/nn/unet.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda::nn {

/// The architecture of a `ScoreUNet`. The defaults are a CPU-sized version of the
/// paper's Kolmogorov model (which has channels 96, 192, 384 and 3 blocks per level).
struct UNetConfig {
    static constexpr const char* kind = "unet";

    Shape event;                                   ///< one sample, e.g. [5, 2, 32, 32]: 2K+1 = 5 velocity fields
    std::size_t spatial = 2;                       ///< grid axes at the end of the event (1 or 2)
    std::vector<std::size_t> channels{32, 64, 128};  ///< hidden channels per level
    std::vector<std::size_t> blocks{1, 1, 1};       ///< modulated residual blocks per level, each way
    std::size_t kernel = 3;
    Padding padding = Padding::circular;
    Activation activation = Activation::silu;
    std::size_t embedding = 64;         ///< time-embedding features (the modulation)
    std::size_t frequencies = 16;       ///< sinusoidal frequencies pi k, k = 1..F
    std::size_t embedding_hidden = 256;
    bool unbiased_layer_norm = true;    ///< LayerNorm variance over N - 1, as the paper's code (zuko)
    std::vector<double> context;        ///< fixed input channels [context channels, grid...], flattened; may be empty

    static constexpr auto fields() {
        using C = UNetConfig;
        return std::tuple{field("event", &C::event),
                          field("spatial", &C::spatial),
                          field("channels", &C::channels),
                          field("blocks", &C::blocks),
                          field("kernel", &C::kernel),
                          field("padding", &C::padding),
                          field("activation", &C::activation),
                          field("embedding", &C::embedding),
                          field("frequencies", &C::frequencies),
                          field("embedding_hidden", &C::embedding_hidden),
                          field("unbiased_layer_norm", &C::unbiased_layer_norm),
                          field("context", &C::context)};
    }

    Grid grid() const {
        return spatial == 2 ? Grid{event[event.size() - 2], event.back()} : Grid{1, event.back()};
    }
    /// Channels of the event: the product of the axes before the grid.
    std::size_t event_channels() const { return element_count(event) / grid().pixels(); }
    std::size_t context_channels() const { return context.size() / grid().pixels(); }

    void validate() const {
        sda::detail::require(spatial == 1 || spatial == 2, "sda::nn::UNetConfig: spatial must be 1 or 2, not ", spatial);
        // bounded before anything else: a configuration read from a file may claim any size
        sda::detail::require(channels.size() <= 16 && kernel <= 63, "sda::nn::UNetConfig: at most 16 levels and "
                             "kernels up to 63 wide, not ", channels.size(), " levels of kernel ", kernel);
        double parameters = double(embedding_hidden) * (2 * double(frequencies) + double(embedding));
        const double taps = spatial == 2 ? double(kernel) * double(kernel) : double(kernel);
        for (std::size_t l = 0; l < channels.size() && l < blocks.size(); ++l) {
            const double c = double(channels[l]), previous = l ? double(channels[l - 1]) : c;
            parameters += (4 * double(blocks[l]) + 4) * taps * c * std::max(c, previous) + double(embedding) * c * 4;
        }
        require_sane_size("sda::nn::UNetConfig", event, parameters);
        sda::detail::require(event.size() >= spatial + 1 && element_count(event) > 0, "sda::nn::UNetConfig: event ",
                             format_shape(event), " needs channel and ", spatial, " grid axes");
        sda::detail::require(!channels.empty() && channels.size() == blocks.size(), "sda::nn::UNetConfig: ",
                             channels.size(), " levels of channels but ", blocks.size(), " of blocks");
        sda::detail::require(kernel % 2 == 1, "sda::nn::UNetConfig: the kernel size must be odd, not ", kernel);
        sda::detail::require(embedding >= 1 && frequencies >= 1 && embedding_hidden >= 1,
                             "sda::nn::UNetConfig: embedding, frequencies and embedding_hidden must be positive");
        sda::detail::require(context.size() % grid().pixels() == 0, "sda::nn::UNetConfig: ", context.size(),
                             " context values are not a whole number of ", grid().pixels(), "-pixel fields");
        for (double c : context) sda::detail::require(std::isfinite(c), "sda::nn::UNetConfig: context values must be finite");
    }

    nlohmann::json to_json() const { return config_to_json(*this); }
    static UNetConfig from_json(const nlohmann::json& j) {
        UNetConfig c = config_from_json<UNetConfig>(j, "sda::nn::UNetConfig");
        c.validate();
        return c;
    }
    bool operator==(const UNetConfig& other) const { return config_equal(*this, other); }
};

/// The U-Net between the embedding and the output. Events are stored channel-major
/// ([channels, grid...], as given); a chunk is turned channels-last for the U-Net, with
/// the fixed context channels appended, and back.
template <class T>
class UNetCore {
public:
    using scalar_type = T;
    using config_type = UNetConfig;
    using cache_type = typename UNet<T>::Cache;
    static constexpr const char* name = "ScoreUNet";
    /// Samples per parallel task when sampling: 2, so that the paper's batch of 8 keeps 4 cores busy;
    /// oneDNN's kernels are as fast on 2 samples as on 8 (bench/bench_unet).
    static constexpr std::size_t inference_chunk = 2;
    static constexpr std::size_t training_chunk = 4;   ///< samples per parallel task when training

    UNetCore(const UNetConfig& config, ParameterSet<T>& params)
        : grid_(config.grid()), channels_(config.event_channels()), context_(config.context_channels()),
          network_(params, "network", config.spatial, grid_, channels_ + context_, channels_, config.embedding,
                   config.channels, config.blocks, config.kernel, config.padding, config.activation,
                   LayerNorm<T>{config.unbiased_layer_norm, 1e-5}) {
        // context as channels-last columns [pixels, context]
        context_columns_.resize(static_cast<Eigen::Index>(grid_.pixels()), static_cast<Eigen::Index>(context_));
        for (std::size_t k = 0; k < context_; ++k)
            for (std::size_t i = 0; i < grid_.pixels(); ++i)
                context_columns_(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)) =
                    static_cast<T>(config.context[k * grid_.pixels() + i]);
    }

    void initialise(ParameterSet<T>& params, Generator& gen) const { network_.initialise(params, gen); }
    const UNet<T>& network() const { return network_; }

    void forward(const T* p, const T* x, std::size_t n, const RowMatrix<T>& m, T* y, cache_type* cache,
                 bool keep_input) const {
        RowMatrix<T> Y(static_cast<Eigen::Index>(n * grid_.pixels()), static_cast<Eigen::Index>(channels_));
        network_.forward(p, channels_last(x, n, context_), n, m, Y, cache, keep_input);
        store(Y, y, n);
    }

    void backward(const T* p, const cache_type& cache, const T* dy, std::size_t n, const RowMatrix<T>& m, T* g, T* dx,
                  RowMatrix<T>* dm) const {
        RowMatrix<T> dX;
        if (dm) *dm = RowMatrix<T>::Zero(m.rows(), m.cols());
        network_.backward(p, cache, channels_last(dy, n, 0), n, m, g, dx ? &dX : nullptr, dm);
        // the context channels are constants: drop their cotangent
        if (dx) store(dX.leftCols(static_cast<Eigen::Index>(channels_)), dx, n);
    }

    /// Bytes of the forward caches of n samples (what `linearize` keeps), from the U-Net's shape.
    double cache_bytes(std::size_t n) const {
        double values = 0;
        const auto& levels = network_.levels();
        for (std::size_t l = 0; l < levels.size(); ++l) {
            const double pixels = double(levels[l].grid.pixels()), c = double(levels[l].channels);
            values += double(levels[l].down.size() + levels[l].up.size()) * (2.0 * c + 1.0) * pixels;  // normed, slope, rstd
            values += (c + 1.0) * pixels;  // the tail's input and its LayerNorm
            if (l > 0) values += double(levels[l - 1].grid.pixels()) * double(levels[l - 1].channels);  // head input
        }
        return values * double(n) * sizeof(T);
    }

    /// FLOPs (2 per multiply-add) of one event.
    double forward_flops() const { return network_.forward_flops(); }

private:
    /// n samples of `channels_` fields (channel-major, as stored) to channels-last rows,
    /// with `context` trailing context columns appended.
    RowMatrix<T> channels_last(const T* x, std::size_t n, std::size_t context) const {
        const auto px = static_cast<Eigen::Index>(grid_.pixels()), c = static_cast<Eigen::Index>(channels_);
        RowMatrix<T> X(static_cast<Eigen::Index>(n) * px, c + static_cast<Eigen::Index>(context));
        for (Eigen::Index b = 0; b < static_cast<Eigen::Index>(n); ++b) {
            X.block(b * px, 0, px, c) = Eigen::Map<const RowMatrix<T>>(x + b * c * px, c, px).transpose();
            if (context) X.block(b * px, c, px, static_cast<Eigen::Index>(context)) = context_columns_;
        }
        return X;
    }

    /// Channels-last rows Y of n samples back to the stored layout at `out`.
    template <class Matrix>
    void store(const Matrix& Y, T* out, std::size_t n) const {
        const auto px = static_cast<Eigen::Index>(grid_.pixels()), c = static_cast<Eigen::Index>(channels_);
        for (Eigen::Index b = 0; b < static_cast<Eigen::Index>(n); ++b)
            Eigen::Map<RowMatrix<T>>(out + b * c * px, c, px) = Y.block(b * px, 0, px, c).transpose();
    }

    Grid grid_;
    std::size_t channels_ = 0, context_ = 0;
    RowMatrix<T> context_columns_;
    UNet<T> network_;
};

/// The paper's convolutional score network on the CPU: `ScoreShell` around the U-Net.
template <NoiseSchedule Schedule, class T = float>
using ScoreUNet = ScoreShell<UNetCore<T>, Schedule>;

static_assert(ScoreCore<UNetCore<float>> && ScoreCore<UNetCore<double>>);

}  // namespace sda::nn
