// sda/nn/shell.hpp: `ScoreShell<Core, Schedule>`, the part every score network of
// sda shares: the time embedding, the parameters, the chunked batch loops of
// eps, its VJP, the per-sample-time forward pass and the training gradient, the
// linearisation that keeps activations for repeated VJPs, and the precision of
// the sampling passes (bfloat16 for cores that have it: `BFloat16Core`).
//
// A core is the architecture between the embedding and the output (the ResMLP of
// `nn::ScoreNet`, the U-Net of `nn::ScoreUNet`): it runs one chunk of samples
// forward and backward, keeping what backward needs in its cache. Batches are
// cut into fixed chunks (sda/nn/chunks.hpp) processed in parallel by oneTBB, so
// results do not depend on the thread count; gradients of chunks are summed in
// chunk order.
#pragma once

#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/nn/chunks.hpp"
#include "sda/nn/config.hpp"
#include "sda/nn/embedding.hpp"
#include "sda/nn/matmul.hpp"
#include "sda/nn/parameters.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda::nn {

/// What `ScoreShell` needs of an architecture. Events are flattened to `features()` entries per
/// sample, in the tensor's own layout; `m` holds the time embedding, one row shared by the
/// chunk or one row per sample.
/// - `Core::scalar_type`, `Core::config_type` (a `FieldTable` with `event`, `embedding`,
///   `frequencies` and `embedding_hidden`), `Core::cache_type` (default-constructible);
/// - `Core::name`, the network's name in messages;
/// - `Core::inference_chunk`, `Core::training_chunk`: samples per parallel task;
/// - `Core(config, params)`: registers the core's parameters ("network.*") after the embedding's;
/// - `core.initialise(params, gen)`: PyTorch's default initialisation of those parameters;
/// - `core.forward(p, x, n, m, y, cache, keep_input)`: y = core(x, m) for n samples at x (y
///   has the same layout); with a cache, keeps what backward needs, and the input too when
///   `keep_input` (parameter gradients);
/// - `core.backward(p, cache, dy, n, m, g, dx, dm)`: from the cotangent dy, adds parameter
///   gradients to g, writes d/dx to dx and d/dm (shaped like m) to dm, each when not null;
/// - `core.cache_bytes(n)`: the memory of a cache of n samples; `core.forward_flops()`: FLOPs of
///   one sample's forward pass (2 per multiply-add).
template <class Core>
concept ScoreCore =
    requires {
        typename Core::scalar_type;
        typename Core::config_type;
        typename Core::cache_type;
        { Core::name } -> std::convertible_to<const char*>;
        { Core::inference_chunk } -> std::convertible_to<std::size_t>;
        { Core::training_chunk } -> std::convertible_to<std::size_t>;
    } &&
    FieldTable<typename Core::config_type> &&
    std::constructible_from<Core, const typename Core::config_type&, ParameterSet<typename Core::scalar_type>&> &&
    requires(const Core& core, ParameterSet<typename Core::scalar_type>& params, Generator& gen,
             const typename Core::scalar_type* p, typename Core::scalar_type* out, std::size_t n,
             const RowMatrix<typename Core::scalar_type>& m, RowMatrix<typename Core::scalar_type>* dm,
             typename Core::cache_type* cache) {
        core.initialise(params, gen);
        core.forward(p, p, n, m, out, cache, true);
        core.backward(p, *cache, p, n, m, out, out, dm);
        { core.cache_bytes(n) } -> std::convertible_to<double>;
        { core.forward_flops() } -> std::convertible_to<double>;
    };

/// A core whose sampling passes can run their products in bfloat16: `forward` and `backward`
/// take one more argument, `const BFloat16* low`, the whole parameter buffer rounded to
/// bfloat16 (same offsets), or null for the scalar type's own arithmetic. Training calls
/// (`keep_input`, or a gradient `g`) pass null.
template <class Core>
concept BFloat16Core =
    ScoreCore<Core> &&
    requires(const Core& core, const typename Core::scalar_type* p, typename Core::scalar_type* out, std::size_t n,
             const RowMatrix<typename Core::scalar_type>& m, RowMatrix<typename Core::scalar_type>* dm,
             typename Core::cache_type* cache, const BFloat16* low) {
        core.forward(p, p, n, m, out, cache, false, low);
        core.backward(p, *cache, p, n, m, out, out, dm, low);
    };

