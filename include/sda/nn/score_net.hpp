// sda/nn/score_net.hpp: `ScoreNet`, the score network of the paper,
// eps(x, t) = ResMLP([vec(x), embedding(t)]), a trainable `ScoreModel`.
//
// The layout and parameter names are those of the paper's ScoreNet (Rozet &
// Louppe 2023, sda/score.py), so its weights load unchanged (docs/interop.md).
// `ScoreNet` is `ScoreShell` (sda/nn/shell.hpp: embedding, chunked batches,
// linearisation, training gradient) around `ResMlpCore`; each chunk is a few
// single-threaded GEMMs (sda/nn/matmul.hpp: oneDNN's in float where linked, else
// Eigen's), in bfloat16 for sampling when asked (`set_sampling_precision`).
#pragma once

#include <cstddef>
#include <vector>

#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/nn/config.hpp"
#include "sda/nn/resmlp.hpp"
#include "sda/nn/shell.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda::nn {

/// The architecture of a `ScoreNet`. The defaults are the paper's Lorenz-63 window model but for the event.
struct ScoreNetConfig {
    static constexpr const char* kind = "mlp";

    Shape event;                    ///< one sample, e.g. [5, 3]: a window of 2K+1 = 5 states of 3 coordinates
    std::size_t embedding = 32;     ///< time-embedding features appended to the input
    std::size_t width = 256;        ///< hidden width of the ResMLP
    std::size_t depth = 5;          ///< hidden residual blocks
    Activation activation = Activation::silu;
    bool unbiased_layer_norm = true;  ///< LayerNorm variance over N - 1, as the paper's code (zuko)
    std::size_t frequencies = 16;     ///< sinusoidal frequencies pi k, k = 1..F
    std::size_t embedding_hidden = 256;

    static constexpr auto fields() {
        using C = ScoreNetConfig;
        return std::tuple{field("event", &C::event),
                          field("embedding", &C::embedding),
                          field("width", &C::width),
                          field("depth", &C::depth),
                          field("activation", &C::activation),
                          field("unbiased_layer_norm", &C::unbiased_layer_norm),
                          field("frequencies", &C::frequencies),
                          field("embedding_hidden", &C::embedding_hidden)};
    }

    void validate() const {
        // bounded before anything else: a configuration read from a file may claim any size
        const double n = double(element_count_checked(event, "sda::nn::ScoreNetConfig")), w = double(width);
        require_sane_size("sda::nn::ScoreNetConfig", event,
                          (n + double(embedding)) * w + 2 * double(depth) * w * w + w * n +
                              double(embedding_hidden) * (2 * double(frequencies) + double(embedding)));
        sda::detail::require(depth <= 4096, "sda::nn::ScoreNetConfig: depth ", depth, " is above 4096 blocks");
        sda::detail::require(!event.empty() && element_count(event) > 1, "sda::nn::ScoreNetConfig: event ",
                             format_shape(event), " must hold at least 2 entries");
        sda::detail::require(embedding >= 1 && width >= 2 && frequencies >= 1 && embedding_hidden >= 1,
                             "sda::nn::ScoreNetConfig: embedding, width, frequencies and embedding_hidden must be "
                             "positive (width >= 2)");
    }

    nlohmann::json to_json() const { return config_to_json(*this); }
    static ScoreNetConfig from_json(const nlohmann::json& j) {
        ScoreNetConfig c = config_from_json<ScoreNetConfig>(j, "sda::nn::ScoreNetConfig");
        c.validate();
        return c;
    }
    bool operator==(const ScoreNetConfig& other) const { return config_equal(*this, other); }
};

/// The ResMLP between the embedding and the output: x [n, features] with the embedding
/// appended to each row (one shared row enters as the ResMLP's constant tail).
template <class T>
class ResMlpCore {
public:
    using scalar_type = T;
    using config_type = ScoreNetConfig;
    using cache_type = typename ResMLP<T>::Cache;
    static constexpr const char* name = "ScoreNet";
    static constexpr std::size_t inference_chunk = 128;  ///< rows per parallel task when sampling
    static constexpr std::size_t training_chunk = 32;    ///< rows per parallel task when training

