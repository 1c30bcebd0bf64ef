// A training run as its own process, for the tests that need several processes
// (tests/process/run.cmake): reproducibility from one process to the next, and a
// run killed with SIGKILL in the middle of an epoch that resumes exactly.
//
//   train_process train CHECKPOINT [--epochs E] [--threads N] [--kill-at-step S]
//       trains the Lorenz-63-sized window network (the demo's width, three blocks) for
//       E epochs (3) of 16 steps on fixed random windows with N threads (2), checkpointing after each epoch; with
//       --kill-at-step the process sends itself SIGKILL after optimiser step S
//   train_process compare A B
//       exits 0 when the two checkpoints hold the same tensors, bit for bit, and the
//       same metadata but for the wall-clock seconds of the history; else names the
//       first difference and exits 1
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>
#include <tbb/global_control.h>

#include "sda/backend/cpu.hpp"
#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/fit.hpp"

namespace {

int train(const std::filesystem::path& checkpoint, std::size_t epochs, std::size_t threads, std::size_t kill_at_step) {
    const tbb::global_control control(tbb::global_control::max_allowed_parallelism, threads);
    sda::nn::ScoreNetConfig config;
    config.event = {5, 3};
    config.depth = 3;  // width 256 as the demo: buffers of ~1 MB, past glibc's mmap threshold
    sda::Generator init(3);
    sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, config, init);
    sda::Generator data(4);
    const sda::train::WindowDataset<float> windows(sda::CpuBackend<float>::normal({16, 64, 3}, data), 5);
    sda::train::FitOptions options;
    options.epochs = epochs, options.epoch_size = 1024, options.batch_size = 64, options.valid_size = 256;
    options.clip = 1.0;
    options.checkpoint = checkpoint;
    struct Killer {
        std::size_t at, steps = 0;
        void on_batch(const sda::train::BatchStats&) {
            if (++steps == at) std::raise(SIGKILL);
        }
    } killer{kill_at_step};
    sda::Generator gen(5);
    const auto result = sda::train::fit(net, windows, windows, options, gen, killer);
    std::cout << "trained from epoch " << result.resumed_from << " to " << options.epochs << ", loss "
              << result.history.back().train_loss << "\n";
    return 0;
}

int compare(const std::filesystem::path& a_path, const std::filesystem::path& b_path) {
    const sda::io::SafetensorsFile a(a_path), b(b_path);
    if (a.tensors().size() != b.tensors().size()) {
        std::cout << "different tensor lists\n";
        return 1;
    }
    std::size_t differing = 0;
    for (const auto& [name, info] : a.tensors()) {
        if (!b.contains(name)) {
            std::cout << "tensor " << name << " missing in " << b_path << "\n";
            return 1;
        }
        const auto x = a.read<float>(name, info.shape), y = b.read<float>(name, info.shape);
        if (std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0) {
            if (differing++ == 0) std::cout << "tensor " << name << " differs\n";
        }
    }
    for (const auto& [key, value] : a.metadata()) {
        std::string left = value, right = b.metadata().count(key) ? b.metadata(key) : "(absent)";
        if (key == "sda.history") {  // wall-clock seconds are not results
            auto l = nlohmann::json::parse(left), r = nlohmann::json::parse(right);
            for (auto* h : {&l, &r})
                for (auto& e : *h) e.erase("seconds");
            left = l.dump(), right = r.dump();
        }
        if (left != right) {
            std::cout << "metadata " << key << " differs: " << left << " vs " << right << "\n";
            return 1;
        }
    }
    std::cout << differing << " of " << a.tensors().size() << " tensors differ\n";
    return differing == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "compare" && argc == 4) return compare(argv[2], argv[3]);
        if (mode == "train" && argc >= 3) {
            std::size_t epochs = 3, threads = 2, kill_at = 0;
            for (int i = 3; i + 1 < argc; i += 2) {
                const std::string flag = argv[i];
                if (flag == "--epochs") epochs = std::stoul(argv[i + 1]);
                else if (flag == "--threads") threads = std::stoul(argv[i + 1]);
                else if (flag == "--kill-at-step") kill_at = std::stoul(argv[i + 1]);
            }
            return train(argv[2], epochs, threads, kill_at);
        }
        std::cerr << "usage: train_process train CHECKPOINT [--epochs E] [--threads N] [--kill-at-step S] | compare A B\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "train_process: " << e.what() << "\n";
        return 1;
    }
}