template <ScoreCore Core, NoiseSchedule Schedule>
class ScoreShell {
public:
    using scalar_type = typename Core::scalar_type;
    using config_type = typename Core::config_type;
    using core_type = Core;
    using backend_type = CpuBackend<scalar_type>;
    using tensor_type = Tensor<scalar_type>;
    using schedule_type = Schedule;

    static constexpr std::size_t inference_chunk = Core::inference_chunk;  ///< samples per parallel task when sampling
    static constexpr std::size_t training_chunk = Core::training_chunk;    ///< samples per parallel task when training

    /// A network with PyTorch's default initialisation, drawn from `gen`.
    ScoreShell(Schedule schedule, config_type config, Generator& gen)
        : ScoreShell(std::move(schedule), std::move(config)) {
        embedding_.initialise(params_, "embedding", gen);
        core_.initialise(params_, gen);
    }
    /// A network with zero parameters, to load weights into.
    ScoreShell(Schedule schedule, config_type config)
        : schedule_(std::move(schedule)), config_((config.validate(), std::move(config))),
          features_(element_count(config_.event)),
          embedding_(params_, "embedding", config_.frequencies, config_.embedding_hidden, config_.embedding),
          core_(config_, params_) {}

    backend_type backend() const { return {}; }
    const Schedule& schedule() const { return schedule_; }
    const Shape& event_shape() const { return config_.event; }
    const config_type& config() const { return config_; }
    ParameterSet<scalar_type>& parameters() { return params_; }
    const ParameterSet<scalar_type>& parameters() const { return params_; }
    const TimeEmbedding<scalar_type>& embedding() const { return embedding_; }
    const Core& core() const { return core_; }
    decltype(auto) network() const { return core_.network(); }
    /// Entries of one event.
    std::size_t features() const { return features_; }

    /// FLOPs (2 per multiply-add) of `eps` for one event.
    double forward_flops() const { return core_.forward_flops(); }

    /// Above this many bytes of activations, `linearize` recomputes the forward pass at every
    /// VJP instead of keeping it (default 1 GiB).
    std::size_t linearize_cache_bytes() const { return linearize_cache_bytes_; }
    void set_linearize_cache_bytes(std::size_t bytes) { linearize_cache_bytes_ = bytes; }

    /// The arithmetic of `eps`, `linearize` and `vjp` (training and `forward` stay in the
    /// scalar type). `Precision::bfloat16` rounds weights and activations to bfloat16 at every
    /// product (sda/nn/matmul.hpp); it throws `sda::error` for a core without it (the U-Net), in
    /// double, and where the build or the CPU cannot (no oneDNN, no bfloat16 instructions).
    void set_sampling_precision(Precision precision) {
        if (precision == Precision::bfloat16) {
            const std::string who = std::string("sda::nn::") + Core::name + "::set_sampling_precision";
            if constexpr (!BFloat16Core<Core> || !std::is_same_v<scalar_type, float>)
                throw sda::error(who + ": bfloat16 sampling is implemented for float MLP networks only");
            detail::check_bfloat16(who);
        }
        precision_ = precision;
    }
    Precision sampling_precision() const { return precision_; }

    // --- ScoreModel ---------------------------------------------------------------

    /// eps(x, t) for x of shape [B, event...].
    tensor_type eps(const tensor_type& x, double t) const {
        const std::size_t batch = check_input(x, "input");
        const RowMatrix<scalar_type> m = embed(t);
        tensor_type out = empty_tensor<scalar_type>(shape_of(x));
        const auto low = low_weights();
        detail::for_chunks(batch, inference_chunk, [&](std::size_t begin, std::size_t end) {
            sample_forward(low.get(), row(x, begin), end - begin, m, row(out, begin), nullptr);
        });
        return out;
    }

    /// (d eps / dx)^T v: one forward and one backward pass per chunk.
    tensor_type vjp(const tensor_type& x, double t, const tensor_type& v) const {
        return Linearized(*this, x, t, /*cache=*/false).vjp(v);
    }

    /// Evaluates eps at (x, t) once; each `vjp(v)` then costs one backward pass (the
    /// activations are kept, up to `linearize_cache_bytes()`, else recomputed chunk by chunk).
    auto linearize(const tensor_type& x, double t) const {
        const std::size_t batch = check_input(x, "input");
        return Linearized(*this, x, t, core_.cache_bytes(batch) <= double(linearize_cache_bytes_));
    }

