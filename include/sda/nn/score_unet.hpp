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
// names of the paper's ScoreUNet ("embedding.*", "network.*"). Batches are cut
// into fixed chunks run by oneTBB (sda/nn/chunks.hpp): results do not depend
// on the thread count.
#pragma once

#include <cmath>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/nn/chunks.hpp"
#include "sda/nn/embedding.hpp"
#include "sda/nn/unet.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda::nn {

/// The architecture of a `ScoreUNet`. The defaults are a CPU-sized version of the
/// paper's Kolmogorov model (which has channels 96, 192, 384 and 3 blocks per level).
struct UNetConfig {
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

    Grid grid() const {
        return spatial == 2 ? Grid{event[event.size() - 2], event.back()} : Grid{1, event.back()};
    }
    /// Channels of the event: the product of the axes before the grid.
    std::size_t event_channels() const { return element_count(event) / grid().pixels(); }
    std::size_t context_channels() const { return context.size() / grid().pixels(); }

    void validate() const {
        sda::detail::require(spatial == 1 || spatial == 2, "sda::nn::UNetConfig: spatial must be 1 or 2, not ", spatial);
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

    nlohmann::json to_json() const {
        return {{"kind", "unet"},
                {"event", event},
                {"spatial", spatial},
                {"channels", channels},
                {"blocks", blocks},
                {"kernel", kernel},
                {"padding", std::string(name_of(padding))},
                {"activation", std::string(name_of(activation))},
                {"embedding", embedding},
                {"frequencies", frequencies},
                {"embedding_hidden", embedding_hidden},
                {"unbiased_layer_norm", unbiased_layer_norm},
                {"context", context}};
    }
    static UNetConfig from_json(const nlohmann::json& j) {
        try {
            UNetConfig c;
            c.event = j.at("event").get<Shape>();
            c.spatial = j.at("spatial").get<std::size_t>();
            c.channels = j.at("channels").get<std::vector<std::size_t>>();
            c.blocks = j.at("blocks").get<std::vector<std::size_t>>();
            c.kernel = j.at("kernel").get<std::size_t>();
            c.padding = padding_from_name(j.at("padding").get<std::string>());
            c.activation = activation_from_name(j.at("activation").get<std::string>());
            c.embedding = j.at("embedding").get<std::size_t>();
            c.frequencies = j.at("frequencies").get<std::size_t>();
            c.embedding_hidden = j.at("embedding_hidden").get<std::size_t>();
            c.unbiased_layer_norm = j.at("unbiased_layer_norm").get<bool>();
            c.context = j.at("context").get<std::vector<double>>();
            c.validate();
            return c;
        } catch (const nlohmann::json::exception& e) {
            sda::detail::fail("sda::nn::UNetConfig: invalid configuration: ", e.what());
        }
    }
    bool operator==(const UNetConfig& other) const { return to_json() == other.to_json(); }
};

template <NoiseSchedule Schedule, class T = float>
class ScoreUNet {
public:
    using backend_type = CpuBackend<T>;
    using tensor_type = Tensor<T>;
    using schedule_type = Schedule;
    using scalar_type = T;

    static constexpr std::size_t inference_chunk = 8;  ///< samples per parallel task when sampling
    static constexpr std::size_t training_chunk = 4;   ///< samples per parallel task when training

    /// A network with PyTorch's default initialisation, drawn from `gen`.
    ScoreUNet(Schedule schedule, UNetConfig config, Generator& gen) : ScoreUNet(std::move(schedule), std::move(config)) {
        embedding_.initialise(params_, "embedding", gen);
        network_.initialise(params_, gen);
    }
    /// A network with zero parameters, to load weights into.
    ScoreUNet(Schedule schedule, UNetConfig config) : schedule_(std::move(schedule)), config_(std::move(config)) {
        config_.validate();
        grid_ = config_.grid();
        channels_ = config_.event_channels();
        context_ = config_.context_channels();
        embedding_ = TimeEmbedding<T>(params_, "embedding", config_.frequencies, config_.embedding_hidden, config_.embedding);
        network_ = UNet<T>(params_, "network", config_.spatial, grid_, channels_ + context_, channels_, config_.embedding,
                           config_.channels, config_.blocks, config_.kernel, config_.padding, config_.activation,
                           LayerNorm<T>{config_.unbiased_layer_norm, 1e-5});
        // context as channels-last columns [pixels, context]
        context_columns_.resize(static_cast<Eigen::Index>(grid_.pixels()), static_cast<Eigen::Index>(context_));
        for (std::size_t k = 0; k < context_; ++k)
            for (std::size_t i = 0; i < grid_.pixels(); ++i)
                context_columns_(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)) =
                    static_cast<T>(config_.context[k * grid_.pixels() + i]);
    }

