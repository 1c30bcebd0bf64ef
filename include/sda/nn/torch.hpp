// sda/nn/torch.hpp: the paper's score networks as libtorch modules, reading and
// writing the same safetensors checkpoints as `sda::nn::ScoreNet` and
// `sda::nn::ScoreUNet` (needs libtorch, target `sda::torch`).
//
// `torch_nn::ScoreNet` (the ResMLP) and `torch_nn::ScoreUNet` (the U-Net) take
// the CPU networks' configurations and register their parameters under the same
// PyTorch names, so one checkpoint moves between the CPU networks, these modules
// on a GPU, and the paper's PyTorch code (docs/interop.md). Wrap one in
// `sda::TorchScoreModel` to sample with it. `torch_nn::fit` trains one on the
// module's device: `sda::train::fit`'s one loop with the engine
// `torch_nn::Engine` (same windows, same t and noise draws with host noise),
// writing checkpoints through the same writer, which the CPU trainer resumes,
// and conversely.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/backend/torch.hpp"
#include "sda/core/error.hpp"
#include "sda/io/json.hpp"
#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/concepts.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/windows.hpp"

namespace sda::torch_nn {

inline torch::Tensor activate(const torch::Tensor& x, nn::Activation a) {
    switch (a) {
        case nn::Activation::silu: return torch::silu(x);
        case nn::Activation::relu: return torch::relu(x);
        case nn::Activation::gelu: return torch::gelu(x);  // erf form, as torch.nn.GELU()
        case nn::Activation::elu: return torch::elu(x);
    }
    return x;
}

/// (x - mean) / sqrt(var + 1e-5) over axis `dim`, no affine parameters (zuko's LayerNorm).
/// Over the last axis it is torch's fused layer_norm: with the variance over N - 1,
/// (x - m) / sqrt(v N / (N - 1) + e) = sqrt((N - 1) / N) (x - m) / sqrt(v + e (N - 1) / N).
inline torch::Tensor layer_norm(const torch::Tensor& x, std::int64_t dim, bool unbiased) {
    if (dim == -1 || dim == x.dim() - 1) {
        const auto n = static_cast<double>(x.size(-1));
        const double shrink = unbiased ? (n - 1) / n : 1.0;
        const torch::Tensor y = torch::layer_norm(x, {x.size(-1)}, {}, {}, 1e-5 * shrink);
        return unbiased ? y * std::sqrt(shrink) : y;
    }
    const auto [variance, mean] = torch::var_mean(x, {dim}, unbiased, /*keepdim=*/true);
    return (x - mean) / torch::sqrt(variance + 1e-5);
}

/// A parameterless module that only holds children under given names (PyTorch's
/// nn.Sequential of the paper's code, whose children are named "0", "1", ...).
struct Holder : torch::nn::Module {
    template <class M>
    std::shared_ptr<M> hold(const std::string& name, std::shared_ptr<M> child) {
        return register_module(name, std::move(child));
    }
};

/// A score network: eps(x, t) for x [B, event...] and t [B], with its sda configuration.
struct ScoreNetwork : torch::nn::Module {
    virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) = 0;
    /// The configuration as written to checkpoints ("sda.config").
    virtual nlohmann::json config_json() const = 0;
    virtual Shape event_shape() const = 0;
};

/// The sinusoidal time embedding: [cos(pi k t), sin(pi k t)], k = 1..F, then Linear, SiLU, Linear.
struct TimeEmbeddingImpl : torch::nn::Module {
    TimeEmbeddingImpl(std::size_t features, std::size_t frequencies, std::size_t hidden) {
        first = register_module("0", torch::nn::Linear(2 * frequencies, hidden));
        second = register_module("2", torch::nn::Linear(hidden, features));
        freqs = register_buffer("freqs", torch::arange(1, static_cast<std::int64_t>(frequencies) + 1,
                                                       torch::kFloat64).mul(M_PI).to(torch::kFloat32));
    }
    torch::Tensor forward(const torch::Tensor& t) {
        const torch::Tensor phase = t.unsqueeze(-1) * freqs;
        return second(torch::silu(first(torch::cat({phase.cos(), phase.sin()}, -1))));
    }
    torch::nn::Linear first{nullptr}, second{nullptr};
    torch::Tensor freqs;
};
TORCH_MODULE(TimeEmbedding);

