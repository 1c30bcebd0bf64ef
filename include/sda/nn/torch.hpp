// sda/nn/torch.hpp: the paper's score networks as libtorch modules, reading and
// writing the same safetensors checkpoints as `sda::nn::ScoreNet` and
// `sda::nn::ScoreUNet` (needs libtorch, target `sda::torch`).
//
// `torch_nn::ScoreNet` (the ResMLP) and `torch_nn::ScoreUNet` (the U-Net) take
// the CPU networks' configurations and register their parameters under the same
// PyTorch names, so one checkpoint moves between the CPU networks, these modules
// on a GPU, and the paper's PyTorch code (docs/interop.md). Wrap one in
// `sda::TorchScoreModel` to sample with it. `torch_nn::fit` trains one on the
// module's device with the loss, optimiser and training loop of
// `sda::train::fit` (same windows, same t and noise draws with host noise), and
// writes checkpoints the CPU trainer resumes, and conversely.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/backend/torch.hpp"
#include "sda/core/error.hpp"
#include "sda/io/progress.hpp"
#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
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

inline nlohmann::json stored_config(const io::SafetensorsFile& file, const std::filesystem::path& path) {
    sda::detail::require(file.metadata().count("sda.config") != 0, "checkpoint ", path.string(),
                         " records no architecture (metadata sda.config)");
    try {
        return nlohmann::json::parse(file.metadata("sda.config"));
    } catch (const nlohmann::json::exception& e) {
        sda::detail::fail("checkpoint ", path.string(), ": sda.config is not valid JSON: ", e.what());
    }
}

/// Parameters of `net` in registration order (the order of `named_parameters`).
inline std::vector<std::pair<std::string, torch::Tensor>> parameters_of(const torch::nn::Module& net) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : net.named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
}

inline std::vector<float> host_values(const torch::Tensor& x) {
    const torch::Tensor host = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    return {host.data_ptr<float>(), host.data_ptr<float>() + host.numel()};
}

/// A float32 or float64 tensor of a checkpoint, as float32 values (the CPU networks may be double).
inline std::vector<float> read_floats(const io::SafetensorsFile& file, const std::string& name, const Shape& shape) {
    const auto it = file.tensors().find(name);
    if (it != file.tensors().end() && it->second.dtype == "F64") {
        const std::vector<double> values = file.read<double>(name, shape);
        return {values.begin(), values.end()};
    }
    return file.read<float>(name, shape);
}

inline void copy_into(torch::Tensor& target, const std::vector<float>& values) {
    torch::NoGradGuard no_grad;
    const torch::Tensor host = torch::from_blob(const_cast<float*>(values.data()), target.sizes(), torch::kFloat32);
    target.copy_(host);
}

}  // namespace detail

/// Reads float32 or float64 weights (a checkpoint of the CPU network, of `save_weights`, or
/// of tools/torch_interop.py) into `net`; the architecture recorded in the file must match.
inline void load_weights(const std::filesystem::path& path, ScoreNetwork& net) {
    const io::SafetensorsFile file(path);
    if (file.metadata().count("sda.config")) {
        const nlohmann::json stored = detail::stored_config(file, path);
        sda::detail::require(stored == net.config_json(), "checkpoint ", path.string(),
                             " was written for the architecture ", stored.dump(), ", not ", net.config_json().dump());
    }
    for (auto& [name, param] : detail::parameters_of(net))
        detail::copy_into(param, detail::read_floats(file, name, sda::detail::shape_of_torch(param)));
}

/// Writes `net`'s weights as float32 under their PyTorch names with the "sda.config" metadata:
/// the CPU networks (`sda::train::load_weights`) and tools/torch_interop.py read the file.
inline void save_weights(const std::filesystem::path& path, const ScoreNetwork& net) {
    io::SafetensorsWriter writer;
    for (const auto& [name, param] : detail::parameters_of(net))
        writer.add<float>(name, std::span<const float>(detail::host_values(param)), sda::detail::shape_of_torch(param));
    writer.metadata("format", "pt");
    writer.metadata("sda.config", net.config_json().dump());
    writer.write(path);
}

