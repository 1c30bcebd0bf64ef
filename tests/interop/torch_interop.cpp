// Interop with PyTorch through tools/torch_interop.py and Debian's python3-torch:
// the same weights give the same eps in sda and in PyTorch, both ways, for both
// LayerNorm variances; sda's AdamW follows torch.optim.AdamW step for step.
// Exits 77 (CTest: skipped), saying so, when python3-torch is not installed.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/checkpoint.hpp"

namespace fs = std::filesystem;

namespace {

std::string script;
fs::path dir;
int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += ok ? 0 : 1;
}

int python(const std::string& arguments) {
    return std::system(("/usr/bin/python3 " + script + " " + arguments).c_str());
}

std::string format(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1e", value);
    return buffer;
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0, scale = 1e-30;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i]))), scale = std::max(scale, double(std::abs(b[i])));
    return worst / scale;
}

/// eps of `net` in sda and in PyTorch (from the weights file `weights`), for the same inputs.
template <class Net>
double compare_eps(const Net& net, const fs::path& weights) {
    sda::Generator gen(3);
    const std::size_t batch = 64;
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal(sda::batch_shape(batch, net.event_shape()), gen);
    std::vector<float> t(batch);
    std::vector<double> times(batch);
    for (std::size_t b = 0; b < batch; ++b) times[b] = double(b) / double(batch - 1), t[b] = float(times[b]);
    sda::io::SafetensorsWriter inputs;
    inputs.add<float>("x", std::span<const float>(x.data(), x.size()), sda::shape_of(x));
    inputs.add<float>("t", t, {batch});
    inputs.write(dir / "inputs.safetensors");
    if (python("eps " + weights.string() + " " + (dir / "inputs.safetensors").string() + " " + (dir / "eps.safetensors").string()) != 0)
        return INFINITY;
    const auto theirs = sda::io::SafetensorsFile(dir / "eps.safetensors").read<float>("eps", sda::shape_of(x));
    const sda::Tensor<float> ours = net.forward(x, times);
    return relative_difference(std::vector<float>(ours.begin(), ours.end()), theirs);
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

    for (bool unbiased : {true, false}) {
        sda::nn::ScoreNetConfig config;  // the paper's Lorenz-63 window model
        config.event = {5, 3};
        config.unbiased_layer_norm = unbiased;
        const std::string variance = unbiased ? "LayerNorm over N - 1" : "LayerNorm over N";

        // sda -> PyTorch
        sda::Generator gen(1);
        const sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, config, gen);
        sda::train::save_checkpoint(dir / "sda.safetensors", net);
        const double forward = compare_eps(net, dir / "sda.safetensors");
        check(forward < 1e-4, variance + ": sda weights give PyTorch's eps (relative difference " + format(forward) + ")");

        // PyTorch -> sda
        check(python("init " + (dir / "torch.safetensors").string() + " --like " + (dir / "sda.safetensors").string()) == 0,
              "PyTorch writes a network");
        sda::nn::ScoreNet<sda::VPCosine> loaded(sda::VPCosine{}, config);
        sda::train::load_weights(dir / "torch.safetensors", loaded);
        const double backward = compare_eps(loaded, dir / "torch.safetensors");
        check(backward < 1e-4, variance + ": PyTorch weights give sda's eps (relative difference " + format(backward) + ")");
    }

    // AdamW: ten steps on the same gradients at changing learning rates
    {
        const std::size_t n = 1000, steps = 10;
        sda::Generator gen(2);
        std::vector<float> params(n), grads(n * steps), lrs(steps);
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
        const bool ran = python("adamw " + (dir / "adamw_in.safetensors").string() + " " + (dir / "adamw_out.safetensors").string()) == 0;
        const double difference =
            ran ? relative_difference(params, sda::io::SafetensorsFile(dir / "adamw_out.safetensors").read<float>("params", {n})) : INFINITY;
        check(difference < 1e-5, "AdamW matches torch.optim.AdamW over 10 steps (relative difference " + format(difference) + ")");
    }
    fs::remove_all(dir);
    return failures == 0 ? 0 : 1;
}