/// x + Linear(act(Linear(LayerNorm(x)))), children named as the paper's ResidualBlock(nn.Sequential).
struct ResidualBlockImpl : torch::nn::Module {
    ResidualBlockImpl(std::size_t width, nn::Activation activation, bool unbiased)
        : activation(activation), unbiased(unbiased) {
        first = register_module("1", torch::nn::Linear(width, width));
        second = register_module("3", torch::nn::Linear(width, width));
    }
    torch::Tensor forward(const torch::Tensor& x) {
        return x + second(activate(first(layer_norm(x, -1, unbiased)), activation));
    }
    nn::Activation activation;
    bool unbiased;
    torch::nn::Linear first{nullptr}, second{nullptr};
};
TORCH_MODULE(ResidualBlock);

/// The paper's MLP score network, eps(x, t) = ResMLP([vec(x), embedding(t)]) (`sda::nn::ScoreNet`).
struct ScoreNetImpl : ScoreNetwork {
    explicit ScoreNetImpl(nn::ScoreNetConfig config) : config(std::move(config)) {
        this->config.validate();
        const auto& c = this->config;
        embedding = register_module("embedding", TimeEmbedding(c.embedding, c.frequencies, c.embedding_hidden));
        network = register_module("network", torch::nn::Sequential());
        const std::size_t features = element_count(c.event);
        std::size_t before = features + c.embedding;
        for (std::size_t i = 0; i <= c.depth; ++i) {
            const std::size_t after = i < c.depth ? c.width : features;
            if (after != before) network->push_back(torch::nn::Linear(before, after));
            network->push_back(ResidualBlock(after, c.activation, c.unbiased_layer_norm));
            before = after;
        }
    }
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) override {
        const torch::Tensor flat = x.reshape({x.size(0), -1});
        return network->forward(torch::cat({flat, embedding(t)}, -1)).reshape(x.sizes());
    }
    nlohmann::json config_json() const override { return config.to_json(); }
    Shape event_shape() const override { return config.event; }

    nn::ScoreNetConfig config;
    TimeEmbedding embedding{nullptr};
    torch::nn::Sequential network{nullptr};
};
TORCH_MODULE(ScoreNet);

namespace detail {

/// A 1-D or 2-D convolution with odd `kernel`, padding kernel / 2 (zeros or circular), as the paper's.
inline torch::nn::AnyModule convolution(std::size_t spatial, std::size_t in, std::size_t out, std::size_t kernel,
                                        std::size_t stride, nn::Padding padding) {
    const auto k = static_cast<std::int64_t>(kernel), s = static_cast<std::int64_t>(stride);
    if (spatial == 1) {
        auto options = torch::nn::Conv1dOptions(in, out, k).stride(s).padding(k / 2);
        if (padding == nn::Padding::circular) options.padding_mode(torch::kCircular);
        return torch::nn::AnyModule(torch::nn::Conv1d(options));
    }
    auto options = torch::nn::Conv2dOptions(in, out, k).stride(s).padding(k / 2);
    if (padding == nn::Padding::circular) options.padding_mode(torch::kCircular);
    return torch::nn::AnyModule(torch::nn::Conv2d(options));
}

}  // namespace detail

/// x + conv(act(conv(LayerNorm(x + Linear(m))))): the paper's ModResidualBlock.
struct ModResidualBlockImpl : torch::nn::Module {
    ModResidualBlockImpl(const nn::UNetConfig& c, std::size_t channels)
        : spatial(static_cast<std::int64_t>(c.spatial)), activation(c.activation), unbiased(c.unbiased_layer_norm) {
        auto project_holder = register_module("project", std::make_shared<Holder>());
        project = project_holder->hold("0", torch::nn::Linear(c.embedding, channels).ptr());
        auto residue = register_module("residue", std::make_shared<Holder>());
        first = detail::convolution(c.spatial, channels, channels, c.kernel, 1, c.padding);
        second = detail::convolution(c.spatial, channels, channels, c.kernel, 1, c.padding);
        residue->hold("1", first.ptr());
        residue->hold("3", second.ptr());
    }
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& m) {
        std::vector<std::int64_t> sizes{m.size(0), -1};
        sizes.insert(sizes.end(), static_cast<std::size_t>(spatial), 1);
        const torch::Tensor shifted = x + project->forward(m).reshape(sizes);
        return x + second.forward(activate(first.forward(layer_norm(shifted, 1, unbiased)), activation));
    }
    std::int64_t spatial;
    nn::Activation activation;
    bool unbiased;
    std::shared_ptr<torch::nn::LinearImpl> project;
    torch::nn::AnyModule first, second;
};
TORCH_MODULE(ModResidualBlock);