    // --- training -----------------------------------------------------------------

    /// eps(x_b, t_b) with one time per sample.
    tensor_type forward(const tensor_type& x, std::span<const double> t) const {
        const std::size_t batch = check_times(x, t, "forward");
        tensor_type out = empty_tensor<scalar_type>(shape_of(x));
        detail::for_chunks(batch, inference_chunk, [&](std::size_t begin, std::size_t end) {
            const RowMatrix<scalar_type> m = embed(t.subspan(begin, end - begin), nullptr);
            core_.forward(params_.data(), row(x, begin), end - begin, m, row(out, begin), nullptr, false);
        });
        return out;
    }

    /// Adds to `grad` the gradient of sum over samples of `loss(row, eps_row, d_eps_row)`,
    /// where `loss` fills d_eps_row with the loss's derivative at eps_row and returns its
    /// value; returns the summed loss (the contract of `TrainableScoreModel`).
    template <class Loss>
    double accumulate_gradient(const tensor_type& x, std::span<const double> t, Loss&& loss,
                               std::span<scalar_type> grad) const {
        const std::size_t batch = check_times(x, t, "accumulate_gradient");
        sda::detail::require(grad.size() == params_.size(), "sda::nn::", Core::name, "::accumulate_gradient: ",
                             grad.size(), " gradient entries for ", params_.size(), " parameters");
        const auto features = static_cast<Eigen::Index>(features_);
        return detail::accumulate_chunks<scalar_type>(
            batch, training_chunk, grad, [&](std::size_t begin, std::size_t end, scalar_type* g, double& total) {
                const std::size_t n = end - begin;
                typename TimeEmbedding<scalar_type>::Cache embedding_cache;
                const RowMatrix<scalar_type> m = embed(t.subspan(begin, n), &embedding_cache);
                typename Core::cache_type cache;
                RowMatrix<scalar_type> eps(static_cast<Eigen::Index>(n), features), d_eps(eps.rows(), features);
                core_.forward(params_.data(), row(x, begin), n, m, eps.data(), &cache, /*keep_input=*/true);
                for (Eigen::Index i = 0; i < eps.rows(); ++i)
                    total += loss(begin + static_cast<std::size_t>(i), eps.row(i), d_eps.row(i));
                RowMatrix<scalar_type> dm;
                core_.backward(params_.data(), cache, d_eps.data(), n, m, g, nullptr, &dm);
                embedding_.backward(params_.data(), embedding_cache, dm, g);
            });
    }

private:
    using LowWeights = std::shared_ptr<const AlignedVector<BFloat16>>;

    /// The parameters rounded to bfloat16 for one sampling call, or null in the scalar type's precision.
    LowWeights low_weights() const {
        if (precision_ != Precision::bfloat16) return nullptr;
        if constexpr (std::is_same_v<scalar_type, float>) {
            auto low = std::make_shared<AlignedVector<BFloat16>>(params_.size());
            detail::round_to_bfloat16(params_.data(), params_.size(), low->data());
            return low;
        } else {
            return nullptr;
        }
    }
    /// The core's sampling forward (no parameter gradients), in bfloat16 when `low` is given.
    void sample_forward(const AlignedVector<BFloat16>* low, const scalar_type* x, std::size_t n,
                        const RowMatrix<scalar_type>& m, scalar_type* y, typename Core::cache_type* cache) const {
        if constexpr (BFloat16Core<Core>) core_.forward(params_.data(), x, n, m, y, cache, false, low ? low->data() : nullptr);
        else core_.forward(params_.data(), x, n, m, y, cache, false);
    }
    /// The core's input VJP, in bfloat16 when `low` is given.
    void sample_backward(const AlignedVector<BFloat16>* low, const typename Core::cache_type& cache, const scalar_type* v,
                         std::size_t n, const RowMatrix<scalar_type>& m, scalar_type* dx) const {
        if constexpr (BFloat16Core<Core>)
            core_.backward(params_.data(), cache, v, n, m, nullptr, dx, nullptr, low ? low->data() : nullptr);
        else core_.backward(params_.data(), cache, v, n, m, nullptr, dx, nullptr);
    }