    backend_type backend() const { return {}; }
    const Schedule& schedule() const { return schedule_; }
    const Shape& event_shape() const { return config_.event; }
    const UNetConfig& config() const { return config_; }
    ParameterSet<T>& parameters() { return params_; }
    const ParameterSet<T>& parameters() const { return params_; }
    const UNet<T>& network() const { return network_; }

    /// FLOPs (2 per multiply-add) of `eps` for one event.
    double forward_flops() const { return network_.forward_flops(); }

    // --- ScoreModel ---------------------------------------------------------------

    /// eps(x, t) for x of shape [B, event...].
    tensor_type eps(const tensor_type& x, double t) const {
        const std::size_t batch = check_input(x);
        const RowMatrix<T> m = embed(t);
        tensor_type out = empty_tensor<T>(shape_of(x));
        detail::for_chunks(batch, inference_chunk, [&](std::size_t begin, std::size_t end) {
            const std::size_t n = end - begin;
            RowMatrix<T> y(static_cast<Eigen::Index>(n * grid_.pixels()), static_cast<Eigen::Index>(channels_));
            network_.forward(params_.data(), channels_last(x, begin, end), n, m, y);
            store(y, out, begin, end);
        });
        return out;
    }

    /// (d eps / dx)^T v: one forward and one backward pass per chunk.
    tensor_type vjp(const tensor_type& x, double t, const tensor_type& v) const { return Linearized(*this, x, t).vjp(v); }

    /// Evaluates eps at (x, t) once, keeping the activations; each `vjp(v)` then costs one backward pass.
    auto linearize(const tensor_type& x, double t) const { return Linearized(*this, x, t); }

    // --- training -----------------------------------------------------------------

    /// eps(x_b, t_b) with one time per sample.
    tensor_type forward(const tensor_type& x, std::span<const double> t) const {
        const std::size_t batch = check_input(x);
        sda::detail::require(t.size() == batch, "sda::nn::ScoreUNet::forward: ", t.size(), " times for ", batch, " samples");
        tensor_type out = empty_tensor<T>(shape_of(x));
        detail::for_chunks(batch, inference_chunk, [&](std::size_t begin, std::size_t end) {
            const std::size_t n = end - begin;
            RowMatrix<T> m(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(config_.embedding));
            embedding_.forward(params_.data(), t.subspan(begin, n), m);
            RowMatrix<T> y(static_cast<Eigen::Index>(n * grid_.pixels()), static_cast<Eigen::Index>(channels_));
            network_.forward(params_.data(), channels_last(x, begin, end), n, m, y);
            store(y, out, begin, end);
        });
        return out;
    }

