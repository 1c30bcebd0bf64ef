// sda/train/checkpoint.hpp: checkpoints in the safetensors format, the one
// writer and reader of every training engine (CPU networks, libtorch modules).
//
// Tensor names (docs/interop.md): "<parameter>" for the weights to sample with,
// exactly the PyTorch state_dict keys of the paper's networks; when the run keeps
// an exponential moving average of the weights, those are the EMA weights and
// the optimiser's own weights are "training.<parameter>"; "optimizer.exp_avg.<parameter>"
// and "optimizer.exp_avg_sq.<parameter>" hold AdamW's moments. Metadata (keys
// "sda.*"): the architecture ("sda.config", with its "kind"), the noise schedule
// the network was trained with ("sda.schedule"), the optimiser and EMA settings
// with the step count, the epoch, the generator state and the loss history, so
// that an interrupted training resumes exactly. A weights-only file (no
// optimiser) is what PyTorch needs. Reading checks the architecture and the
// schedule when the file records them: a network is never silently loaded into
// another architecture or sampled with another schedule. Metadata is untrusted
// input: JSON of bounded depth, integers that are non-negative and whole (an
// epoch of "-1" is an error, not 2^64 - 1), a history that matches the epoch,
// finite weights and moments; anything else is an `sda::error` naming the file.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"
#include "sda/io/json.hpp"
#include "sda/io/safetensors.hpp"
#include "sda/nn/concepts.hpp"
#include "sda/nn/parameters.hpp"
#include "sda/schedule/concepts.hpp"
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

/// Everything a checkpoint holds, as flat arrays in the layout of `parameters` (names,
/// shapes, offsets). Only `config`, `schedule`, `parameters` and `weights` are needed for
/// a weights-only file.
template <class T>
struct CheckpointContent {
    nlohmann::json config;                                    ///< "sda.config"
    std::string schedule;                                     ///< "sda.schedule"
    const std::vector<nn::ParameterInfo>* parameters = nullptr;
    std::span<const T> weights;                               ///< what to sample with (the EMA when kept)
    std::span<const T> trained;                               ///< with EMA: the optimiser's weights; else empty
    std::span<const T> exp_avg, exp_avg_sq;                   ///< AdamW's moments; empty in a weights-only file
    AdamWOptions optimizer{};
    std::uint64_t steps = 0;
    double ema_decay = 0;                                     ///< 0: no EMA
    const TrainingState* state = nullptr;                     ///< null in a weights-only file
};

namespace detail {

inline nlohmann::json history_to_json(const std::vector<EpochStats>& history) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : history)
        out.push_back({{"epoch", e.epoch}, {"train", e.train_loss}, {"valid", e.valid_loss}, {"lr", e.lr}, {"seconds", e.seconds}});
    return out;
}

/// `j[key]` as a non-negative integer; `what` names the file and the metadata entry.
inline std::uint64_t unsigned_field(const nlohmann::json& j, const char* key, const std::string& what) {
    sda::detail::require(j.is_object() && j.contains(key) && io::is_whole_nonnegative(j[key]), what, ": \"", key,
                         "\" must be a non-negative integer, in ", io::json_excerpt(j));
    return j[key].get<std::uint64_t>();
}

/// `j[key]` as a finite number.
inline double number_field(const nlohmann::json& j, const char* key, const std::string& what) {
    sda::detail::require(j.is_object() && j.contains(key) && j[key].is_number() && std::isfinite(j[key].get<double>()),
                         what, ": \"", key, "\" must be a finite number, in ", io::json_excerpt(j));
    return j[key].get<double>();
}

/// The epochs 1, 2, ... in order, as written by `history_to_json`.
inline std::vector<EpochStats> history_from_json(const nlohmann::json& j, const std::string& what) {
    sda::detail::require(j.is_array(), what, ": the history is not an array");
    std::vector<EpochStats> out;
    for (const auto& e : j) {
        out.push_back({unsigned_field(e, "epoch", what), number_field(e, "train", what), number_field(e, "valid", what),
                       number_field(e, "lr", what), number_field(e, "seconds", what)});
        sda::detail::require(out.back().epoch == out.size(), what, ": the history's entry ", out.size(),
                             " is for epoch ", out.back().epoch);
    }
    return out;
}

/// A whole decimal number without sign, space or anything after it, that fits in 64 bits.
inline std::uint64_t parse_count(const std::string& text, const std::string& what) {
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    sda::detail::require(!text.empty() && error == std::errc{} && stop == end, what, ": \"", text.substr(0, 40),
                         "\" is not a non-negative whole number below 2^64");
    return value;
}

