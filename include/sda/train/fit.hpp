// sda/train/fit.hpp: `sda::train::fit`, the training loop of a score network on
// windows of trajectories, as the paper's loop: each epoch draws `epoch_size`
// windows (a fresh permutation), takes AdamW steps on batches of the denoising
// loss, evaluates the validation loss on a fixed subset with fixed noise, and
// steps the learning-rate schedule. Optionally it keeps an exponential moving
// average (EMA) of the weights, the usual practice for diffusion priors.
//
// One loop for every engine: `CpuEngine` (sda's CPU networks with their
// hand-written backward) here, `torch_nn::Engine` (libtorch modules on a device)
// in sda/nn/torch.hpp. With a checkpoint path, the state is saved atomically
// after every epoch, and a run that finds the file resumes from it exactly:
// same weights, moments, EMA, data order and noise as if never stopped.
//
// The loop prints nothing. A callback with `on_batch(const BatchStats&)` sees
// every step and one with `on_epoch(const EpochStats&)` every epoch (detected,
// as sampling's `on_step`); `train::TrainingProgress` (sda/train/progress.hpp)
// draws a progress bar from them. `BatchStats::loss()` reads the running loss
// only when called: on a device, the loop never waits for it otherwise.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"
#include "sda/core/random.hpp"
#include "sda/nn/concepts.hpp"
#include "sda/schedule/concepts.hpp"
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
    /// EMA of the weights after every step, ema = decay ema + (1 - decay) w, from the initial
    /// weights; 0 keeps none. Checkpoints then store the EMA as the weights to sample with.
    double ema_decay = 0.0;
    std::filesystem::path checkpoint;   ///< saved after every epoch, resumed from when present

    void validate() const {
        sda::detail::require(epochs >= 1 && batch_size >= 1, "sda::train::fit: epochs and batch_size must be >= 1");
        sda::detail::check_non_negative(clip, "sda::train::fit: clip");
        sda::detail::require(ema_decay >= 0.0 && ema_decay < 1.0, "sda::train::fit: ema_decay must lie in [0, 1), got ",
                             ema_decay);
        optimizer.validate();
    }
};

struct FitResult {
    std::vector<EpochStats> history;
    std::size_t resumed_from = 0;  ///< epochs found in the checkpoint (0: started afresh)
};

/// What `on_batch` sees after every optimiser step.
struct BatchStats {
    std::size_t epoch = 0, epochs = 0;    ///< from 1
    std::size_t batch = 0, batches = 0;   ///< from 1, within the epoch
    double seconds = 0;                   ///< since the epoch began
    std::function<double()> mean_loss;    ///< see loss()

    /// The epoch's mean training loss so far. On a device this waits for the device: call it
    /// only when the value is needed.
    double loss() const { return mean_loss(); }
};

struct NoTrainingCallback {};

/// What `fit` needs of an engine: a network, its optimiser and its EMA, on some device.
/// - `E::scalar_type`: the element type of the training windows;
/// - `e.event_shape()`: the network's event;
/// - `e.step(x, gen, lr, clip)`: one optimiser step on the denoising loss of the batch x
///   (t and noise drawn from gen as `train::noise_batch`), gradients clipped to norm `clip`
///   when > 0; the loss is added to the epoch's sum without waiting for a device;
/// - `e.begin_epoch()`, `e.loss_sum()`: reset and read (waiting) the sum of the epoch's losses;
/// - `e.validation_loss(x, noise)`: the mean denoising loss of x, without training;
/// - `e.reset_ema()`: EMA := weights; `e.update_ema(decay)`: ema := decay ema + (1 - decay) w;
/// - `e.save(path, ema_decay, state)`: a checkpoint through `train::write_checkpoint`;
///   `e.load(path, ema_decay)`: reads one back through `train::CheckpointReader`, returning
///   what it held (weights, moments and step count, EMA when ema_decay > 0);
/// - `e.finish()`: after the last epoch (e.g. evaluation mode).
template <class E>
concept TrainingEngine = requires { typename E::scalar_type; } &&
    requires(E& e, const E& ce, const Tensor<typename E::scalar_type>& x, Generator& gen, double a,
             const std::filesystem::path& path, const TrainingState& state) {
        { ce.event_shape() } -> std::convertible_to<Shape>;
        e.begin_epoch();
        e.step(x, gen, a, a);
        { e.loss_sum() } -> std::convertible_to<double>;
        { e.validation_loss(x, gen) } -> std::convertible_to<double>;
        e.reset_ema();
        e.update_ema(a);
        e.save(path, a, state);
        { e.load(path, a) } -> std::same_as<CheckpointReader::Resume>;
        e.finish();
    };

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

/// How a `CpuEngine` gets a batch's loss and its gradient: the whole batch in this process
/// (`sda::mpi::DataParallelGradient` shares it among the ranks of an MPI job).
struct SerialGradient {
    template <nn::TrainableScoreModel M>
    double operator()(const M& model, const Tensor<typename M::scalar_type>& x, Generator& gen,
                      std::span<typename M::scalar_type> grad) const {
        return denoising_loss_gradient(model, x, gen, grad);
    }
};

