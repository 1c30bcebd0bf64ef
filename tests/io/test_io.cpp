// Tests of sda/io: atomic files and the progress display.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "sda/io/atomic_file.hpp"
#include "sda/io/progress.hpp"

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path scratch(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("sda_test_io_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

}  // namespace

TEST_CASE("atomic file: the target appears only on commit, whole") {
    const fs::path target = scratch("table.csv");
    {
        sda::AtomicFile file(target);
        file.stream() << "a,b\n1,2\n";
        CHECK_FALSE(fs::exists(target));  // nothing under the final name before commit
        file.commit();
    }
    CHECK(read(target) == "a,b\n1,2\n");
    {
        // an interrupted write leaves the previous file as it was, and no temporary behind
        sda::AtomicFile file(target);
        file.stream() << "partial";
    }
    CHECK(read(target) == "a,b\n1,2\n");
    for (const auto& entry : fs::directory_iterator(target.parent_path()))
        CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
    fs::remove_all(target.parent_path());
}

TEST_CASE("atomic file: an unwritable place is an sda::error") {
    CHECK_THROWS_AS(sda::AtomicFile("/proc/sda-cannot-write-here/x.csv"), sda::error);
}

TEST_CASE("progress: plain lines at each tenth when the output is not a terminal") {
    std::FILE* out = std::tmpfile();
    REQUIRE(out != nullptr);
    sda::Progress progress("sampling", true, out);
    for (std::size_t k = 1; k <= 256; ++k) progress.on_step(k, 256, 1.0 - k / 256.0);
    std::rewind(out);
    std::string text;
    for (int c; (c = std::fgetc(out)) != EOF;) text += static_cast<char>(c);
    std::fclose(out);
    std::size_t lines = 0;
    for (char c : text) lines += c == '\n';
    CHECK(lines == 10);
    CHECK(text.find("sampling  [####################] 100%  256/256  t = 0.000") != std::string::npos);

    std::FILE* silent = std::tmpfile();
    sda::Progress off("quiet", false, silent);
    off.on_step(1, 1, 0.0);
    CHECK(std::ftell(silent) == 0);
    std::fclose(silent);
}