template <class T>
std::span<const T> slice(std::span<const T> values, const nn::ParameterInfo& info) {
    return values.subspan(info.offset, info.size);
}

}  // namespace detail

/// Writes `content` to `path` atomically.
template <class T>
void write_checkpoint(const std::filesystem::path& path, const CheckpointContent<T>& content) {
    sda::detail::require(content.parameters != nullptr, "sda::train::write_checkpoint: no parameter table");
    std::size_t total = 0;
    for (const auto& info : *content.parameters) total = std::max(total, info.offset + info.size);
    const auto check = [&](std::span<const T> values, bool optional, const char* what) {
        sda::detail::require((optional && values.empty()) || values.size() == total, "sda::train::write_checkpoint: ",
                             what, " holds ", values.size(), " values for ", total, " parameters");
    };
    check(content.weights, false, "weights");
    check(content.trained, true, "trained");
    check(content.exp_avg, true, "exp_avg");
    check(content.exp_avg_sq, content.exp_avg.empty(), "exp_avg_sq");
    io::SafetensorsWriter writer;
    for (const auto& info : *content.parameters) {
        writer.add<T>(info.name, detail::slice(content.weights, info), info.shape);
        if (!content.trained.empty()) writer.add<T>("training." + info.name, detail::slice(content.trained, info), info.shape);
        if (!content.exp_avg.empty()) {
            writer.add<T>("optimizer.exp_avg." + info.name, detail::slice(content.exp_avg, info), info.shape);
            writer.add<T>("optimizer.exp_avg_sq." + info.name, detail::slice(content.exp_avg_sq, info), info.shape);
        }
    }
    writer.metadata("format", "pt");
    writer.metadata("sda.config", content.config.dump());
    writer.metadata("sda.schedule", content.schedule);
    if (!content.exp_avg.empty()) {
        const AdamWOptions& o = content.optimizer;
        writer.metadata("sda.optimizer",
                        nlohmann::json{{"name", "AdamW"}, {"lr", o.lr}, {"betas", {o.beta1, o.beta2}}, {"eps", o.eps},
                                       {"weight_decay", o.weight_decay}, {"steps", content.steps},
                                       {"ema_decay", content.ema_decay}}
                            .dump());
    }
    if (content.state) {
        writer.metadata("sda.epoch", std::to_string(content.state->epoch));
        writer.metadata("sda.generator",
                        nlohmann::json{{"seed", content.state->seed}, {"draws", content.state->draws}}.dump());
        writer.metadata("sda.history", detail::history_to_json(content.state->history).dump());
    }
    writer.write(path);
}

/// A checkpoint (or any safetensors file with a network's tensor names) opened to be read
/// into a network of architecture `config` trained with `schedule`. Throws `sda::error`
/// when the file records another architecture or schedule.
class CheckpointReader {
public:
    CheckpointReader(const std::filesystem::path& path, const nlohmann::json& config, const std::string& schedule)
        : path_(path), file_(path) {
        if (file_.metadata().count("sda.config")) {
            const nlohmann::json stored = io::parse_json(file_.metadata("sda.config"), where("sda.config"));
            // files written before configurations recorded their kind (sda 0.1) compare without it:
            // the model being loaded names the architecture, so nothing is guessed
            nlohmann::json expected = config;
            if (stored.is_object() && !stored.contains("kind") && expected.is_object()) expected.erase("kind");
            sda::detail::require(stored == expected, "checkpoint ", path_.string(), " was written for the architecture ",
                                 io::json_excerpt(stored), ", not ", io::json_excerpt(config));
        }
        if (file_.metadata().count("sda.schedule")) {
            const std::string& stored = file_.metadata("sda.schedule");
            sda::detail::require(stored == schedule, "checkpoint ", path_.string(), " holds a network trained with the ",
                                 "noise schedule ", stored, ", not ", schedule);
        }
    }

    const io::SafetensorsFile& file() const { return file_; }
    const std::filesystem::path& path() const { return path_; }
    bool contains(const std::string& name) const { return file_.contains(name); }

