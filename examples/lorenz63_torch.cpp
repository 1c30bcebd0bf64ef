// examples/lorenz63_torch.cpp: the Lorenz-63 posterior sampled through the
// libtorch adapter on a chosen device (CPU here, CUDA on a GPU machine), beside
// the same sampling code on sda's CPU network, from the same checkpoint.
//
// 1. Data and the K = 2 window prior are those of examples/lorenz63 (the demo):
//    DIR/data/*.h5 and DIR/window_K2.safetensors, reused when present. When the
//    checkpoint is absent it is trained, by sda's CPU trainer (`--train cpu`) or
//    on the torch device (`--train torch`, sda::torch_nn::fit): the same file
//    either way, so a model trained on a GPU samples on a laptop and back.
// 2. The "lo" scenario of the demo: the first coordinate of every 8th of 65
//    states of a held-out trajectory, noise std 0.05.
// 3. Posterior samples, SDA-gamma (3e-2), predictor-corrector with C
//    corrections, once with sda::TorchScoreModel on --device and once with the
//    CPU network: time per sample, RMSE of each posterior mean against the
//    truth, and how far the two posterior means are apart in units of the
//    Monte-Carlo error (they are independent runs of the same sampler).
//    `--sync-debug` turns torch's CUDA sync-debug mode to "error" around the
//    sampling on the device: any host round trip in it throws (bench/gpu_check.sh).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "sda/backend/torch.hpp"
#include "sda/nn/torch.hpp"
// a CUDA build of libtorch (Debian's CPU build ships c10/cuda headers but not this generated one)
#if __has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDAFunctions.h>
#define SDA_EXAMPLE_SYNC_DEBUG 1
#endif

#include "lorenz63_common.hpp"

#include "sda/guidance/guided.hpp"
#include "sda/metrics/ensemble.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/progress.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"
#include "sda/score/markov.hpp"
#include "sda/train/progress.hpp"

