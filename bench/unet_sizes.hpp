// bench/unet_sizes.hpp: the Kolmogorov U-Net sizes the benchmarks share: the
// example's CPU size and the paper's.
#pragma once

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "sda/nn/score_unet.hpp"

namespace bench {

/// The Kolmogorov window model: 5 states of 2 velocity components on an n x n grid, and the forcing as context.
inline sda::nn::UNetConfig kolmogorov(std::size_t n, std::vector<std::size_t> channels, std::vector<std::size_t> blocks) {
    sda::nn::UNetConfig config;
    config.event = {5, 2, n, n};
    config.channels = std::move(channels);
    config.blocks = std::move(blocks);
    config.embedding = 64;
    config.context.resize(n * n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) config.context[i * n + j] = std::sin(4 * 2 * M_PI * double(i) / double(n));
    return config;
}

/// examples/kolmogorov's prior: 32 x 32, channels 32, 64, 128, one block per level.
inline sda::nn::UNetConfig cpu_size() { return kolmogorov(32, {32, 64, 128}, {1, 1, 1}); }
/// The paper's: 64 x 64, channels 96, 192, 384, three blocks per level.
inline sda::nn::UNetConfig paper_size() { return kolmogorov(64, {96, 192, 384}, {3, 3, 3}); }

}  // namespace bench
