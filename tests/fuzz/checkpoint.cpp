// Fuzz target: a checkpoint resumed into a small ScoreNet (weights, AdamW moments, the
// architecture and schedule check, the JSON metadata of the training state).
#include <cstddef>
#include <cstdint>

#include "common.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"

namespace {

sda::nn::ScoreNetConfig config() {
    sda::nn::ScoreNetConfig c;
    c.event = {3, 2};
    c.embedding = 4, c.width = 8, c.depth = 2, c.frequencies = 3, c.embedding_hidden = 6;
    return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, config());
    const auto& path = sda::fuzz::scratch_file(".safetensors");
    sda::fuzz::write_file(path, data, size);
    return sda::fuzz::expect_sda_errors_only([&] {
        sda::train::CpuEngine<sda::nn::ScoreNet<sda::VPCosine>> engine(net, {});
        try {
            (void)engine.load(path, 0.0);
        } catch (const sda::error&) {
            sda::train::load_weights(path, net);  // the weights-only path
        }
    });
}