    /// The linearisation: per-chunk caches of one forward pass, or a copy of x to recompute them.
    class Linearized {
    public:
        Linearized(const ScoreShell& net, const tensor_type& x, double t, bool cache)
            : net_(&net), t_(t), m_(net.embed(t)), batch_(net.check_input(x, "input")), shape_(shape_of(x)),
              low_(net.low_weights()) {
            eps_ = empty_tensor<scalar_type>(shape_);
            if (!cache) {
                x_ = std::make_shared<const tensor_type>(x);
                return;
            }
            caches_.resize((batch_ + inference_chunk - 1) / inference_chunk);
            detail::for_chunks(batch_, inference_chunk, [&](std::size_t begin, std::size_t end) {
                net.sample_forward(low_.get(), row(x, begin), end - begin, m_, row(eps_, begin),
                                   &caches_[begin / inference_chunk]);
            });
            eps_ready_ = true;
        }
        const tensor_type& eps() const {
            if (!eps_ready_) {
                eps_ = net_->eps(*x_, t_);
                eps_ready_ = true;
            }
            return eps_;
        }
        tensor_type vjp(const tensor_type& v) const {
            sda::detail::check_shape(shape_of(v), shape_, std::string("sda::nn::") + Core::name + "::vjp: cotangent");
            tensor_type out = empty_tensor<scalar_type>(shape_);
            detail::for_chunks(batch_, inference_chunk, [&](std::size_t begin, std::size_t end) {
                const std::size_t n = end - begin;
                if (x_) {
                    typename Core::cache_type cache;
                    RowMatrix<scalar_type> y(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(net_->features_));
                    net_->sample_forward(low_.get(), row(*x_, begin), n, m_, y.data(), &cache);
                    net_->sample_backward(low_.get(), cache, row(v, begin), n, m_, row(out, begin));
                } else {
                    net_->sample_backward(low_.get(), caches_[begin / inference_chunk], row(v, begin), n, m_,
                                          row(out, begin));
                }
            });
            return out;
        }

    private:
        const scalar_type* row(const tensor_type& x, std::size_t b) const { return x.data() + b * net_->features_; }
        scalar_type* row(tensor_type& x, std::size_t b) const { return x.data() + b * net_->features_; }

        const ScoreShell* net_;
        double t_;
        RowMatrix<scalar_type> m_;
        std::size_t batch_;
        Shape shape_;
        std::shared_ptr<const tensor_type> x_;  // set when recomputing
        LowWeights low_;                        // the parameters in bfloat16, or null
        std::vector<typename Core::cache_type> caches_;
        mutable tensor_type eps_;
        mutable bool eps_ready_ = false;
    };

    const scalar_type* row(const tensor_type& x, std::size_t b) const { return x.data() + b * features_; }
    scalar_type* row(tensor_type& x, std::size_t b) const { return x.data() + b * features_; }

    std::size_t check_input(const tensor_type& x, const char* what) const {
        sda::detail::check_batch(x, config_.event, std::string("sda::nn::") + Core::name + ": " + what);
        return x.shape()[0];
    }
    std::size_t check_times(const tensor_type& x, std::span<const double> t, const char* who) const {
        const std::size_t batch = check_input(x, "input");
        sda::detail::require(t.size() == batch, "sda::nn::", Core::name, "::", who, ": ", t.size(), " times for ",
                             batch, " samples");
        return batch;
    }

    /// The time embedding at one t, as one row shared by a chunk.
    RowMatrix<scalar_type> embed(double t) const {
        const double times[1] = {t};
        return embed(times, nullptr);
    }
    /// The time embeddings of a chunk's samples, one row each.
    RowMatrix<scalar_type> embed(std::span<const double> t, typename TimeEmbedding<scalar_type>::Cache* cache) const {
        static const std::string who = std::string("sda::nn::") + Core::name;  // built once, not per call
        for (double time : t) sda::detail::check_time(time, who);
        RowMatrix<scalar_type> m(static_cast<Eigen::Index>(t.size()), static_cast<Eigen::Index>(config_.embedding));
        embedding_.forward(params_.data(), t, m, cache);
        return m;
    }

    Schedule schedule_;
    config_type config_;
    std::size_t features_ = 0;
    std::size_t linearize_cache_bytes_ = std::size_t(1) << 30;
    Precision precision_ = Precision::float32;
    ParameterSet<scalar_type> params_;
    TimeEmbedding<scalar_type> embedding_;
    Core core_;
};

}  // namespace sda::nn