/// The paper's U-Net (`sda::nn::UNet`): stride-2 heads, modulated residual blocks, LayerNorm,
/// nearest upsampling and convolution tails, additive skips. Children named as the paper's.
struct UNetImpl : torch::nn::Module {
    UNetImpl(const nn::UNetConfig& c, std::size_t in_channels, std::size_t out_channels)
        : spatial(static_cast<std::int64_t>(c.spatial)), unbiased(c.unbiased_layer_norm) {
        const std::size_t levels = c.channels.size();
        auto heads = register_module("heads", torch::nn::ModuleList());
        auto tails_list = register_module("tails", torch::nn::ModuleList());
        auto descent_list = register_module("descent", torch::nn::ModuleList());
        auto ascent_list = register_module("ascent", torch::nn::ModuleList());
        std::vector<std::shared_ptr<torch::nn::Module>> tails_holders(levels), ascent_holders(levels);
        tails.resize(levels), ascent.resize(levels), descent.resize(levels);
        for (std::size_t i = 0; i < levels; ++i) {
            const std::size_t channels = c.channels[i];
            if (i == 0) {
                head.push_back(detail::convolution(c.spatial, in_channels, channels, c.kernel, 1, c.padding));
                heads->push_back(head.back().ptr());
                tails[i] = detail::convolution(c.spatial, channels, out_channels, c.kernel, 1, c.padding);
                tails_holders[i] = tails[i].ptr();
            } else {
                head.push_back(detail::convolution(c.spatial, c.channels[i - 1], channels, c.kernel, 2, c.padding));
                auto holder = std::make_shared<Holder>();
                holder->hold("0", head.back().ptr());
                heads->push_back(holder);
                tails[i] = detail::convolution(c.spatial, channels, c.channels[i - 1], c.kernel, 1, c.padding);
                auto tail_holder = std::make_shared<Holder>();
                tail_holder->hold("2", tails[i].ptr());
                tails_holders[i] = tail_holder;
            }
            auto down = torch::nn::ModuleList(), up = torch::nn::ModuleList();
            for (std::size_t b = 0; b < c.blocks[i]; ++b) {
                descent[i].push_back(ModResidualBlock(c, channels));
                down->push_back(descent[i].back());
                ascent[i].push_back(ModResidualBlock(c, channels));
                up->push_back(ascent[i].back());
            }
            descent_list->push_back(down);
            ascent_holders[i] = up.ptr();
        }
        // tails and ascent are listed from the deepest level up, as in the paper's code
        for (std::size_t i = levels; i-- > 0;) {
            tails_list->push_back(tails_holders[i]);
            ascent_list->push_back(ascent_holders[i]);
        }
    }
    torch::Tensor forward(torch::Tensor x, const torch::Tensor& m) {
        const std::size_t levels = head.size();
        std::vector<torch::Tensor> memory;
        for (std::size_t i = 0; i < levels; ++i) {
            x = head[i].forward(x);
            for (auto& block : descent[i]) x = block->forward(x, m);
            memory.push_back(x);
        }
        memory.pop_back();
        for (std::size_t i = levels; i-- > 0;) {
            for (auto& block : ascent[i]) x = block->forward(x, m);
            if (i > 0) {
                const torch::Tensor h = torch::nn::functional::interpolate(
                    layer_norm(x, 1, unbiased), torch::nn::functional::InterpolateFuncOptions()
                                                    .scale_factor(std::vector<double>(static_cast<std::size_t>(spatial), 2.0))
                                                    .mode(torch::kNearest));
                x = tails[i].forward(h) + memory.back();
                memory.pop_back();
            } else {
                x = tails[i].forward(x);
            }
        }
        return x;
    }
    std::int64_t spatial;
    bool unbiased;
    std::vector<torch::nn::AnyModule> head, tails;
    std::vector<std::vector<ModResidualBlock>> descent, ascent;
};
TORCH_MODULE(UNet);

