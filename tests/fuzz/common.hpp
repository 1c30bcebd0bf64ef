// tests/fuzz/common.hpp: what the libFuzzer targets share. Each target feeds its input to
// one of sda's loaders; the loader must either succeed or throw `sda::error`. Anything
// else (another exception, a crash, a leak, undefined behaviour, an allocation beyond
// libFuzzer's -rss_limit_mb / -malloc_limit_mb) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <system_error>

#include <unistd.h>

#include "sda/core/error.hpp"

namespace sda::fuzz {

/// A file of this process's own, rewritten for every input and removed when the run ends.
inline const std::filesystem::path& scratch_file(const char* suffix) {
    static const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("sda_fuzz_" + std::to_string(::getpid()) + suffix);
    // registered once `path` is built, so that it runs before `path` is destroyed
    [[maybe_unused]] static const bool removed_at_exit = std::atexit([] {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
    }) == 0;
    return path;
}

inline void write_file(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

/// Runs `body`; `sda::error` is the expected way to refuse an input, anything else aborts.
template <class Body>
int expect_sda_errors_only(Body&& body) {
    try {
        body();
    } catch (const sda::error&) {
    } catch (const std::exception& e) {
        std::cerr << "a foreign exception escaped: " << e.what() << "\n";
        std::abort();
    } catch (...) {
        std::cerr << "a non-std exception escaped\n";
        std::abort();
    }
    return 0;
}

}  // namespace sda::fuzz
