// Interop with PyTorch through tools/torch_interop.py and Debian's python3-torch:
// the same weights give the same eps (one time per sample, and one shared time)
// and the same input VJP in sda and in PyTorch, both ways, for the MLP ScoreNet
// (both LayerNorm variances) and the convolutional ScoreUNet (2-D circular with
// a context channel, 1-D zero padding); sda's AdamW follows torch.optim.AdamW
// step for step. All the PyTorch work runs in one `torch_interop.py batch`
// process, since importing torch alone takes seconds.
// Exits 77 (CTest: skipped), saying so, when python3-torch is not installed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/checkpoint.hpp"

namespace fs = std::filesystem;

namespace {

constexpr double tolerance = 1e-5;  // float: observed differences are 3e-7 to 2e-6 (docs/interop.md)
constexpr double shared_t = 0.7;    // the time of the eps(x, t) and VJP comparisons

std::string script;
fs::path dir;
int failures = 0;
std::vector<std::string> commands;          // the PyTorch side, run as one batch
std::vector<std::function<void()>> checks;  // the comparisons, once the batch has run

void check(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += ok ? 0 : 1;
}

std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

std::string format(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1e", value);
    return buffer;
}

/// max |a - b| / max |b|; infinite when the sizes differ (a tensor that PyTorch did not write).
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size() || a.empty()) return INFINITY;
    double worst = 0, scale = 1e-30;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i]))), scale = std::max(scale, double(std::abs(b[i])));
    return worst / scale;
}

std::vector<float> values(const sda::Tensor<float>& x) { return {x.begin(), x.end()}; }

/// A tensor PyTorch wrote, or nothing when it did not.
std::vector<float> theirs(const fs::path& path, const std::string& name, const sda::Shape& shape) {
    try {
        return sda::io::SafetensorsFile(path).read<float>(name, shape);
    } catch (const sda::error& e) {
        std::printf("      %s\n", e.what());
        return {};
    }
}

/// What both sides evaluate: x [B, event...], one t per sample for eps, and at t = shared_t a cotangent v.
struct Inputs {
    sda::Tensor<float> x, v;
    std::vector<double> times;
    fs::path per_sample, shared;  // files: {x, t} and {x, t = shared_t, v}
};

Inputs write_inputs(const sda::Shape& event, std::size_t batch, const std::string& stem) {
    sda::Generator gen(3);
    Inputs in{sda::CpuBackend<float>::normal(sda::batch_shape(batch, event), gen),
              sda::CpuBackend<float>::normal(sda::batch_shape(batch, event), gen), std::vector<double>(batch),
              dir / (stem + ".inputs.safetensors"), dir / (stem + ".vjp_inputs.safetensors")};
    std::vector<float> t(batch), t_shared(batch, float(shared_t));
    for (std::size_t b = 0; b < batch; ++b) in.times[b] = double(b) / double(batch - 1), t[b] = float(in.times[b]);
    const auto shape = sda::shape_of(in.x);
    sda::io::SafetensorsWriter per_sample, shared;
    per_sample.add<float>("x", std::span<const float>(in.x.data(), in.x.size()), shape);
    per_sample.add<float>("t", t, {batch});
    per_sample.write(in.per_sample);
    shared.add<float>("x", std::span<const float>(in.x.data(), in.x.size()), shape);
    shared.add<float>("t", t_shared, {batch});
    shared.add<float>("v", std::span<const float>(in.v.data(), in.v.size()), shape);
    shared.write(in.shared);
    return in;
}

/// Queues PyTorch's eps and VJP of the weights `weights`, and their comparison with `net`'s.
template <class Net>
void compare(const std::string& what, std::shared_ptr<const Net> net, std::shared_ptr<const Inputs> in, const fs::path& weights) {
    const fs::path eps = fs::path(weights).replace_extension(".eps.safetensors");
    const fs::path vjp = fs::path(weights).replace_extension(".vjp.safetensors");
    commands.push_back("eps " + quoted(weights) + " " + quoted(in->per_sample) + " " + quoted(eps));
    commands.push_back("eps " + quoted(weights) + " " + quoted(in->shared) + " " + quoted(vjp));
    checks.push_back([=] {
        const auto shape = sda::shape_of(in->x);
        const double forward = relative_difference(values(net->forward(in->x, in->times)), theirs(eps, "eps", shape));
        const double shared = relative_difference(values(net->eps(in->x, shared_t)), theirs(vjp, "eps", shape));
        const double cotangent = relative_difference(values(net->vjp(in->x, shared_t, in->v)), theirs(vjp, "vjp", shape));
        check(forward < tolerance, what + ": eps, one t per sample (relative difference " + format(forward) + ")");
        check(shared < tolerance, what + ": eps, one t for all (relative difference " + format(shared) + ")");
        check(cotangent < tolerance, what + ": input VJP (relative difference " + format(cotangent) + ")");
    });
}