/// The paper's convolutional score network (`sda::nn::ScoreUNet`): axes before the grid fold
/// into channels, the fixed context channels are appended, eps = UNet(x, embedding(t)).
struct ScoreUNetImpl : ScoreNetwork {
    explicit ScoreUNetImpl(nn::UNetConfig config) : config(std::move(config)) {
        this->config.validate();
        const auto& c = this->config;
        for (std::size_t d = c.event.size() - c.spatial; d < c.event.size(); ++d)
            grid.push_back(static_cast<std::int64_t>(c.event[d]));
        channels = static_cast<std::int64_t>(c.event_channels());
        std::vector<std::int64_t> context_sizes{static_cast<std::int64_t>(c.context_channels())};
        context_sizes.insert(context_sizes.end(), grid.begin(), grid.end());
        context = register_buffer(
            "context", torch::tensor(c.context, torch::kFloat64).to(torch::kFloat32).reshape(context_sizes));
        embedding = register_module("embedding", TimeEmbedding(c.embedding, c.frequencies, c.embedding_hidden));
        network = register_module("network", UNet(c, c.event_channels() + c.context_channels(), c.event_channels()));
    }
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) override {
        std::vector<std::int64_t> sizes{-1, channels};
        sizes.insert(sizes.end(), grid.begin(), grid.end());
        torch::Tensor h = x.reshape(sizes);
        if (context.size(0) > 0) {
            std::vector<std::int64_t> expanded{h.size(0)};
            expanded.insert(expanded.end(), context.sizes().begin(), context.sizes().end());
            h = torch::cat({h, context.expand(expanded)}, 1);
        }
        return network->forward(h, embedding(t)).reshape(x.sizes());
    }
    nlohmann::json config_json() const override { return config.to_json(); }
    Shape event_shape() const override { return config.event; }

    nn::UNetConfig config;
    std::vector<std::int64_t> grid;
    std::int64_t channels = 0;
    torch::Tensor context;
    TimeEmbedding embedding{nullptr};
    UNet network{nullptr};
};
TORCH_MODULE(ScoreUNet);

// --- checkpoints -------------------------------------------------------------------

namespace detail {

/// Parameters of `net` in registration order (the order of `named_parameters`).
inline std::vector<std::pair<std::string, torch::Tensor>> parameters_of(const torch::nn::Module& net) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : net.named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
}

/// The parameter table of `net` (names, shapes, offsets in one flat array), as the CPU networks'.
inline std::vector<nn::ParameterInfo> parameter_table(const torch::nn::Module& net) {
    std::vector<nn::ParameterInfo> out;
    std::size_t offset = 0;
    for (const auto& [name, param] : parameters_of(net)) {
        const Shape shape = sda::detail::shape_of_torch(param);
        out.push_back({name, shape, offset, element_count(shape)});
        offset += element_count(shape);
    }
    return out;
}

/// Tensors (one per parameter, in table order) as one flat float32 host array.
inline std::vector<float> flatten(const std::vector<torch::Tensor>& tensors) {
    std::vector<float> out;
    for (const auto& x : tensors) {
        const torch::Tensor host = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        out.insert(out.end(), host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
    }
    return out;
}

/// Copies a flat float32 host array (table order) into the tensors, on their devices.
inline void unflatten(std::span<const float> values, const std::vector<nn::ParameterInfo>& table,
                      std::vector<torch::Tensor> tensors) {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const auto& info = table[i];
        const torch::Tensor host = torch::from_blob(const_cast<float*>(values.data() + info.offset),
                                                    tensors[i].sizes(), torch::kFloat32);
        tensors[i].copy_(host);
    }
}

inline std::vector<torch::Tensor> parameter_tensors(const torch::nn::Module& net) {
    std::vector<torch::Tensor> out;
    for (auto& [name, param] : parameters_of(net)) out.push_back(param);
    return out;
}