/// The network a checkpoint describes ("kind": "unet" or the MLP), with its weights,
/// as a module on the CPU (move it with `->to(device)` or through `TorchScoreModel`).
inline std::shared_ptr<ScoreNetwork> load(const std::filesystem::path& path) {
    const io::SafetensorsFile file(path);
    const nlohmann::json config = detail::stored_config(file, path);
    std::shared_ptr<ScoreNetwork> net;
    if (config.value("kind", std::string("mlp")) == "unet")
        net = std::make_shared<ScoreUNetImpl>(nn::UNetConfig::from_json(config));
    else
        net = std::make_shared<ScoreNetImpl>(nn::ScoreNetConfig::from_json(config));
    load_weights(path, *net);
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

inline void save_checkpoint(const std::filesystem::path& path, const ScoreNetwork& net, torch::optim::AdamW& optimizer,
                            const train::AdamWOptions& o, const train::TrainingState& state) {
    io::SafetensorsWriter writer;
    std::int64_t steps = 0;
    for (const auto& [name, param] : parameters_of(net)) {
        const auto shape = sda::detail::shape_of_torch(param);
        writer.add<float>(name, std::span<const float>(host_values(param)), shape);
        const auto it = optimizer.state().find(state_key(param));
        const auto* s = it != optimizer.state().end() ? static_cast<const torch::optim::AdamWParamState*>(it->second.get())
                                                      : nullptr;
        if (s) steps = std::max<std::int64_t>(steps, s->step());
        const torch::Tensor zero = torch::zeros_like(param);
        writer.add<float>("optimizer.exp_avg." + name, std::span<const float>(host_values(s ? s->exp_avg() : zero)), shape);
        writer.add<float>("optimizer.exp_avg_sq." + name,
                          std::span<const float>(host_values(s ? s->exp_avg_sq() : zero)), shape);
    }
    writer.metadata("format", "pt");
    writer.metadata("sda.config", net.config_json().dump());
    writer.metadata("sda.optimizer", train::detail::optimizer_metadata(o, static_cast<std::uint64_t>(steps)));
    train::detail::write_training_state(writer, state);
    writer.write(path);
}

inline void load_checkpoint(const std::filesystem::path& path, ScoreNetwork& net, torch::optim::AdamW& optimizer,
                            train::TrainingState& state) {
    load_weights(path, net);
    const io::SafetensorsFile file(path);
    const auto steps = static_cast<std::int64_t>(train::detail::read_training_state(file, path, state));
    if (steps == 0) return;  // torch's AdamW starts from no state
    for (auto& [name, param] : parameters_of(net)) {
        const auto shape = sda::detail::shape_of_torch(param);
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(steps);
        torch::Tensor m = torch::empty_like(param), v = torch::empty_like(param);
        copy_into(m, read_floats(file, "optimizer.exp_avg." + name, shape));
        copy_into(v, read_floats(file, "optimizer.exp_avg_sq." + name, shape));
        s->exp_avg(m), s->exp_avg_sq(v);
        optimizer.state()[state_key(param)] = std::move(s);
    }
}

}  // namespace detail