namespace {

namespace fs = std::filesystem;
using sda::Tensor;

constexpr std::size_t length = 65, order = 2;

struct Options {
    fs::path out = "out/lorenz63";
    std::string device = "cpu", train = "cpu";
    std::size_t epochs = 16, epoch_size = 65536, samples = 64, steps = 256, corrections = 1, trajectory = 0;
    double gamma = 3e-2;
    std::uint64_t seed = 42;
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    bool skip_cpu = false, quiet = false, sync_debug = false;
};

/// torch's CUDA sync-debug mode on "error" while it lives (`--sync-debug`): a synchronizing CUDA
/// call (a `.item()`, a blocking copy between host and device) throws instead of waiting.
class SyncDebugScope {
public:
    explicit SyncDebugScope(bool on) : on_(on) { set(on_); }
    ~SyncDebugScope() { set(false); }
    SyncDebugScope(const SyncDebugScope&) = delete;
    SyncDebugScope& operator=(const SyncDebugScope&) = delete;

private:
    void set([[maybe_unused]] bool error) const {
#ifdef SDA_EXAMPLE_SYNC_DEBUG
        if (on_)
            c10::cuda::warning_state().set_sync_debug_mode(error ? c10::cuda::SyncDebugMode::L_ERROR
                                                                 : c10::cuda::SyncDebugMode::L_DISABLED);
#endif
    }
    bool on_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Mean and unbiased standard deviation over samples of x [N, L, 3], and the RMSE of the mean against truth [L, 3].
struct Summary {
    Tensor<float> mean, spread;
    double rmse = 0;
};
Summary summarise(const Tensor<float>& x, const Tensor<float>& truth) {
    return {sda::metrics::ensemble_mean(x), sda::metrics::ensemble_std(x), sda::metrics::rmse(x, truth)};
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Lorenz-63 posterior through the libtorch adapter, beside the CPU network"};
    app.add_option("--out", o.out, "folder of the demo's data and checkpoints (shared with examples/lorenz63)");
    app.add_option("--device", o.device, "torch device: cpu, cuda, cuda:1, ...");
    app.add_option("--train", o.train, "who trains the prior when DIR/window_K2.safetensors is absent")
        ->check(CLI::IsMember({"cpu", "torch"}));
    app.add_option("--epochs", o.epochs, "training epochs (when training)")->check(CLI::PositiveNumber);
    app.add_option("--epoch-size", o.epoch_size, "windows per epoch")->check(CLI::PositiveNumber);
    app.add_option("--samples", o.samples, "posterior samples")->check(CLI::Range(2, 1 << 20));
    app.add_option("--steps", o.steps, "sampler steps")->check(CLI::PositiveNumber);
    app.add_option("--corrections", o.corrections, "Langevin corrections C per step");
    app.add_option("--gamma", o.gamma, "SDA gamma");
    app.add_option("--trajectory", o.trajectory, "which held-out test trajectory is observed");
    app.add_option("--seed", o.seed, "seed of everything");
    app.add_option("--threads", o.threads, "CPU threads of torch (and oneTBB); default all cores")->check(CLI::PositiveNumber);
    app.add_flag("--skip-cpu", o.skip_cpu, "sample with the adapter only");
    app.add_flag("--quiet", o.quiet, "no progress display");
    app.add_flag("--sync-debug", o.sync_debug,
                 "torch's CUDA sync-debug mode on \"error\" around the sampling on a cuda --device: "
                 "any host round trip throws");
    CLI11_PARSE(app, argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    // Debian's libtorch starts with one intra-op thread; sda's oneTBB uses every core
    torch::set_num_threads(o.threads);
    const tbb::global_control workers(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(o.threads));
    try {
        const torch::Device device(o.device);
        sda::detail::require(!device.is_cuda() || torch::cuda::is_available(), "--device ", o.device,
                             " asked for, but this libtorch sees no CUDA device");
#ifndef SDA_EXAMPLE_SYNC_DEBUG
        sda::detail::require(!o.sync_debug, "--sync-debug needs a CUDA build of libtorch");
#endif
        sda::detail::require(!o.sync_debug || device.is_cuda(), "--sync-debug needs a cuda --device, not ",
                             o.device);
        const sda::TorchBackend be{.device = device, .dtype = torch::kFloat32};

        // --- 1. data and the window prior ---------------------------------------------------------
        const lorenz63::Data data = lorenz63::load_or_generate(o.out, o.seed);
        sda::detail::require(o.trajectory < data.test.shape()[0], "--trajectory ", o.trajectory,
                             " is not among the ", data.test.shape()[0], " held-out trajectories");
        const fs::path checkpoint = o.out / ("window_K" + std::to_string(order) + ".safetensors");
        lorenz63::Net cpu_net = lorenz63::window_network(order, o.seed);
        if (o.train == "torch" && !fs::exists(checkpoint)) {
            // the CPU network's initial weights, trained on the torch device into the demo's checkpoint
            const fs::path initial = o.out / "window_K2.initial.safetensors";
            sda::train::save_weights(initial, cpu_net);
            const auto net = sda::torch_nn::load(initial, sda::VPCosine{});
            const sda::train::WindowDataset<float> train_set(data.train, 2 * order + 1), valid_set(data.valid, 2 * order + 1);
            sda::train::FitOptions fit;
            fit.epochs = o.epochs, fit.epoch_size = o.epoch_size, fit.batch_size = 64;
            fit.optimizer = {.lr = 1e-3, .weight_decay = 1e-3};
            fit.checkpoint = checkpoint;
            sda::Generator train_gen(o.seed + 20 + order);  // the CPU trainer's seed (lorenz63_common.hpp)
            const auto result = sda::torch_nn::fit(*net, sda::VPCosine{}, train_set, valid_set, fit, train_gen, be,
                                                   sda::train::TrainingProgress("window K=2 on " + device.str(), !o.quiet));
            std::printf("prior K=2 trained on %s: loss %.4f (train) %.4f (valid) after %zu epochs\n", device.str().c_str(),
                        result.history.back().train_loss, result.history.back().valid_loss, result.history.size());
            fs::remove(initial);
        }
        // reuses the checkpoint whoever wrote it (or trains it on the CPU)
        lorenz63::train_window_prior(cpu_net, order, data, o.out, o.epochs, o.epoch_size, o.seed, !o.quiet);

        // --- 2. observations: the demo's "lo" scenario --------------------------------------------------
        Tensor<float> truth = sda::empty_tensor<float>({1, length, 3});
        std::copy_n(data.test.data() + o.trajectory * data.test.shape()[1] * 3, length * 3, truth.data());
        std::vector<std::size_t> states;
        for (std::size_t i = 0; i < length; i += 8) states.push_back(i);
        const double std_y = 0.05;
        const sda::observe::Select select(states, {0});
        sda::Generator obs_gen(o.seed + 30);
        const Tensor<float> y = Tensor<float>(xt::view(
            select.apply(truth) + float(std_y) * sda::CpuBackend<float>::normal({1, states.size(), 1}, obs_gen), 0));
        const Tensor<float> truth_states = xt::view(truth, 0);

        const sda::PredictorCorrector sampler{.steps = o.steps, .corrector = {.corrections = o.corrections}};
        const sda::SDA guidance{.gamma = o.gamma};

        // --- 3a. the adapter on the device ----------------------------------------------------------------
        const sda::TorchScoreModel window(sda::torch_nn::load(checkpoint, sda::VPCosine{}), sda::VPCosine{},
                                          {2 * order + 1, 3}, be);
        const sda::MarkovComposedScore<decltype(window), order> prior(window, length);
        const sda::GaussianObservation obs(select, sda::to_torch(y, be), std_y * std_y, be);  // bound to the device by guide
        sda::Generator gen(o.seed + 40);
        auto t0 = std::chrono::steady_clock::now();
        torch::Tensor on_device;
        {
            sda::Progress progress("posterior on " + device.str(), !o.quiet);
            // built before the mode is on: binding the operator copies its index lists to the device
            const auto posterior = sda::guide(prior, obs, guidance);
            {
                const SyncDebugScope sync_debug(o.sync_debug);
                on_device = sda::sample(sampler, posterior, o.samples, gen, progress);
            }
            if (device.is_cuda()) torch::cuda::synchronize();
        }
        const double device_seconds = seconds_since(t0);
        const Summary adapter = summarise(sda::from_torch<float>(on_device), truth_states);
        std::printf("adapter on %s: %zu samples x %zu steps (C = %zu) in %.1f s, %.2f ms per sample; posterior mean RMSE %.4f\n",
                    device.str().c_str(), o.samples, o.steps, o.corrections, device_seconds,
                    device_seconds * 1e3 / double(o.samples), adapter.rmse);
        if (o.sync_debug) std::printf("sync-debug: the sampling on %s made no synchronizing CUDA call\n", device.str().c_str());

        // --- 3b. the CPU network, same checkpoint, same sampler ------------------------------------------------
        if (!o.skip_cpu) {
            const sda::MarkovComposedScore<lorenz63::Net, order> cpu_prior(cpu_net, length);
            const sda::GaussianObservation cpu_obs(select, y, std_y * std_y);
            sda::Generator cpu_gen(o.seed + 40);
            t0 = std::chrono::steady_clock::now();
            Tensor<float> on_cpu;
            {
                sda::Progress progress("posterior on sda's CPU network", !o.quiet);
                on_cpu = sda::sample(sampler, sda::guide(cpu_prior, cpu_obs, guidance), o.samples, cpu_gen, progress);
            }
            const double cpu_seconds = seconds_since(t0);
            const Summary cpu = summarise(on_cpu, truth_states);
            // two independent posterior means differ by ~ spread sqrt(2 / N) per entry
            const Tensor<float> error = xt::sqrt((xt::square(adapter.spread) + xt::square(cpu.spread)) / float(o.samples));
            const double z = std::sqrt(xt::mean(xt::square((adapter.mean - cpu.mean) / xt::maximum(error, 1e-12f)))());
            std::printf("sda CPU network: %.1f s, %.2f ms per sample; posterior mean RMSE %.4f\n", cpu_seconds,
                        cpu_seconds * 1e3 / double(o.samples), cpu.rmse);
            std::printf("adapter vs CPU: time ratio (CPU / adapter) %.2f; posterior means differ by %.2f Monte-Carlo "
                        "standard errors (rms over states; ~1 for two runs of one sampler)\n",
                        cpu_seconds / device_seconds, z);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lorenz63_torch: %s\n", e.what());
        return 1;
    }
}
