// Fuzz target: a network configuration as JSON text, as checkpoints store it, parsed and
// validated for both architectures; what validates is small enough to build, so it is built.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common.hpp"
#include "sda/io/json.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/vp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    return sda::fuzz::expect_sda_errors_only([&] {
        const nlohmann::json j = sda::io::parse_json(text, "fuzz");
        (void)sda::io::json_excerpt(j);
        try {
            const auto c = sda::nn::ScoreNetConfig::from_json(j);
            if (sda::element_count(c.event) * c.width + c.depth * c.width * c.width < (1u << 16))
                sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, c);
        } catch (const sda::error&) {
        }
        const auto u = sda::nn::UNetConfig::from_json(j);
        (void)(u == u);
    });
}