    /// Adds to `grad` the gradient of sum over samples of `loss(row, eps_row, d_eps_row)`
    /// (the contract of `TrainableScoreModel`); returns the summed loss.
    template <class Loss>
    double accumulate_gradient(const tensor_type& x, std::span<const double> t, Loss&& loss, std::span<T> grad) const {
        const std::size_t batch = check_input(x);
        sda::detail::require(t.size() == batch && grad.size() == params_.size(),
                             "sda::nn::ScoreUNet::accumulate_gradient: ", t.size(), " times and ", grad.size(),
                             " gradient entries for ", batch, " samples and ", params_.size(), " parameters");
        const auto features = static_cast<Eigen::Index>(element_count(config_.event));
        return detail::accumulate_chunks<T>(batch, training_chunk, grad, [&](std::size_t begin, std::size_t end, T* g, double& total) {
            const std::size_t n = end - begin;
            typename TimeEmbedding<T>::Cache embedding_cache;
            RowMatrix<T> m(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(config_.embedding));
            embedding_.forward(params_.data(), t.subspan(begin, n), m, &embedding_cache);
            typename UNet<T>::Cache cache;
            RowMatrix<T> y(static_cast<Eigen::Index>(n * grid_.pixels()), static_cast<Eigen::Index>(channels_));
            network_.forward(params_.data(), channels_last(x, begin, end), n, m, y, &cache, /*keep_input=*/true);
            RowMatrix<T> eps(static_cast<Eigen::Index>(n), features), d_eps(eps.rows(), features);
            store(y, eps.data(), n);
            for (Eigen::Index i = 0; i < eps.rows(); ++i)
                total += loss(begin + static_cast<std::size_t>(i), eps.row(i), d_eps.row(i));
            RowMatrix<T> dm = RowMatrix<T>::Zero(m.rows(), m.cols());
            network_.backward(params_.data(), cache, channels_last(d_eps.data(), n, 0), n, m, g, nullptr, &dm);
            embedding_.backward(params_.data(), embedding_cache, dm, g);
        });
    }

private:
    /// The linearisation: per-chunk caches of one forward pass.
    class Linearized {
    public:
        Linearized(const ScoreUNet& net, const tensor_type& x, double t)
            : net_(&net), m_(net.embed(t)), batch_(net.check_input(x)), shape_(shape_of(x)) {
            eps_ = empty_tensor<T>(shape_);
            caches_.resize((batch_ + inference_chunk - 1) / inference_chunk);
            detail::for_chunks(batch_, inference_chunk, [&](std::size_t begin, std::size_t end) {
                const std::size_t n = end - begin;
                RowMatrix<T> y(static_cast<Eigen::Index>(n * net.grid_.pixels()), static_cast<Eigen::Index>(net.channels_));
                net.network_.forward(net.params_.data(), net.channels_last(x, begin, end), n, m_, y,
                                     &caches_[begin / inference_chunk]);
                net.store(y, eps_, begin, end);
            });
        }
        const tensor_type& eps() const { return eps_; }
        tensor_type vjp(const tensor_type& v) const {
            sda::detail::check_shape(shape_of(v), shape_, "sda::nn::ScoreUNet::vjp: cotangent");
            tensor_type out = empty_tensor<T>(shape_);
            detail::for_chunks(batch_, inference_chunk, [&](std::size_t begin, std::size_t end) {
                const std::size_t n = end - begin;
                RowMatrix<T> dx;
                net_->network_.backward(net_->params_.data(), caches_[begin / inference_chunk],
                                        net_->channels_last(v.data() + begin * net_->features(), n, 0), n, m_, nullptr, &dx,
                                        nullptr);
                // the context channels are constants: drop their cotangent
                net_->store(dx.leftCols(static_cast<Eigen::Index>(net_->channels_)), out, begin, end);
            });
            return out;
        }

    private:
        const ScoreUNet* net_;
        RowMatrix<T> m_;
        std::size_t batch_;
        Shape shape_;
        std::vector<typename UNet<T>::Cache> caches_;
        tensor_type eps_;
    };

    std::size_t features() const { return channels_ * grid_.pixels(); }

    std::size_t check_input(const tensor_type& x) const {
        sda::detail::check_batch(x, config_.event, "sda::nn::ScoreUNet: input");
        return x.shape()[0];
    }

    /// The time embedding at one t, as a 1-row modulation.
    RowMatrix<T> embed(double t) const {
        RowMatrix<T> m(1, static_cast<Eigen::Index>(config_.embedding));
        const double times[1] = {t};
        embedding_.forward(params_.data(), times, m);
        return m;
    }

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
    RowMatrix<T> channels_last(const tensor_type& x, std::size_t begin, std::size_t end) const {
        return channels_last(x.data() + begin * features(), end - begin, context_);
    }

    /// Channels-last rows Y of n samples back to the stored layout at `out`.
    template <class Matrix>
    void store(const Matrix& Y, T* out, std::size_t n) const {
        const auto px = static_cast<Eigen::Index>(grid_.pixels()), c = static_cast<Eigen::Index>(channels_);
        for (Eigen::Index b = 0; b < static_cast<Eigen::Index>(n); ++b)
            Eigen::Map<RowMatrix<T>>(out + b * c * px, c, px) = Y.block(b * px, 0, px, c).transpose();
    }
    template <class Matrix>
    void store(const Matrix& Y, tensor_type& out, std::size_t begin, std::size_t end) const {
        store(Y, out.data() + begin * features(), end - begin);
    }

    Schedule schedule_;
    UNetConfig config_;
    Grid grid_;
    std::size_t channels_ = 0, context_ = 0;
    RowMatrix<T> context_columns_;
    ParameterSet<T> params_;
    TimeEmbedding<T> embedding_;
    UNet<T> network_;
};

}  // namespace sda::nn
