// sda/nn/score_net.hpp: `ScoreNet`, the score network of the paper,
// eps(x, t) = ResMLP([vec(x), embedding(t)]), a trainable `ScoreModel`.
//
// The layout and parameter names are those of the paper's ScoreNet (Rozet &
// Louppe 2023, sda/score.py), so its weights load unchanged (docs/interop.md).
// Batches are split into fixed chunks of rows processed in parallel by oneTBB
// (each chunk a few GEMMs through Eigen, single-threaded), so results do not
// depend on the thread count; gradients of chunks are summed in chunk order.
#pragma once

#include <algorithm>
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
#include "sda/nn/resmlp.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda::nn {

/// The architecture of a `ScoreNet`. The defaults are the paper's Lorenz-63 window model but for the event.
struct ScoreNetConfig {
    Shape event;                    ///< one sample, e.g. [5, 3]: a window of 2K+1 = 5 states of 3 coordinates
    std::size_t embedding = 32;     ///< time-embedding features appended to the input
    std::size_t width = 256;        ///< hidden width of the ResMLP
    std::size_t depth = 5;          ///< hidden residual blocks
    Activation activation = Activation::silu;
    bool unbiased_layer_norm = true;  ///< LayerNorm variance over N - 1, as the paper's code (zuko)
    std::size_t frequencies = 16;     ///< sinusoidal frequencies pi k, k = 1..F
    std::size_t embedding_hidden = 256;
    std::size_t linearize_cache_bytes = std::size_t(1) << 30;  ///< above this, linearize recomputes instead of caching

    void validate() const {
        sda::detail::require(!event.empty() && element_count(event) > 1, "sda::nn::ScoreNetConfig: event ",
                        format_shape(event), " must hold at least 2 entries");
        sda::detail::require(embedding >= 1 && width >= 2 && frequencies >= 1 && embedding_hidden >= 1,
                        "sda::nn::ScoreNetConfig: embedding, width, frequencies and embedding_hidden must be positive "
                        "(width >= 2)");
    }

    nlohmann::json to_json() const {
        return {{"event", event},           {"embedding", embedding},
                {"width", width},           {"depth", depth},
                {"activation", std::string(name_of(activation))},
                {"unbiased_layer_norm", unbiased_layer_norm},
                {"frequencies", frequencies}, {"embedding_hidden", embedding_hidden}};
    }
    static ScoreNetConfig from_json(const nlohmann::json& j) {
        try {
            ScoreNetConfig c;
            c.event = j.at("event").get<Shape>();
            c.embedding = j.at("embedding").get<std::size_t>();
            c.width = j.at("width").get<std::size_t>();
            c.depth = j.at("depth").get<std::size_t>();
            c.activation = activation_from_name(j.at("activation").get<std::string>());
            c.unbiased_layer_norm = j.at("unbiased_layer_norm").get<bool>();
            c.frequencies = j.at("frequencies").get<std::size_t>();
            c.embedding_hidden = j.at("embedding_hidden").get<std::size_t>();
            c.validate();
            return c;
        } catch (const nlohmann::json::exception& e) {
            sda::detail::fail("sda::nn::ScoreNetConfig: invalid configuration: ", e.what());
        }
    }
    bool operator==(const ScoreNetConfig& other) const { return to_json() == other.to_json(); }
};

template <NoiseSchedule Schedule, class T = float>
class ScoreNet {
public:
    using backend_type = CpuBackend<T>;
    using tensor_type = Tensor<T>;
    using schedule_type = Schedule;
    using scalar_type = T;

    static constexpr std::size_t inference_chunk = 256;  ///< rows per parallel task when sampling
    static constexpr std::size_t training_chunk = 32;    ///< rows per parallel task when training

    /// A network with PyTorch's default initialisation, drawn from `gen`.
    ScoreNet(Schedule schedule, ScoreNetConfig config, Generator& gen) : ScoreNet(std::move(schedule), std::move(config)) {
        embedding_.initialise(params_, "embedding", gen);
        network_.initialise(params_, gen);
    }
    /// A network with zero parameters, to load weights into.
    ScoreNet(Schedule schedule, ScoreNetConfig config) : schedule_(std::move(schedule)), config_(std::move(config)) {
        config_.validate();
        features_ = element_count(config_.event);
        embedding_ = TimeEmbedding<T>(params_, "embedding", config_.frequencies, config_.embedding_hidden, config_.embedding);
        const std::vector<std::size_t> hidden(config_.depth, config_.width);
        network_ = ResMLP<T>(params_, "network", features_ + config_.embedding, features_, hidden, config_.activation,
                             LayerNorm<T>{config_.unbiased_layer_norm, 1e-5});
    }

