// sda/train/fit.hpp: `sda::train::fit`, the training loop of a score network
// on windows of trajectories, as the paper's loop: each epoch draws
// `epoch_size` windows (a fresh permutation), takes AdamW steps on batches of
// the denoising loss, evaluates the validation loss, and steps the
// learning-rate schedule.
//
// Progress goes to stderr (a bar on a terminal, plain lines in logs). With a
// checkpoint path, the state is saved atomically after every epoch, and a run
// that finds the file resumes from it exactly: same weights, moments, data
// order and noise as if never stopped. A callback with `on_epoch(stats)` sees
// every epoch; one with `on_batch(epoch, batch, loss)` every step.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/io/progress.hpp"
#include "sda/nn/concepts.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/loss.hpp"
#include "sda/train/lr_schedule.hpp"
#include "sda/train/windows.hpp"

namespace sda::train {

struct FitOptions {
    std::size_t epochs = 64;
    std::size_t epoch_size = 65536;  ///< windows per epoch (0: all of them)
    std::size_t batch_size = 64;
    std::size_t valid_size = 8192;   ///< validation windows, a fixed subset (0: all)
    AdamWOptions optimizer{.lr = 1e-3, .weight_decay = 1e-3};
    LrSchedule schedule = LrSchedule::linear;
    double clip = 0.0;                  ///< maximal gradient norm, 0 for none
    std::filesystem::path checkpoint;   ///< saved after every epoch, resumed from when present
    bool progress = true;
    std::string label = "training";

    void validate() const {
        sda::detail::require(epochs >= 1 && batch_size >= 1, "sda::train::fit: epochs and batch_size must be >= 1");
        sda::detail::check_non_negative(clip, "sda::train::fit: clip");
        optimizer.validate();
    }
};

struct FitResult {
    std::vector<EpochStats> history;
    std::size_t resumed_from = 0;  ///< epochs found in the checkpoint (0: started afresh)
};

struct NoTrainingCallback {};

namespace detail {

/// The fixed validation subset of a run with this seed: up to `wanted` (0: all) of `available` windows.
inline std::vector<std::size_t> validation_indices(std::size_t wanted, std::size_t available, std::uint64_t seed) {
    Generator subset(seed ^ 0x5da0000000000001ull);
    std::vector<std::size_t> indices = permutation(available, subset);
    indices.resize(wanted ? std::min(wanted, available) : available);
    return indices;
}

/// The validation noise of every epoch of a run with this seed: comparable losses across epochs.
inline Generator validation_noise(std::uint64_t seed) { return Generator(seed ^ 0x5da0000000000002ull); }

}  // namespace detail

template <nn::TrainableScoreModel M, class Callback = NoTrainingCallback>
FitResult fit(M& model, const WindowDataset<typename M::scalar_type>& train,
              const WindowDataset<typename M::scalar_type>& valid, const FitOptions& options, Generator& gen,
              Callback&& callback = {}) {
    using T = typename M::scalar_type;
    options.validate();
    sda::detail::require(train.event_shape() == Shape(model.event_shape()) && valid.event_shape() == train.event_shape(),
                    "sda::train::fit: windows of shape ", format_shape(train.event_shape()), " and ",
                    format_shape(valid.event_shape()), " for a model of events ", format_shape(model.event_shape()));
    sda::detail::require(train.size() >= 1 && valid.size() >= 1, "sda::train::fit: empty training or validation set");

    AdamW<T> optimizer(model.parameters().size(), options.optimizer);
    TrainingState state{0, gen.seed(), gen.draws(), {}};
    FitResult result;
    if (!options.checkpoint.empty() && std::filesystem::exists(options.checkpoint)) {
        load_checkpoint(options.checkpoint, model, optimizer, state);
        sda::detail::require(state.seed == gen.seed(), "sda::train::fit: the checkpoint ", options.checkpoint.string(),
                        " was trained with seed ", state.seed, ", this run has seed ", gen.seed());
        gen = Generator(state.seed, state.draws);
        result.resumed_from = state.epoch;
    }

    // a fixed validation subset and fixed validation noise: comparable losses across epochs
    const std::vector<std::size_t> valid_indices = detail::validation_indices(options.valid_size, valid.size(), gen.seed());
    const std::size_t valid_count = valid_indices.size();
    const std::size_t per_epoch = options.epoch_size ? std::min(options.epoch_size, train.size()) : train.size();
    const std::size_t batches = (per_epoch + options.batch_size - 1) / options.batch_size;
    std::vector<T> grad(model.parameters().size());

    for (std::size_t epoch = state.epoch; epoch < options.epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        const double lr = options.optimizer.lr * lr_factor(options.schedule, epoch, options.epochs);
        const std::vector<std::size_t> order = permutation(train.size(), gen);
        Progress progress(options.label + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                          options.progress);
        double train_sum = 0;
        for (std::size_t b = 0; b < batches; ++b) {
            const std::size_t begin = b * options.batch_size, end = std::min(per_epoch, begin + options.batch_size);
            const Tensor<T> x = train.batch(std::span<const std::size_t>(order.data() + begin, end - begin));
            std::fill(grad.begin(), grad.end(), T(0));
            const double loss = denoising_loss_gradient(model, x, gen, std::span<T>(grad));
            if (options.clip > 0) clip_grad_norm(std::span<T>(grad), options.clip);
            optimizer.step(std::span<T>(model.parameters().values()), std::span<const T>(grad), lr);
            train_sum += loss;
            if constexpr (requires { callback.on_batch(epoch + 1, b + 1, loss); }) callback.on_batch(epoch + 1, b + 1, loss);
            if (options.progress) {
                const double elapsed =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                char extra[64];
                std::snprintf(extra, sizeof extra, "loss %.5f, %.0f steps/s", train_sum / double(b + 1),
                              double(b + 1) / std::max(elapsed, 1e-9));
                progress.update(b + 1, batches, extra);
            }
        }
        double valid_sum = 0;
        Generator valid_noise = detail::validation_noise(gen.seed());
        for (std::size_t begin = 0; begin < valid_count; begin += 1024) {
            const std::size_t end = std::min(valid_count, begin + 1024);
            const Tensor<T> x = valid.batch(std::span<const std::size_t>(valid_indices.data() + begin, end - begin));
            valid_sum += denoising_loss(model, x, valid_noise) * double(end - begin);
        }
        const EpochStats stats{epoch + 1, train_sum / double(batches), valid_sum / double(valid_count), lr,
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
        state.history.push_back(stats);
        state.epoch = epoch + 1, state.draws = gen.draws();
        if (options.progress) {
            double spent = 0;  // this process's epochs only: a resumed run's history holds other runs' times
            for (std::size_t e = result.resumed_from; e < state.history.size(); ++e) spent += state.history[e].seconds;
            const double per_epoch_seconds = spent / double(state.history.size() - result.resumed_from);
            std::fprintf(stderr, "%s epoch %zu/%zu: train %.5f, valid %.5f, lr %.2e, %.1f s, ETA %.0f s\n",
                         options.label.c_str(), stats.epoch, options.epochs, stats.train_loss, stats.valid_loss, stats.lr,
                         stats.seconds, per_epoch_seconds * double(options.epochs - stats.epoch));
        }
        if (!options.checkpoint.empty()) save_checkpoint(options.checkpoint, model, &optimizer, &state);
        if constexpr (requires { callback.on_epoch(stats); }) callback.on_epoch(stats);
    }
    result.history = state.history;
    return result;
}

}  // namespace sda::train
