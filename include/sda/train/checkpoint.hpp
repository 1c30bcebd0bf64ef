// sda/train/checkpoint.hpp: checkpoints in the safetensors format: the
// network's weights under their PyTorch names, the optimiser's moments, and
// in the metadata the architecture, the epoch, the generator state and the
// loss history, so that an interrupted training resumes exactly.
//
// Tensor names (docs/interop.md): "<parameter>" for weights, exactly the
// PyTorch state_dict keys of the paper's ScoreNet; "optimizer.exp_avg.<parameter>"
// and "optimizer.exp_avg_sq.<parameter>" for AdamW's moments. Metadata keys
// start with "sda.". A weights-only file (no optimiser) is what PyTorch needs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/io/safetensors.hpp"
#include "sda/nn/concepts.hpp"
#include "sda/train/adamw.hpp"

namespace sda::train {

struct EpochStats {
    std::size_t epoch = 0;  ///< from 1
    double train_loss = 0, valid_loss = 0, lr = 0, seconds = 0;
};

/// Where a training run stands: what a resumed run needs beyond weights and moments.
struct TrainingState {
    std::size_t epoch = 0;  ///< epochs completed
    std::uint64_t seed = 0, draws = 0;
    std::vector<EpochStats> history;
};

namespace detail {

inline nlohmann::json history_to_json(const std::vector<EpochStats>& history) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : history)
        out.push_back({{"epoch", e.epoch}, {"train", e.train_loss}, {"valid", e.valid_loss}, {"lr", e.lr}, {"seconds", e.seconds}});
    return out;
}

inline std::vector<EpochStats> history_from_json(const nlohmann::json& j) {
    std::vector<EpochStats> out;
    for (const auto& e : j)
        out.push_back({e.at("epoch").get<std::size_t>(), e.at("train").get<double>(), e.at("valid").get<double>(),
                       e.at("lr").get<double>(), e.at("seconds").get<double>()});
    return out;
}

/// The optimiser's settings and step count, as the "sda.optimizer" metadata.
inline std::string optimizer_metadata(const AdamWOptions& o, std::uint64_t steps) {
    return nlohmann::json{{"name", "AdamW"}, {"lr", o.lr}, {"betas", {o.beta1, o.beta2}}, {"eps", o.eps},
                          {"weight_decay", o.weight_decay}, {"steps", steps}}
        .dump();
}

/// Epoch, generator and history as the "sda.epoch", "sda.generator" and "sda.history" metadata.
inline void write_training_state(io::SafetensorsWriter& writer, const TrainingState& state) {
    writer.metadata("sda.epoch", std::to_string(state.epoch));
    writer.metadata("sda.generator", nlohmann::json{{"seed", state.seed}, {"draws", state.draws}}.dump());
    writer.metadata("sda.history", history_to_json(state.history).dump());
}

/// Reads the optimiser's step count and the training state back; throws `sda::error` when malformed.
inline std::uint64_t read_training_state(const io::SafetensorsFile& file, const std::filesystem::path& path,
                                         TrainingState& state) {
    try {
        const auto o = nlohmann::json::parse(file.metadata("sda.optimizer"));
        const auto steps = o.at("steps").get<std::uint64_t>();
        state.epoch = std::stoull(file.metadata("sda.epoch"));
        const auto g = nlohmann::json::parse(file.metadata("sda.generator"));
        state.seed = g.at("seed").get<std::uint64_t>(), state.draws = g.at("draws").get<std::uint64_t>();
        state.history = history_from_json(nlohmann::json::parse(file.metadata("sda.history")));
        return steps;
    } catch (const nlohmann::json::exception& e) {
        sda::detail::fail("checkpoint ", path.string(), ": malformed training state: ", e.what());
    } catch (const std::logic_error& e) {
        sda::detail::fail("checkpoint ", path.string(), ": malformed epoch: ", e.what());
    }
}

}  // namespace detail

/// Writes `model`'s weights, and when given the optimiser and the training state, atomically.
template <nn::TrainableScoreModel M>
void save_checkpoint(const std::filesystem::path& path, const M& model,
                     const AdamW<typename M::scalar_type>* optimizer = nullptr, const TrainingState* state = nullptr) {
    using T = typename M::scalar_type;
    const auto& params = model.parameters();
    io::SafetensorsWriter writer;
    for (const auto& info : params.infos()) {
        writer.add<T>(info.name, std::span<const T>(params.data() + info.offset, info.size), info.shape);
        if (optimizer) {
            writer.add<T>("optimizer.exp_avg." + info.name,
                          std::span<const T>(optimizer->exp_avg().data() + info.offset, info.size), info.shape);
            writer.add<T>("optimizer.exp_avg_sq." + info.name,
                          std::span<const T>(optimizer->exp_avg_sq().data() + info.offset, info.size), info.shape);
        }
    }
    writer.metadata("format", "pt");
    writer.metadata("sda.config", model.config().to_json().dump());
    if (optimizer) writer.metadata("sda.optimizer", detail::optimizer_metadata(optimizer->options(), optimizer->steps()));
    if (state) detail::write_training_state(writer, *state);
    writer.write(path);
}

/// Reads the weights of a checkpoint (or of any safetensors file with the
/// model's tensor names and shapes) into `model`. Checks the architecture when
/// the file records one.
template <nn::TrainableScoreModel M>
void load_weights(const std::filesystem::path& path, M& model) {
    using T = typename M::scalar_type;
    const io::SafetensorsFile file(path);
    if (file.metadata().count("sda.config")) {
        nlohmann::json stored;
        try {
            stored = nlohmann::json::parse(file.metadata("sda.config"));
        } catch (const nlohmann::json::exception& e) {
            sda::detail::fail("checkpoint ", path.string(), ": sda.config is not valid JSON: ", e.what());
        }
        sda::detail::require(stored == model.config().to_json(), "checkpoint ", path.string(), " was written for the architecture ",
                             stored.dump(), ", not ", model.config().to_json().dump());
    }
    auto& params = model.parameters();
    for (const auto& info : params.infos()) {
        const std::vector<T> values = file.read<T>(info.name, info.shape);
        std::copy(values.begin(), values.end(), params.data() + info.offset);
    }
}

/// Reads everything `save_checkpoint` wrote: weights, optimiser moments and training state.
template <nn::TrainableScoreModel M>
void load_checkpoint(const std::filesystem::path& path, M& model, AdamW<typename M::scalar_type>& optimizer,
                     TrainingState& state) {
    using T = typename M::scalar_type;
    load_weights(path, model);
    const io::SafetensorsFile file(path);
    for (const auto& info : model.parameters().infos()) {
        const auto m = file.read<T>("optimizer.exp_avg." + info.name, info.shape);
        const auto v = file.read<T>("optimizer.exp_avg_sq." + info.name, info.shape);
        std::copy(m.begin(), m.end(), optimizer.exp_avg().begin() + static_cast<std::ptrdiff_t>(info.offset));
        std::copy(v.begin(), v.end(), optimizer.exp_avg_sq().begin() + static_cast<std::ptrdiff_t>(info.offset));
    }
    optimizer.set_steps(detail::read_training_state(file, path, state));
}

}  // namespace sda::train