    backend_type backend() const { return {}; }
    const Schedule& schedule() const { return schedule_; }
    const Shape& event_shape() const { return config_.event; }
    const ScoreNetConfig& config() const { return config_; }
    ParameterSet<T>& parameters() { return params_; }
    const ParameterSet<T>& parameters() const { return params_; }
    const TimeEmbedding<T>& embedding() const { return embedding_; }
    const ResMLP<T>& network() const { return network_; }
    std::size_t features() const { return features_; }

    /// GEMM FLOPs (2 per multiply-add) of `eps` for one event: the first
    /// projection sees the event's entries only, the embedding enters as one row.
    double forward_flops() const {
        const auto& first = network_.blocks().front();
        const double saved = first.projected ? 2.0 * double(first.projection.out * config_.embedding) : 0.0;
        return network_.forward_flops_per_row() - saved;
    }

    // --- ScoreModel ---------------------------------------------------------------

    /// eps(x, t) for x of shape [B, event...].
    tensor_type eps(const tensor_type& x, double t) const {
        const std::size_t batch = check_input(x, "input");
        const std::vector<T> tail = embed(t);
        tensor_type out = empty_tensor<T>(shape_of(x));
        detail::for_chunks(batch, inference_chunk, [&](std::size_t begin, std::size_t end) {
            network_.forward(params_.data(), rows_view(x, begin, end), tail.data(), rows_view(out, begin, end));
        });
        return out;
    }

    /// (d eps / dx)^T v, one forward and one backward pass per chunk.
    tensor_type vjp(const tensor_type& x, double t, const tensor_type& v) const {
        return Linearized(*this, x, t, /*cache=*/false).vjp(v);
    }

    /// Evaluates eps at (x, t) once; each `vjp(v)` then costs one backward pass
    /// (the activations are kept, up to `config().linearize_cache_bytes`, else
    /// recomputed chunk by chunk).
    auto linearize(const tensor_type& x, double t) const {
        const double rows = static_cast<double>(backend_type::shape(x).at(0));
        return Linearized(*this, x, t, rows * cache_bytes_per_row() <= double(config_.linearize_cache_bytes));
    }

    // --- training -----------------------------------------------------------------

    /// eps(x_b, t_b) with one time per sample.
    tensor_type forward(const tensor_type& x, std::span<const double> t) const {
        const std::size_t batch = check_input(x, "input");
        sda::detail::require(t.size() == batch, "sda::nn::ScoreNet::forward: ", t.size(), " times for ", batch, " samples");
        tensor_type out = empty_tensor<T>(shape_of(x));
        detail::for_chunks(batch, inference_chunk, [&](std::size_t begin, std::size_t end) {
            const RowMatrix<T> input = joint_input(x, t, begin, end, nullptr);
            network_.forward(params_.data(), input, nullptr, rows_view(out, begin, end));
        });
        return out;
    }