inline nlohmann::json stored_config(const io::SafetensorsFile& file, const std::filesystem::path& path) {
    sda::detail::require(file.metadata().count("sda.config") != 0, "checkpoint ", path.string(),
                         " records no architecture (metadata sda.config)");
    return io::parse_json(file.metadata("sda.config"), "checkpoint " + path.string() + ": sda.config");
}

}  // namespace detail

/// Reads the weights to sample with (float32 or float64: a checkpoint of the CPU networks,
/// of `save_weights`, of `torch_nn::fit` or of tools/torch_interop.py) into `net`. The
/// architecture and the schedule recorded in the file must be `net`'s and `schedule`'s.
template <NoiseSchedule Schedule>
void load_weights(const std::filesystem::path& path, ScoreNetwork& net, const Schedule& schedule) {
    const train::CheckpointReader reader(path, net.config_json(), schedule_description(schedule));
    const auto table = detail::parameter_table(net);
    detail::unflatten(reader.read_all<float>("", table), table, detail::parameter_tensors(net));
}

/// Writes `net`'s weights as float32 under their PyTorch names with its architecture and
/// `schedule` (the one it was trained with): the CPU networks (`sda::train::load_weights`)
/// and tools/torch_interop.py read the file.
template <NoiseSchedule Schedule>
void save_weights(const std::filesystem::path& path, const ScoreNetwork& net, const Schedule& schedule) {
    const auto table = detail::parameter_table(net);
    const std::vector<float> weights = detail::flatten(detail::parameter_tensors(net));
    train::CheckpointContent<float> content;
    content.config = net.config_json();
    content.schedule = schedule_description(schedule);
    content.parameters = &table;
    content.weights = weights;
    train::write_checkpoint(path, content);
}

/// The network a checkpoint describes (its "kind": "mlp" or "unet"), with its weights to
/// sample with, as a module on the CPU (move it with `->to(device)` or through
/// `TorchScoreModel`); the file must record `schedule` if it records one.
template <NoiseSchedule Schedule>
std::shared_ptr<ScoreNetwork> load(const std::filesystem::path& path, const Schedule& schedule) {
    const io::SafetensorsFile file(path);
    const nlohmann::json config = detail::stored_config(file, path);
    const std::string kind = config.is_object() && config.contains("kind") && config.at("kind").is_string()
                                 ? config.at("kind").get<std::string>()
                                 : std::string();
    std::shared_ptr<ScoreNetwork> net;
    if (kind == nn::UNetConfig::kind)
        net = std::make_shared<ScoreUNetImpl>(nn::UNetConfig::from_json(config));
    else if (kind == nn::ScoreNetConfig::kind)
        net = std::make_shared<ScoreNetImpl>(nn::ScoreNetConfig::from_json(config));
    else
        sda::detail::fail("checkpoint ", path.string(), ": sda.config names no known architecture (\"kind\": \"",
                          kind, "\"; sda knows \"", nn::ScoreNetConfig::kind, "\" and \"", nn::UNetConfig::kind, "\")");
    load_weights(path, *net, schedule);
    return net;
}

// --- training ----------------------------------------------------------------------

/// A noised batch on the device: x(t) = mu(t) x + sigma(t) z.
struct NoisedBatch {
    torch::Tensor xt, z, t;
};

/// Draws t ~ U(0, 1) per sample (on the host, as `sda::train::noise_batch`: [B] numbers) and
/// z ~ N(0, I) from `backend` (two draws of `gen`; with host noise, exactly the CPU trainer's).
template <NoiseSchedule Schedule>
NoisedBatch noise_batch(const Schedule& schedule, const torch::Tensor& x, Generator& gen,
                        const TorchBackend& backend) {
    const std::size_t batch = static_cast<std::size_t>(x.size(0));
    std::vector<double> t(batch), mu(batch), sigma(batch);
    fill_uniform(t.data(), 1, batch, gen);
    for (std::size_t b = 0; b < batch; ++b) {
        t[b] = 1.0 - t[b];  // (0, 1] -> [0, 1)
        mu[b] = schedule.mu(t[b]), sigma[b] = schedule.sigma(t[b]);
    }
    const auto on_device = [&](const std::vector<double>& v) {
        return torch::tensor(v, torch::kFloat64).to(backend.options());
    };
    NoisedBatch out;
    out.t = on_device(t);
    out.z = backend.normal(backend.shape(x), gen);
    out.xt = backend.add(backend.scale_rows(on_device(mu), x), backend.scale_rows(on_device(sigma), out.z));
    return out;
}