/// Queues both directions for one architecture: sda's weights in PyTorch, PyTorch's weights in sda.
template <class Net, class Config>
void both_ways(const std::string& label, const std::string& stem, const Config& config, std::size_t batch) {
    sda::Generator gen(1);
    auto ours = std::make_shared<const Net>(sda::VPCosine{}, config, gen);
    const fs::path sda_weights = dir / (stem + ".sda.safetensors"), torch_weights = dir / (stem + ".torch.safetensors");
    sda::train::save_weights(sda_weights, *ours);
    const auto in = std::make_shared<const Inputs>(write_inputs(config.event, batch, stem));
    compare(label + ", sda weights in PyTorch", ours, in, sda_weights);

    commands.push_back("init " + quoted(torch_weights) + " --like " + quoted(sda_weights));
    auto loaded = std::make_shared<Net>(sda::VPCosine{}, config);
    checks.push_back([=] {  // before the comparisons below, once PyTorch has written its weights
        try {
            sda::train::load_weights(torch_weights, *loaded);
            check(true, label + ": PyTorch's weights load in sda");
        } catch (const sda::error& e) {
            check(false, label + ": PyTorch's weights load in sda: " + e.what());
        }
    });
    compare(label + ", PyTorch weights in sda", std::shared_ptr<const Net>(loaded), in, torch_weights);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    script = argv[1];
    if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0) {
        std::printf("SKIPPED: python3-torch is not installed (apt-get install python3-torch), PyTorch interop not checked\n");
        return 77;
    }
    dir = fs::temp_directory_path() / ("sda_torch_interop_" + std::to_string(::getpid()));
    fs::create_directories(dir);

    // the MLP: the paper's Lorenz-63 window model, both LayerNorm variances
    for (bool unbiased : {true, false}) {
        sda::nn::ScoreNetConfig config;
        config.event = {5, 3};
        config.unbiased_layer_norm = unbiased;
        both_ways<sda::nn::ScoreNet<sda::VPCosine>>(unbiased ? "MLP, LayerNorm over N - 1" : "MLP, LayerNorm over N",
                                                    unbiased ? "mlp_unbiased" : "mlp_biased", config, 64);
    }

    // the U-Net, 2-D: circular padding, a context channel, 3 levels, a non-square grid
    {
        sda::nn::UNetConfig config;
        config.event = {3, 2, 8, 16};
        config.channels = {8, 12, 16};
        config.blocks = {1, 2, 1};
        config.embedding = 8;
        config.frequencies = 4;
        config.embedding_hidden = 16;
        config.context.resize(8 * 16);
        for (std::size_t i = 0; i < 8; ++i)
            for (std::size_t j = 0; j < 16; ++j) config.context[i * 16 + j] = std::sin(4 * M_PI * double(i) / 8) * std::cos(2 * M_PI * double(j) / 16 + 0.3);
        both_ways<sda::nn::ScoreUNet<sda::VPCosine>>("U-Net 2-D circular with context", "unet2d", config, 10);
    }
    // the U-Net, 1-D: zero padding, kernel 5, GELU, LayerNorm over N, no context
    {
        sda::nn::UNetConfig config;
        config.event = {2, 3, 24};
        config.spatial = 1;
        config.channels = {6, 10};
        config.blocks = {2, 1};
        config.kernel = 5;
        config.padding = sda::nn::Padding::zeros;
        config.activation = sda::nn::Activation::gelu;
        config.unbiased_layer_norm = false;
        config.embedding = 5;
        config.frequencies = 3;
        config.embedding_hidden = 7;
        both_ways<sda::nn::ScoreUNet<sda::VPCosine>>("U-Net 1-D zero padding", "unet1d", config, 9);
    }

    // AdamW: ten steps on the same gradients at changing learning rates
    std::vector<float> params;
    const std::size_t n = 1000, steps = 10;
    {
        sda::Generator gen(2);
        std::vector<float> grads(n * steps), lrs(steps);
        params.resize(n);
        sda::fill_normal(params.data(), 1, n, gen);
        sda::fill_normal(grads.data(), steps, n, gen);
        const sda::train::AdamWOptions options{.lr = 1e-2, .beta1 = 0.85, .beta2 = 0.99, .eps = 1e-7, .weight_decay = 0.05};
        sda::io::SafetensorsWriter inputs;
        inputs.add<float>("params", params, {n});
        inputs.add<float>("grads", grads, {steps, n});
        sda::train::AdamW<float> adamw(n, options);
        for (std::size_t k = 0; k < steps; ++k) {
            lrs[k] = float(options.lr * (1.0 - 0.05 * double(k)));
            adamw.step(params, std::span<const float>(grads.data() + k * n, n), lrs[k]);
        }
        inputs.add<float>("lrs", lrs, {steps});
        inputs.metadata("options", nlohmann::json{{"lr", options.lr}, {"betas", {options.beta1, options.beta2}},
                                                  {"eps", options.eps}, {"weight_decay", options.weight_decay}}
                                       .dump());
        inputs.write(dir / "adamw_in.safetensors");
        commands.push_back("adamw " + quoted(dir / "adamw_in.safetensors") + " " + quoted(dir / "adamw_out.safetensors"));
    }

    {
        std::ofstream batch(dir / "commands.txt");
        for (const auto& command : commands) batch << command << '\n';
    }
    check(std::system(("/usr/bin/python3 " + script + " batch " + quoted(dir / "commands.txt")).c_str()) == 0,
          "PyTorch ran " + std::to_string(commands.size()) + " commands");
    for (const auto& run : checks) run();
    const double difference = relative_difference(params, theirs(dir / "adamw_out.safetensors", "params", {n}));
    check(difference < 1e-5, "AdamW matches torch.optim.AdamW over 10 steps (relative difference " + format(difference) + ")");

    fs::remove_all(dir);
    return failures == 0 ? 0 : 1;
}