/// The CPU engine: a `TrainableScoreModel` (sda's networks, or any model with exact
/// parameter gradients), sda's AdamW, and an EMA in the parameters' layout; `Gradient`
/// computes each batch's loss and gradient (`SerialGradient`'s contract).
template <nn::TrainableScoreModel M, class Gradient = SerialGradient>
class CpuEngine {
public:
    using scalar_type = typename M::scalar_type;

    CpuEngine(M& model, const AdamWOptions& optimizer, Gradient gradient = {})
        : model_(&model), optimizer_(model.parameters().size(), optimizer), grad_(model.parameters().size()),
          gradient_(std::move(gradient)) {}

    Shape event_shape() const { return Shape(model_->event_shape()); }

    void begin_epoch() { loss_sum_ = 0; }
    void step(const Tensor<scalar_type>& x, Generator& gen, double lr, double clip) {
        std::fill(grad_.begin(), grad_.end(), scalar_type(0));
        const double loss = gradient_(*model_, x, gen, std::span<scalar_type>(grad_));
        // a non-finite loss or gradient would make every weight NaN: stop before the update
        const double norm = clip > 0 ? clip_grad_norm(std::span<scalar_type>(grad_), clip)
                                     : gradient_norm(std::span<const scalar_type>(grad_));
        sda::detail::require(std::isfinite(loss) && std::isfinite(norm), "sda::train::fit: step ",
                             optimizer_.steps() + 1, " gave a non-finite loss (", loss, ") or gradient norm (", norm,
                             "); the weights are left as they were (lower the learning rate, or clip)");
        loss_sum_ += loss;
        optimizer_.step(std::span<scalar_type>(model_->parameters().values()), std::span<const scalar_type>(grad_), lr);
    }
    double loss_sum() const { return loss_sum_; }
    double validation_loss(const Tensor<scalar_type>& x, Generator& noise) const {
        return denoising_loss(*model_, x, noise);
    }

    void reset_ema() { ema_ = model_->parameters().values(); }
    void update_ema(double decay) {
        using Array = Eigen::Array<scalar_type, Eigen::Dynamic, 1>;
        const auto& w = model_->parameters().values();
        Eigen::Map<Array> ema(ema_.data(), static_cast<Eigen::Index>(ema_.size()));
        ema = static_cast<scalar_type>(decay) * ema +
              static_cast<scalar_type>(1.0 - decay) * Eigen::Map<const Array>(w.data(), static_cast<Eigen::Index>(w.size()));
    }
    /// The EMA weights (empty before `reset_ema`).
    const AlignedVector<scalar_type>& ema() const { return ema_; }

    void save(const std::filesystem::path& path, double ema_decay, const TrainingState& state) const {
        const auto& params = model_->parameters();
        CheckpointContent<scalar_type> content;
        content.config = model_->config().to_json();
        content.schedule = schedule_description(model_->schedule());
        content.parameters = &params.infos();
        content.weights = ema_decay > 0 ? std::span<const scalar_type>(ema_) : std::span<const scalar_type>(params.values());
        if (ema_decay > 0) content.trained = std::span<const scalar_type>(params.values());
        content.exp_avg = optimizer_.exp_avg(), content.exp_avg_sq = optimizer_.exp_avg_sq();
        content.optimizer = optimizer_.options(), content.steps = optimizer_.steps();
        content.ema_decay = ema_decay, content.state = &state;
        write_checkpoint(path, content);
    }
    CheckpointReader::Resume load(const std::filesystem::path& path, double ema_decay) {
        const CheckpointReader reader(path, model_->config().to_json(), schedule_description(model_->schedule()));
        CheckpointReader::Resume resume = reader.resume();
        const auto& infos = model_->parameters().infos();
        model_->parameters().values() = reader.read_all<scalar_type>(resume.ema_decay > 0 ? "training." : "", infos);
        if (ema_decay > 0 && resume.ema_decay > 0) ema_ = reader.read_all<scalar_type>("", infos);
        optimizer_.exp_avg() = reader.read_all<scalar_type>("optimizer.exp_avg.", infos);
        optimizer_.exp_avg_sq() = reader.read_all<scalar_type>("optimizer.exp_avg_sq.", infos);
        optimizer_.set_steps(resume.steps);
        return resume;
    }
    void finish() {}

private:
    M* model_;
    AdamW<scalar_type> optimizer_;
    AlignedVector<scalar_type> grad_, ema_;
    Gradient gradient_;
    double loss_sum_ = 0;
};