/// The denoising loss mean ||eps(x(t), t) - z||^2 over batch and entries (`sda::train::denoising_loss`).
inline torch::Tensor denoising_loss(ScoreNetwork& net, const NoisedBatch& batch) {
    return (net.forward(batch.xt, batch.t) - batch.z).square().mean();
}

namespace detail {

inline torch::optim::AdamWOptions adamw_options(const train::AdamWOptions& o) {
    return torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay);
}

/// The key of a parameter's state in a torch optimiser (libtorch's own convention).
inline std::string state_key(const torch::Tensor& param) { return c10::guts::to_string(param.unsafeGetTensorImpl()); }

}  // namespace detail

/// The training engine of `sda::train::fit` for a libtorch network on `backend`'s device:
/// torch's AdamW, autograd, the EMA as device tensors, and checkpoints in the CPU trainer's
/// format (through `train::write_checkpoint` and `train::CheckpointReader`). Windows are cut
/// on the host and copied per batch. No step waits for the device: the epoch's loss is
/// summed on the device and read only by `loss_sum()`.
template <NoiseSchedule Schedule>
class Engine {
public:
    using scalar_type = float;

    Engine(ScoreNetwork& net, Schedule schedule, TorchBackend backend, const train::AdamWOptions& optimizer)
        : net_(&net), schedule_(std::move(schedule)), backend_(std::move(backend)), options_(optimizer) {
        sda::detail::require(backend_.dtype == torch::kFloat32, "sda::torch_nn::fit: trains float32 networks");
        net_->to(backend_.device, torch::kFloat32);
        net_->train();
        optimizer_ = std::make_unique<torch::optim::AdamW>(net_->parameters(), detail::adamw_options(optimizer));
        table_ = detail::parameter_table(*net_);
        begin_epoch();
    }

    Shape event_shape() const { return net_->event_shape(); }

    void begin_epoch() { loss_sum_ = torch::zeros({}, backend_.options().dtype(torch::kFloat64)); }
    void step(const Tensor<float>& x, Generator& gen, double lr, double clip) {
        for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        const NoisedBatch noised = noise_batch(schedule_, to_torch(x, backend_), gen, backend_);
        optimizer_->zero_grad();
        const torch::Tensor loss = denoising_loss(*net_, noised);
        loss.backward();
        if (clip > 0) torch::nn::utils::clip_grad_norm_(net_->parameters(), clip);
        optimizer_->step();
        loss_sum_ += loss.detach().to(torch::kFloat64);
    }
    double loss_sum() const { return loss_sum_.item<double>(); }
    double validation_loss(const Tensor<float>& x, Generator& noise) {
        torch::NoGradGuard no_grad;
        net_->eval();
        const double loss =
            denoising_loss(*net_, noise_batch(schedule_, to_torch(x, backend_), noise, backend_)).template item<double>();
        net_->train();
        return loss;
    }

    void reset_ema() {
        ema_.clear();
        for (const auto& param : detail::parameter_tensors(*net_)) ema_.push_back(param.detach().clone());
    }
    void update_ema(double decay) {
        torch::NoGradGuard no_grad;
        const auto params = detail::parameter_tensors(*net_);
        for (std::size_t i = 0; i < ema_.size(); ++i) ema_[i].mul_(decay).add_(params[i].detach(), 1.0 - decay);
    }
    /// The EMA weights, one tensor per parameter (empty before `reset_ema`).
    const std::vector<torch::Tensor>& ema() const { return ema_; }

