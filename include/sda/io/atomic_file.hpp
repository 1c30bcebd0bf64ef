// sda/io/atomic_file.hpp: `AtomicFile`, a file that appears complete or not at all.
//
// Everything sda writes (tables, figures' data, later checkpoints) goes to a
// temporary file beside the target and is renamed over it on `commit()`; rename
// is atomic on POSIX file systems, so an interrupted run never leaves a
// half-written file under the final name. Without `commit()`, the destructor
// removes the temporary file.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>

#include <unistd.h>

#include "sda/core/error.hpp"

namespace sda {

class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path target, std::ios::openmode mode = std::ios::out)
        : target_(std::move(target)),
          temporary_(target_.string() + ".tmp." + std::to_string(::getpid())) {
        if (target_.has_parent_path()) {
            std::error_code ignored;
            std::filesystem::create_directories(target_.parent_path(), ignored);
        }
        stream_.open(temporary_, mode | std::ios::out | std::ios::trunc);
        sda::detail::require(stream_.is_open(), "sda::AtomicFile: cannot open ", temporary_.string(), " for writing");
    }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile() {
        if (!committed_) {
            stream_.close();
            std::error_code ignored;
            std::filesystem::remove(temporary_, ignored);
        }
    }

    std::ofstream& stream() { return stream_; }

    /// Flushes, closes and renames the temporary file over the target.
    void commit() {
        stream_.flush();
        sda::detail::require(stream_.good(), "sda::AtomicFile: writing ", temporary_.string(), " failed");
        stream_.close();
        std::error_code error;
        std::filesystem::rename(temporary_, target_, error);
        sda::detail::require(!error, "sda::AtomicFile: cannot rename ", temporary_.string(), " to ", target_.string(), ": ",
                        error.message());
        committed_ = true;
    }

    const std::filesystem::path& path() const { return target_; }

private:
    std::filesystem::path target_, temporary_;
    std::ofstream stream_;
    bool committed_ = false;
};

}  // namespace sda