    /// The values of tensor `name` of shape `shape`, stored as F32 or F64, as T; throws
    /// `sda::error` when one is NaN or infinite (weights and moments must be finite).
    template <class T>
    std::vector<T> read(const std::string& name, const Shape& shape) const {
        std::vector<T> values = read_as<T>(name, shape);
        for (std::size_t i = 0; i < values.size(); ++i)
            sda::detail::require(std::isfinite(values[i]), "checkpoint ", path_.string(), ": tensor ", name, " holds ",
                                 values[i], " at flat index ", i);
        return values;
    }
    /// The tensors "<prefix><parameter>" of every parameter, flat in the layout of `parameters`.
    template <class T>
    AlignedVector<T> read_all(const std::string& prefix, const std::vector<nn::ParameterInfo>& parameters) const {
        std::size_t total = 0;
        for (const auto& info : parameters) total = std::max(total, info.offset + info.size);
        AlignedVector<T> out(total);
        for (const auto& info : parameters) {
            const std::vector<T> values = read<T>(prefix + info.name, info.shape);
            std::copy(values.begin(), values.end(), out.begin() + static_cast<std::ptrdiff_t>(info.offset));
        }
        return out;
    }

    /// Whether the file holds an optimiser and a training state (a full checkpoint).
    bool resumable() const { return file_.metadata().count("sda.optimizer") && file_.metadata().count("sda.epoch"); }

    /// The optimiser's step count and EMA decay, and the training state; throws `sda::error` when malformed.
    struct Resume {
        std::uint64_t steps = 0;
        double ema_decay = 0;
        TrainingState state;
    };
    Resume resume() const {
        sda::detail::require(resumable(), "checkpoint ", path_.string(), " holds weights only, no training state");
        Resume out;
        const std::string optimizer = where("sda.optimizer");
        const auto o = io::parse_json(file_.metadata("sda.optimizer"), optimizer);
        out.steps = detail::unsigned_field(o, "steps", optimizer);
        out.ema_decay = o.contains("ema_decay") ? detail::number_field(o, "ema_decay", optimizer) : 0.0;
        sda::detail::require(out.ema_decay >= 0 && out.ema_decay < 1, optimizer, ": ema_decay ", out.ema_decay,
                             " is outside [0, 1)");
        out.state.epoch = detail::parse_count(file_.metadata("sda.epoch"), where("sda.epoch"));
        const std::string generator = where("sda.generator");
        const auto g = io::parse_json(file_.metadata("sda.generator"), generator);
        out.state.seed = detail::unsigned_field(g, "seed", generator);
        out.state.draws = detail::unsigned_field(g, "draws", generator);
        const std::string history = where("sda.history");
        out.state.history = detail::history_from_json(io::parse_json(file_.metadata("sda.history"), history), history);
        sda::detail::require(out.state.history.size() == out.state.epoch, where("sda.epoch"), ": epoch ",
                             out.state.epoch, " but the history holds ", out.state.history.size(), " epochs");
        return out;
    }

private:
    template <class T>
    std::vector<T> read_as(const std::string& name, const Shape& shape) const {
        const auto it = file_.tensors().find(name);
        if (it != file_.tensors().end() && it->second.dtype != io::detail::dtype_of<T>()) {
            if (it->second.dtype == "F64") return convert<T>(file_.read<double>(name, shape));
            if (it->second.dtype == "F32") return convert<T>(file_.read<float>(name, shape));
        }
        return file_.read<T>(name, shape);
    }

    std::string where(const char* key) const { return "checkpoint " + path_.string() + ": " + key; }

    template <class T, class U>
    static std::vector<T> convert(const std::vector<U>& values) {
        return {values.begin(), values.end()};
    }

    std::filesystem::path path_;
    io::SafetensorsFile file_;
};

/// Writes `model`'s weights, with its architecture and schedule, as a weights-only file (atomically).
template <nn::TrainableScoreModel M>
void save_weights(const std::filesystem::path& path, const M& model) {
    using T = typename M::scalar_type;
    const auto& params = model.parameters();
    CheckpointContent<T> content;
    content.config = model.config().to_json();
    content.schedule = schedule_description(model.schedule());
    content.parameters = &params.infos();
    content.weights = std::span<const T>(params.values());
    write_checkpoint(path, content);
}

/// Reads the weights to sample with (the EMA weights when the run kept them) of a checkpoint,
/// or of any safetensors file with the model's tensor names and shapes, F32 or F64, into
/// `model`. Checks the architecture and the schedule when the file records them.
template <nn::TrainableScoreModel M>
void load_weights(const std::filesystem::path& path, M& model) {
    using T = typename M::scalar_type;
    const CheckpointReader reader(path, model.config().to_json(), schedule_description(model.schedule()));
    model.parameters().values() = reader.read_all<T>("", model.parameters().infos());
}

}  // namespace sda::train