/// Trains `net` on its device with `sda::train::fit`'s loop: per epoch a permutation of the
/// training windows, batches of `options.batch_size`, the denoising loss, optional gradient
/// clipping, torch's AdamW with `options.optimizer` and the learning-rate schedule; validation
/// on a fixed subset with fixed noise; a checkpoint (the CPU trainer's format) after every
/// epoch, resumed from when present. Windows are cut on the host and copied per batch.
/// `backend` names the device and the noise source (host noise: the CPU trainer's draws).
template <NoiseSchedule Schedule, class Callback = train::NoTrainingCallback>
train::FitResult fit(ScoreNetwork& net, const Schedule& schedule, const train::WindowDataset<float>& train_set,
                     const train::WindowDataset<float>& valid_set, const train::FitOptions& options, Generator& gen,
                     const TorchBackend& backend, Callback&& callback = {}) {
    options.validate();
    sda::detail::require(backend.dtype == torch::kFloat32, "sda::torch_nn::fit: trains float32 networks");
    sda::detail::require(train_set.event_shape() == net.event_shape() && valid_set.event_shape() == net.event_shape(),
                         "sda::torch_nn::fit: windows of shape ", format_shape(train_set.event_shape()), " and ",
                         format_shape(valid_set.event_shape()), " for a network of events ",
                         format_shape(net.event_shape()));
    sda::detail::require(train_set.size() >= 1 && valid_set.size() >= 1, "sda::torch_nn::fit: empty training or validation set");
    net.to(backend.device, torch::kFloat32);
    net.train();
    torch::optim::AdamW optimizer(net.parameters(), detail::adamw_options(options.optimizer));
    train::TrainingState state{0, gen.seed(), gen.draws(), {}};
    train::FitResult result;
    if (!options.checkpoint.empty() && std::filesystem::exists(options.checkpoint)) {
        detail::load_checkpoint(options.checkpoint, net, optimizer, state);
        sda::detail::require(state.seed == gen.seed(), "sda::torch_nn::fit: the checkpoint ", options.checkpoint.string(),
                             " was trained with seed ", state.seed, ", this run has seed ", gen.seed());
        gen = Generator(state.seed, state.draws);
        result.resumed_from = state.epoch;
    }
    // the CPU trainer's validation subset and noise
    const std::vector<std::size_t> valid_indices =
        train::detail::validation_indices(options.valid_size, valid_set.size(), gen.seed());
    const std::size_t valid_count = valid_indices.size();
    const std::size_t per_epoch = options.epoch_size ? std::min(options.epoch_size, train_set.size()) : train_set.size();
    const std::size_t batches = (per_epoch + options.batch_size - 1) / options.batch_size;

    for (std::size_t epoch = state.epoch; epoch < options.epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        const double lr = options.optimizer.lr * train::lr_factor(options.schedule, epoch, options.epochs);
        for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        const std::vector<std::size_t> order = train::permutation(train_set.size(), gen);
        Progress progress(options.label + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                          options.progress);
        torch::Tensor train_sum = torch::zeros({}, backend.options().dtype(torch::kFloat64));
        for (std::size_t b = 0; b < batches; ++b) {
            const std::size_t begin = b * options.batch_size, end = std::min(per_epoch, begin + options.batch_size);
            const torch::Tensor x =
                to_torch(train_set.batch(std::span<const std::size_t>(order.data() + begin, end - begin)), backend);
            const NoisedBatch noised = noise_batch(schedule, x, gen, backend);
            optimizer.zero_grad();
            const torch::Tensor loss = denoising_loss(net, noised);
            loss.backward();
            if (options.clip > 0) torch::nn::utils::clip_grad_norm_(net.parameters(), options.clip);
            optimizer.step();
            train_sum += loss.detach().to(torch::kFloat64);
            if constexpr (requires { callback.on_batch(epoch + 1, b + 1, 0.0); })
                callback.on_batch(epoch + 1, b + 1, loss.item<double>());
            if (options.progress) {
                const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                char extra[64];
                std::snprintf(extra, sizeof extra, "%.0f steps/s", double(b + 1) / std::max(elapsed, 1e-9));
                progress.update(b + 1, batches, extra);
            }
        }
        double valid_sum = 0;
        {
            torch::NoGradGuard no_grad;
            net.eval();
            Generator valid_noise = train::detail::validation_noise(gen.seed());
            for (std::size_t begin = 0; begin < valid_count; begin += 1024) {
                const std::size_t end = std::min(valid_count, begin + 1024);
                const torch::Tensor x = to_torch(
                    valid_set.batch(std::span<const std::size_t>(valid_indices.data() + begin, end - begin)), backend);
                valid_sum += denoising_loss(net, noise_batch(schedule, x, valid_noise, backend)).template item<double>() *
                             double(end - begin);
            }
            net.train();
        }
        const train::EpochStats stats{epoch + 1, train_sum.item<double>() / double(batches),
                                      valid_sum / double(valid_count), lr,
                                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
        state.history.push_back(stats);
        state.epoch = epoch + 1, state.draws = gen.draws();
        if (options.progress)
            std::fprintf(stderr, "%s epoch %zu/%zu: train %.5f, valid %.5f, lr %.2e, %.1f s\n", options.label.c_str(),
                         stats.epoch, options.epochs, stats.train_loss, stats.valid_loss, stats.lr, stats.seconds);
        if (!options.checkpoint.empty())
            detail::save_checkpoint(options.checkpoint, net, optimizer, options.optimizer, state);
        if constexpr (requires { callback.on_epoch(stats); }) callback.on_epoch(stats);
    }
    net.eval();
    result.history = state.history;
    return result;
}

}  // namespace sda::torch_nn
