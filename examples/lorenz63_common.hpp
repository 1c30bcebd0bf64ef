// examples/lorenz63_common.hpp: what the two Lorenz-63 examples share: the
// dataset on disk (generated once, then reused) and the window prior of order
// K, trained with the paper's settings or resumed from its checkpoint. Both
// examples use the same seeds and file names, so they share data and models.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "window_prior.hpp"

#include "sda/io/hdf5.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/systems/lorenz63.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/progress.hpp"

namespace lorenz63 {

namespace fs = std::filesystem;
using Net = examples::WindowNet;

struct Data {
    sda::Tensor<float> train, valid, test;  // standardised [N, 1024, 3]
};

/// DIR/data/{train,valid,test}.h5: 1024 trajectories of 1024 states after 1024
/// burn-in transitions, split 80/10/10; generated from `seed` when absent.
inline Data load_or_generate(const fs::path& out, std::uint64_t seed) {
    const fs::path data = out / "data";
    if (!fs::exists(data / "test.h5")) {
        const auto t0 = std::chrono::steady_clock::now();
        sda::Generator gen(seed);
        const auto splits = sda::systems::lorenz63_dataset(1024, 1024, 1024, gen);
        sda::io::write_trajectories(data / "train.h5", splits.train);
        sda::io::write_trajectories(data / "valid.h5", splits.valid);
        sda::io::write_trajectories(data / "test.h5", splits.test);
        std::printf("data: generated 1024 trajectories of 1024 states in %.1f s -> %s\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), data.c_str());
    } else {
        std::printf("data: reusing %s\n", data.c_str());
    }
    return {sda::io::read_trajectories(data / "train.h5"), sda::io::read_trajectories(data / "valid.h5"),
            sda::io::read_trajectories(data / "test.h5")};
}

/// The window model of order K (2K+1 states; ResMLP width 256, depth 5, SiLU, embedding 32)
/// trained with the paper's settings (examples/window_prior.hpp), checkpointed to
/// DIR/window_K<k>.safetensors every epoch and resumed (or reused) from it; `fit_with` as
/// examples::train_window_prior's.
template <class Fit = examples::SerialFit>
sda::train::FitResult train_window_prior(Net& net, std::size_t k, const Data& data, const fs::path& out,
                                         std::size_t epochs, std::size_t epoch_size, std::uint64_t seed, bool progress,
                                         double ema_decay = 0.0, Fit&& fit_with = {}) {
    return examples::train_window_prior(net, k, data.train, data.valid, out, epochs, epoch_size, seed, progress, ema_decay,
                                        std::forward<Fit>(fit_with));
}

/// A freshly initialised window network of order K (seeded from `seed`).
inline Net window_network(std::size_t k, std::uint64_t seed) { return examples::window_network(k, 3, seed); }

}  // namespace lorenz63