    ResMlpCore(const ScoreNetConfig& config, ParameterSet<T>& params)
        : features_(element_count(config.event)), embedding_(config.embedding),
          network_(params, "network", features_ + config.embedding, features_,
                   std::vector<std::size_t>(config.depth, config.width), config.activation,
                   LayerNorm<T>{config.unbiased_layer_norm, 1e-5}) {}

    void initialise(ParameterSet<T>& params, Generator& gen) const { network_.initialise(params, gen); }
    const ResMLP<T>& network() const { return network_; }

    /// `low`: the parameters in bfloat16 for a sampling pass in bfloat16 (ignored when
    /// `keep_input`: training products stay in T).
    void forward(const T* p, const T* x, std::size_t n, const RowMatrix<T>& m, T* y, cache_type* cache,
                 bool keep_input, const BFloat16* low = nullptr) const {
        const auto rows = static_cast<Eigen::Index>(n), f = static_cast<Eigen::Index>(features_);
        Eigen::Map<RowMatrix<T>> out(y, rows, f);
        if (keep_input) low = nullptr;
        if (m.rows() == 1) {  // one time for the chunk: the embedding is the ResMLP's constant tail
            network_.forward(p, Eigen::Map<const RowMatrix<T>>(x, rows, f), m.data(), out, cache, keep_input, low);
            return;
        }
        RowMatrix<T> input(rows, f + static_cast<Eigen::Index>(embedding_));
        input.leftCols(f) = Eigen::Map<const RowMatrix<T>>(x, rows, f);
        input.rightCols(static_cast<Eigen::Index>(embedding_)) = m;
        network_.forward(p, input, nullptr, out, cache, keep_input, low);
    }

    /// `low` as for `forward` (ignored with parameter gradients).
    void backward(const T* p, const cache_type& cache, const T* dy, std::size_t n, const RowMatrix<T>& m, T* g, T* dx,
                  RowMatrix<T>* dm, const BFloat16* low = nullptr) const {
        if (g) low = nullptr;
        const auto rows = static_cast<Eigen::Index>(n), f = static_cast<Eigen::Index>(features_),
                   e = static_cast<Eigen::Index>(embedding_);
        const Eigen::Map<const RowMatrix<T>> dY(dy, rows, f);
        if (dx && dm) {  // both: one pass over every input column
            sda::detail::require(m.rows() == rows, "sda::nn::ScoreNet: d/dm needs one embedding row per sample");
            RowMatrix<T> d_input;
            network_.backward(p, cache, dY, g, &d_input, 0, f + e, low);
            Eigen::Map<RowMatrix<T>>(dx, rows, f) = d_input.leftCols(f);
            *dm = d_input.rightCols(e);
        } else if (dm) {
            sda::detail::require(m.rows() == rows, "sda::nn::ScoreNet: d/dm needs one embedding row per sample");
            network_.backward(p, cache, dY, g, dm, f, e, low);
        } else {
            RowMatrix<T> d_input;
            network_.backward(p, cache, dY, g, dx ? &d_input : nullptr, 0, f, low);
            if (dx) Eigen::Map<RowMatrix<T>>(dx, rows, f) = d_input;
        }
    }

    /// Bytes of the forward caches of n rows (what `linearize` keeps).
    double cache_bytes(std::size_t n) const {
        double values = 0;
        for (const auto& b : network_.blocks())
            values += 2.0 * double(b.width) + 1.0 +
                      ((b.projected && &b != &network_.blocks().front()) ? double(b.projection.in) : 0.0);
        return values * double(n) * sizeof(T);
    }

    /// GEMM FLOPs (2 per multiply-add) of one event: the first projection sees the event's
    /// entries only, the embedding enters as one row.
    double forward_flops() const {
        const auto& first = network_.blocks().front();
        const double saved = first.projected ? 2.0 * double(first.projection.out * embedding_) : 0.0;
        return network_.forward_flops_per_row() - saved;
    }

private:
    std::size_t features_ = 0, embedding_ = 0;
    ResMLP<T> network_;
};

/// The paper's MLP score network on the CPU: `ScoreShell` around the ResMLP.
template <NoiseSchedule Schedule, class T = float>
using ScoreNet = ScoreShell<ResMlpCore<T>, Schedule>;

static_assert(ScoreCore<ResMlpCore<float>> && ScoreCore<ResMlpCore<double>>);
static_assert(BFloat16Core<ResMlpCore<float>>);

}  // namespace sda::nn