    /// Adds to `grad` the gradient of sum over samples of `loss(row, eps_row, d_eps_row)`,
    /// where `loss` fills d_eps_row with the loss's derivative at eps_row and returns
    /// its value; returns the summed loss. Chunks run in parallel; their
    /// gradients are summed in chunk order, so the result does not depend on the thread count.
    template <class Loss>
    double accumulate_gradient(const tensor_type& x, std::span<const double> t, Loss&& loss, std::span<T> grad) const {
        const std::size_t batch = check_input(x, "input");
        sda::detail::require(t.size() == batch && grad.size() == params_.size(),
                        "sda::nn::ScoreNet::accumulate_gradient: ", t.size(), " times and ", grad.size(),
                        " gradient entries for ", batch, " samples and ", params_.size(), " parameters");
        return detail::accumulate_chunks<T>(batch, training_chunk, grad, [&](std::size_t begin, std::size_t end, T* g, double& total) {
            const auto n = static_cast<Eigen::Index>(end - begin);
            typename TimeEmbedding<T>::Cache embedding_cache;
            const RowMatrix<T> input = joint_input(x, t, begin, end, &embedding_cache);
            typename ResMLP<T>::Cache cache;
            RowMatrix<T> eps(n, static_cast<Eigen::Index>(features_)), d_eps(eps.rows(), eps.cols());
            network_.forward(params_.data(), input, nullptr, eps, &cache, /*keep_input=*/true);
            for (Eigen::Index i = 0; i < n; ++i) total += loss(begin + static_cast<std::size_t>(i), eps.row(i), d_eps.row(i));
            RowMatrix<T> d_embedding;
            network_.backward(params_.data(), cache, d_eps, g, &d_embedding, static_cast<Eigen::Index>(features_),
                              static_cast<Eigen::Index>(config_.embedding));
            embedding_.backward(params_.data(), embedding_cache, d_embedding, g);
        });
    }

private:
    /// The linearisation: per-chunk caches of one forward pass, or a copy of x to recompute them.
    class Linearized {
    public:
        Linearized(const ScoreNet& net, const tensor_type& x, double t, bool cache)
            : net_(&net), t_(t), tail_(net.embed(t)), batch_(net.check_input(x, "input")) {
            eps_ = empty_tensor<T>(shape_of(x));
            if (!cache) {
                x_ = std::make_shared<const tensor_type>(x);
                return;
            }
            caches_.resize(chunk_count());
            detail::for_chunks(batch_, inference_chunk, [&](std::size_t begin, std::size_t end) {
                net.network_.forward(net.params_.data(), rows_view(x, begin, end), tail_.data(), rows_view(eps_, begin, end),
                                     &caches_[begin / inference_chunk]);
            });
        }
        const tensor_type& eps() const {
            if (x_ && !eps_ready_) {
                eps_ = net_->eps(*x_, t_);
                eps_ready_ = true;
            }
            return eps_;
        }
        tensor_type vjp(const tensor_type& v) const {
            sda::detail::check_shape(shape_of(v), shape_of(eps_), "sda::nn::ScoreNet::vjp: cotangent");
            tensor_type out = empty_tensor<T>(shape_of(v));
            const auto features = static_cast<Eigen::Index>(net_->features_);
            detail::for_chunks(batch_, inference_chunk, [&](std::size_t begin, std::size_t end) {
                RowMatrix<T> dx;
                const T* p = net_->params_.data();
                if (x_) {
                    typename ResMLP<T>::Cache cache;
                    RowMatrix<T> y(static_cast<Eigen::Index>(end - begin), features);
                    net_->network_.forward(p, rows_view(*x_, begin, end), tail_.data(), y, &cache);
                    net_->network_.backward(p, cache, rows_view(v, begin, end), nullptr, &dx, 0, features);
                } else {
                    net_->network_.backward(p, caches_[begin / inference_chunk], rows_view(v, begin, end), nullptr, &dx, 0,
                                            features);
                }
                rows_view(out, begin, end) = dx;
            });
            return out;
        }

    private:
        std::size_t chunk_count() const { return (batch_ + inference_chunk - 1) / inference_chunk; }

        const ScoreNet* net_;
        double t_;
        std::vector<T> tail_;
        std::size_t batch_;
        std::shared_ptr<const tensor_type> x_;  // set when recomputing
        std::vector<typename ResMLP<T>::Cache> caches_;
        mutable tensor_type eps_;
        mutable bool eps_ready_ = false;
    };

    std::size_t check_input(const tensor_type& x, const char* what) const {
        sda::detail::check_batch(x, config_.event, std::string("sda::nn::ScoreNet: ") + what);
        return x.shape()[0];
    }

    /// The time embedding at one t, as a row.
    std::vector<T> embed(double t) const {
        std::vector<T> out(config_.embedding);
        Eigen::Map<RowMatrix<T>> row(out.data(), 1, static_cast<Eigen::Index>(config_.embedding));
        const double times[1] = {t};
        embedding_.forward(params_.data(), times, row);
        return out;
    }

    /// [vec(x_b), embedding(t_b)] for rows [begin, end).
    RowMatrix<T> joint_input(const tensor_type& x, std::span<const double> t, std::size_t begin, std::size_t end,
                             typename TimeEmbedding<T>::Cache* cache) const {
        const auto n = static_cast<Eigen::Index>(end - begin), f = static_cast<Eigen::Index>(features_);
        RowMatrix<T> input(n, f + static_cast<Eigen::Index>(config_.embedding));
        input.leftCols(f) = rows_view(x, begin, end);
        RowMatrix<T> embedded(n, static_cast<Eigen::Index>(config_.embedding));
        embedding_.forward(params_.data(), t.subspan(begin, end - begin), embedded, cache);
        input.rightCols(static_cast<Eigen::Index>(config_.embedding)) = embedded;
        return input;
    }

    /// Bytes of the forward cache of one row (what linearize keeps).
    double cache_bytes_per_row() const {
        double values = 0;
        for (const auto& b : network_.blocks())
            values += 2.0 * double(b.width) + 1.0 + ((b.projected && &b != &network_.blocks().front()) ? double(b.projection.in) : 0.0);
        return values * sizeof(T);
    }

    Schedule schedule_;
    ScoreNetConfig config_;
    std::size_t features_ = 0;
    ParameterSet<T> params_;
    TimeEmbedding<T> embedding_;
    ResMLP<T> network_;
};

}  // namespace sda::nn