    void save(const std::filesystem::path& path, double ema_decay, const train::TrainingState& state) const {
        const auto params = detail::parameter_tensors(*net_);
        std::vector<torch::Tensor> m, v;
        std::int64_t steps = 0;
        for (const auto& param : params) {
            const auto it = optimizer_->state().find(detail::state_key(param));
            const auto* s = it != optimizer_->state().end()
                                ? static_cast<const torch::optim::AdamWParamState*>(it->second.get())
                                : nullptr;
            if (s) steps = std::max<std::int64_t>(steps, s->step());
            m.push_back(s ? s->exp_avg() : torch::zeros_like(param));
            v.push_back(s ? s->exp_avg_sq() : torch::zeros_like(param));
        }
        const std::vector<float> trained = detail::flatten(params), exp_avg = detail::flatten(m),
                                 exp_avg_sq = detail::flatten(v);
        const std::vector<float> ema = ema_decay > 0 ? detail::flatten(ema_) : std::vector<float>{};
        train::CheckpointContent<float> content;
        content.config = net_->config_json();
        content.schedule = schedule_description(schedule_);
        content.parameters = &table_;
        content.weights = ema_decay > 0 ? std::span<const float>(ema) : std::span<const float>(trained);
        if (ema_decay > 0) content.trained = trained;
        content.exp_avg = exp_avg, content.exp_avg_sq = exp_avg_sq;
        content.optimizer = options_, content.steps = static_cast<std::uint64_t>(steps);
        content.ema_decay = ema_decay, content.state = &state;
        train::write_checkpoint(path, content);
    }
    train::CheckpointReader::Resume load(const std::filesystem::path& path, double ema_decay) {
        const train::CheckpointReader reader(path, net_->config_json(), schedule_description(schedule_));
        train::CheckpointReader::Resume resume = reader.resume();
        const auto params = detail::parameter_tensors(*net_);
        detail::unflatten(reader.read_all<float>(resume.ema_decay > 0 ? "training." : "", table_), table_, params);
        if (ema_decay > 0 && resume.ema_decay > 0) {
            reset_ema();
            detail::unflatten(reader.read_all<float>("", table_), table_, ema_);
        }
        if (resume.steps == 0) return resume;  // torch's AdamW starts from no state
        const AlignedVector<float> m = reader.read_all<float>("optimizer.exp_avg.", table_),
                                 v = reader.read_all<float>("optimizer.exp_avg_sq.", table_);
        for (std::size_t i = 0; i < params.size(); ++i) {
            auto s = std::make_unique<torch::optim::AdamWParamState>();
            s->step(static_cast<std::int64_t>(resume.steps));
            torch::Tensor mi = torch::empty_like(params[i]), vi = torch::empty_like(params[i]);
            detail::unflatten(m, {table_[i]}, {mi});
            detail::unflatten(v, {table_[i]}, {vi});
            s->exp_avg(mi), s->exp_avg_sq(vi);
            optimizer_->state()[detail::state_key(params[i])] = std::move(s);
        }
        return resume;
    }
    void finish() { net_->eval(); }

private:
    ScoreNetwork* net_;
    Schedule schedule_;
    TorchBackend backend_;
    train::AdamWOptions options_;
    std::unique_ptr<torch::optim::AdamW> optimizer_;
    std::vector<nn::ParameterInfo> table_;
    std::vector<torch::Tensor> ema_;
    torch::Tensor loss_sum_;
};

/// Trains `net` on its device with `sda::train::fit`'s loop (`Engine`): per epoch a permutation
/// of the training windows, batches of `options.batch_size`, the denoising loss, optional
/// gradient clipping, torch's AdamW with `options.optimizer` and the learning-rate schedule,
/// the EMA; validation on a fixed subset with fixed noise; a checkpoint (the CPU trainer's
/// format) after every epoch, resumed from when present. `backend` names the device and the
/// noise source (host noise: the CPU trainer's draws).
template <NoiseSchedule Schedule, class Callback = train::NoTrainingCallback>
train::FitResult fit(ScoreNetwork& net, const Schedule& schedule, const train::WindowDataset<float>& train_set,
                     const train::WindowDataset<float>& valid_set, const train::FitOptions& options, Generator& gen,
                     const TorchBackend& backend, Callback&& callback = {}) {
    Engine<Schedule> engine(net, schedule, backend, options.optimizer);
    return train::fit(engine, train_set, valid_set, options, gen, std::forward<Callback>(callback));
}

}  // namespace sda::torch_nn
