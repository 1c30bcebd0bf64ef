// tests/fuzz/seeds.cpp: writes the fuzz targets' seed corpora with sda itself:
// `sda_fuzz_seeds DIR` fills DIR/safetensors, DIR/checkpoint, DIR/config (and DIR/hdf5
// with a few byte strings for the structured target).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: sda_fuzz_seeds DIR\n";
        return 2;
    }
    const fs::path root = argv[1];
    for (const char* target : {"safetensors", "checkpoint", "config", "hdf5"}) fs::create_directories(root / target);

    // safetensors: every dtype sda writes, metadata, an empty tensor
    sda::io::SafetensorsWriter writer;
    const std::vector<float> f = {1.f, -2.f, 3.f, 4.f, 5.f, 6.f};
    const std::vector<double> d = {0.5, 0.25};
    const std::vector<std::int64_t> i = {7};
    writer.add<float>("w", f, {2, 3});
    writer.add<double>("b", d, {2});
    writer.add<std::int64_t>("n", i, {1});
    writer.add<float>("empty", std::span<const float>(), {0, 4});
    writer.metadata("format", "pt");
    writer.write(root / "safetensors" / "tensors.safetensors");

    // checkpoints of the fuzz target's network: full (resumable), with EMA, and weights only
    sda::nn::ScoreNetConfig c;
    c.event = {3, 2};
    c.embedding = 4, c.width = 8, c.depth = 2, c.frequencies = 3, c.embedding_hidden = 6;
    sda::Generator gen(1);
    sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, c, gen);
    sda::train::CpuEngine<sda::nn::ScoreNet<sda::VPCosine>> engine(net, {});
    engine.step(sda::CpuBackend<float>::normal({4, 3, 2}, gen), gen, 1e-3, 0.0);
    engine.save(root / "checkpoint" / "full.safetensors", 0.0,
                sda::train::TrainingState{1, 1, gen.draws(), {{1, 0.5, 0.6, 1e-3, 1.0}}});
    engine.reset_ema();
    engine.save(root / "checkpoint" / "ema.safetensors", 0.99,
                sda::train::TrainingState{1, 1, gen.draws(), {{1, 0.5, 0.6, 1e-3, 1.0}}});
    sda::train::save_weights(root / "checkpoint" / "weights.safetensors", net);
    fs::copy_file(root / "checkpoint" / "full.safetensors", root / "safetensors" / "checkpoint.safetensors",
                  fs::copy_options::overwrite_existing);

    // configurations of both architectures
    std::ofstream(root / "config" / "mlp.json") << c.to_json().dump();
    sda::nn::UNetConfig u;
    u.event = {5, 2, 8, 8};
    std::ofstream(root / "config" / "unet.json") << u.to_json().dump();

    // structured HDF5 descriptions: a few byte patterns (see hdf5.cpp)
    for (int k = 0; k < 4; ++k) {
        std::ofstream out(root / "hdf5" / ("seed" + std::to_string(k)), std::ios::binary);
        for (int b = 0; b < 64; ++b) out.put(static_cast<char>((k * 37 + b * 11) & 0xff));
    }
    std::cout << "seed corpora written under " << root << "\n";
    return 0;
}
