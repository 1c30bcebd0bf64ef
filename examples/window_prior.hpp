// examples/window_prior.hpp: what the examples share to train a window prior: the window
// network of order K (a ResMLP for states of any size, or a 1-D U-Net for states on a circle)
// and its training with the paper's settings (AdamW lr 1e-3, weight decay 1e-3, batch 64,
// linear decay), checkpointed every epoch and resumed or reused from DIR/window_K<k>.safetensors.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/progress.hpp"
#include "sda/train/windows.hpp"

namespace examples {

using WindowNet = sda::nn::ScoreNet<sda::VPCosine>;
using UNetWindowNet = sda::nn::ScoreUNet<sda::VPCosine>;

/// A freshly initialised window network of order K over states of `state` entries
/// (ResMLP width `width`, depth 5, SiLU, embedding 32; seeded from `seed`).
inline WindowNet window_network(std::size_t k, std::size_t state, std::uint64_t seed, std::size_t width = 256) {
    sda::nn::ScoreNetConfig config;
    config.event = {2 * k + 1, state};
    config.width = width;
    sda::Generator init(seed + 10 + k);
    return WindowNet(sda::VPCosine{}, config, init);
}

/// A freshly initialised 1-D convolutional window network of order K over states that are
/// circles of `grid` points (ScoreUNet, circular padding: the 2K+1 states are its channels).
inline UNetWindowNet unet_window_network(std::size_t k, std::size_t grid, std::uint64_t seed,
                                         std::vector<std::size_t> channels) {
    sda::nn::UNetConfig config;
    config.event = {2 * k + 1, grid};
    config.spatial = 1;
    config.blocks.assign(channels.size(), 1);
    config.channels = std::move(channels);
    config.padding = sda::nn::Padding::circular;
    sda::Generator init(seed + 10 + k);
    return UNetWindowNet(sda::VPCosine{}, config, init);
}

/// `sda::train::fit` in this process: how `train_window_prior` trains unless told otherwise.
struct SerialFit {
    template <class... Args>
    sda::train::FitResult operator()(Args&&... args) const {
        return sda::train::fit(std::forward<Args>(args)...);
    }
};

/// Trains `net` on windows of 2K+1 states of `train` (validated on `valid`), both [N, L, D]
/// standardised; with `ema_decay > 0` `net` ends with the EMA of its weights. `fit_with` runs the
/// training with `sda::train::fit`'s arguments (examples/lorenz63_mpi.cpp: `sda::mpi::fit`).
template <class Net, class Fit = SerialFit>
sda::train::FitResult train_window_prior(Net& net, std::size_t k, const sda::Tensor<float>& train,
                                         const sda::Tensor<float>& valid, const std::filesystem::path& out,
                                         std::size_t epochs, std::size_t epoch_size, std::uint64_t seed, bool progress,
                                         double ema_decay = 0.0, Fit&& fit_with = {}) {
    const std::size_t window = 2 * k + 1;
    const sda::train::WindowDataset<float> train_set(train, window), valid_set(valid, window);
    sda::train::FitOptions fit;
    fit.epochs = epochs, fit.epoch_size = epoch_size, fit.batch_size = 64;
    fit.optimizer = {.lr = 1e-3, .weight_decay = 1e-3};
    fit.schedule = sda::train::LrSchedule::linear;
    fit.ema_decay = ema_decay;
    fit.checkpoint = out / ("window_K" + std::to_string(k) + ".safetensors");
    sda::Generator train_gen(seed + 20 + k);
    auto result = fit_with(net, train_set, valid_set, fit, train_gen,
                           sda::train::TrainingProgress("window K=" + std::to_string(k), progress));
    if (ema_decay > 0) sda::train::load_weights(fit.checkpoint, net);
    double seconds = 0;
    for (const auto& e : result.history) seconds += e.seconds;
    std::printf("prior K=%zu: %s, %zu parameters, loss %.4f (train) %.4f (valid) after %zu epochs, %.1f s per epoch%s\n",
                k, result.resumed_from >= epochs ? "reused checkpoint" : (result.resumed_from ? "resumed" : "trained"),
                net.parameters().size(), result.history.back().train_loss, result.history.back().valid_loss,
                result.history.size(), seconds / double(result.history.size()), ema_decay > 0 ? ", sampled with the EMA" : "");
    return result;
}

}  // namespace examples