/// Trains with `engine` on windows `train`, validating on `valid`.
template <TrainingEngine E, class Callback = NoTrainingCallback>
FitResult fit(E& engine, const WindowDataset<typename E::scalar_type>& train,
              const WindowDataset<typename E::scalar_type>& valid, const FitOptions& options, Generator& gen,
              Callback&& callback = {}) {
    using T = typename E::scalar_type;
    options.validate();
    const Shape event = engine.event_shape();
    sda::detail::require(train.event_shape() == event && valid.event_shape() == event, "sda::train::fit: windows of shape ",
                         format_shape(train.event_shape()), " and ", format_shape(valid.event_shape()),
                         " for a model of events ", format_shape(event));
    sda::detail::require(train.size() >= 1 && valid.size() >= 1, "sda::train::fit: empty training or validation set");

    TrainingState state{0, gen.seed(), gen.draws(), {}};
    FitResult result;
    if (!options.checkpoint.empty() && std::filesystem::exists(options.checkpoint)) {
        const CheckpointReader::Resume resume = engine.load(options.checkpoint, options.ema_decay);
        sda::detail::require(resume.state.seed == gen.seed(), "sda::train::fit: the checkpoint ",
                             options.checkpoint.string(), " was trained with seed ", resume.state.seed,
                             ", this run has seed ", gen.seed());
        sda::detail::require(resume.ema_decay == options.ema_decay, "sda::train::fit: the checkpoint ",
                             options.checkpoint.string(), " was trained with EMA decay ", resume.ema_decay,
                             ", this run asks for ", options.ema_decay);
        state = resume.state;
        gen = Generator(state.seed, state.draws);
        result.resumed_from = state.epoch;
    } else if (options.ema_decay > 0) {
        engine.reset_ema();
    }

    // a fixed validation subset and fixed validation noise: comparable losses across epochs
    const std::vector<std::size_t> valid_indices = detail::validation_indices(options.valid_size, valid.size(), gen.seed());
    const std::size_t valid_count = valid_indices.size();
    const std::size_t per_epoch = options.epoch_size ? std::min(options.epoch_size, train.size()) : train.size();
    const std::size_t batches = (per_epoch + options.batch_size - 1) / options.batch_size;

    for (std::size_t epoch = state.epoch; epoch < options.epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
        const double lr = options.optimizer.lr * lr_factor(options.schedule, epoch, options.epochs);
        const std::vector<std::size_t> order = permutation(train.size(), gen);
        engine.begin_epoch();
        for (std::size_t b = 0; b < batches; ++b) {
            const std::size_t begin = b * options.batch_size, end = std::min(per_epoch, begin + options.batch_size);
            const Tensor<T> x = train.batch(std::span<const std::size_t>(order.data() + begin, end - begin));
            engine.step(x, gen, lr, options.clip);
            if (options.ema_decay > 0) engine.update_ema(options.ema_decay);
            if constexpr (requires { callback.on_batch(std::declval<const BatchStats&>()); }) {
                const BatchStats stats{epoch + 1, options.epochs, b + 1, batches, seconds(),
                                       [&engine, b] { return engine.loss_sum() / double(b + 1); }};
                callback.on_batch(stats);
            }
        }
        double valid_sum = 0;
        Generator valid_noise = detail::validation_noise(gen.seed());
        for (std::size_t begin = 0; begin < valid_count; begin += 1024) {
            const std::size_t end = std::min(valid_count, begin + 1024);
            const Tensor<T> x = valid.batch(std::span<const std::size_t>(valid_indices.data() + begin, end - begin));
            valid_sum += engine.validation_loss(x, valid_noise) * double(end - begin);
        }
        const EpochStats stats{epoch + 1, engine.loss_sum() / double(batches), valid_sum / double(valid_count), lr, seconds()};
        // engines that do not check every step (on a device that would wait for it) are caught
        // here, before the checkpoint: the file on disk stays the last finite epoch
        sda::detail::require(std::isfinite(stats.train_loss) && std::isfinite(stats.valid_loss), "sda::train::fit: epoch ",
                             epoch + 1, " ended with a non-finite loss (training ", stats.train_loss, ", validation ",
                             stats.valid_loss, "); the checkpoint keeps epoch ", epoch);
        state.history.push_back(stats);
        state.epoch = epoch + 1, state.draws = gen.draws();
        if (!options.checkpoint.empty()) engine.save(options.checkpoint, options.ema_decay, state);
        if constexpr (requires { callback.on_epoch(stats); }) callback.on_epoch(stats);
    }
    engine.finish();
    result.history = state.history;
    return result;
}

/// Trains a CPU network: `fit` with a `CpuEngine` on `model`.
template <nn::TrainableScoreModel M, class Callback = NoTrainingCallback>
FitResult fit(M& model, const WindowDataset<typename M::scalar_type>& train,
              const WindowDataset<typename M::scalar_type>& valid, const FitOptions& options, Generator& gen,
              Callback&& callback = {}) {
    CpuEngine<M> engine(model, options.optimizer);
    return fit(engine, train, valid, options, gen, std::forward<Callback>(callback));
}

}  // namespace sda::train
