// Fuzz target: a safetensors file, opened and every tensor read as its dtype allows.
#include <cstddef>
#include <cstdint>

#include "common.hpp"
#include "sda/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& path = sda::fuzz::scratch_file(".safetensors");
    sda::fuzz::write_file(path, data, size);
    return sda::fuzz::expect_sda_errors_only([&] {
        const sda::io::SafetensorsFile file(path);
        for (const auto& [name, info] : file.tensors()) {
            if (info.dtype == "F32") (void)file.read<float>(name, info.shape);
            if (info.dtype == "F64") (void)file.read<double>(name, info.shape);
            if (info.dtype == "I64") (void)file.read<std::int64_t>(name, info.shape);
        }
        for (const auto& [key, value] : file.metadata()) (void)file.metadata(key);
    });
}
