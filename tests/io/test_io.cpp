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

// --- safetensors -----------------------------------------------------------------------

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sda/io/hdf5.hpp"
#include "sda/io/safetensors.hpp"

namespace {

/// Writes a safetensors file by hand: header JSON and raw data bytes.
void write_raw(const fs::path& path, const std::string& header, const std::vector<char>& data, std::int64_t size_override = -1) {
    std::ofstream out(path, std::ios::binary);
    const std::uint64_t size = size_override >= 0 ? std::uint64_t(size_override) : header.size();
    out.write(reinterpret_cast<const char*>(&size), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string load_error(const fs::path& path) {
    try {
        sda::io::SafetensorsFile file(path);
    } catch (const sda::error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("safetensors: round trip of tensors and metadata") {
    const fs::path path = scratch("weights.safetensors");
    sda::io::SafetensorsWriter writer;
    const std::vector<float> w = {1.f, -2.f, 3.5f, 0.f, 7.f, 8.f};
    const std::vector<double> b = {0.25, -0.5};
    writer.add<float>("layer.weight", w, {2, 3});
    writer.add<double>("layer.bias", b, {2});
    writer.metadata("sda.epoch", "3");
    writer.write(path);
    const sda::io::SafetensorsFile file(path);
    CHECK(file.read<float>("layer.weight", {2, 3}) == w);
    CHECK(file.read<double>("layer.bias", {2}) == b);
    CHECK(file.metadata("sda.epoch") == "3");
    CHECK_THROWS_WITH_AS(file.read<double>("layer.weight", {2, 3}),
                         doctest::Contains("tensor layer.weight is F32, expected F64"), sda::error);
    CHECK_THROWS_WITH_AS(file.read<float>("layer.weight", {3, 2}), doctest::Contains("has shape [2, 3], expected [3, 2]"),
                         sda::error);
    CHECK_THROWS_WITH_AS(file.read<float>("missing", {1}), doctest::Contains("no tensor \"missing\""), sda::error);
    fs::remove_all(path.parent_path());
}

TEST_CASE("safetensors: truncated and hostile files are refused with a reason") {
    const fs::path path = scratch("hostile.safetensors");
    const std::vector<char> eight(8, 0);
    const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    write_raw(path, good, eight);
    CHECK(load_error(path).empty());

    write_raw(path, good, std::vector<char>(4, 0));  // data cut short
    CHECK(load_error(path).find("outside the 4-byte data section: truncated?") != std::string::npos);
    write_raw(path, good, eight, 1 << 20);  // header length beyond the file
    CHECK(load_error(path).find("exceeds the file") != std::string::npos);
    write_raw(path, "{not json", eight);
    CHECK(load_error(path).find("not valid JSON") != std::string::npos);
    write_raw(path, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight);
    CHECK(load_error(path).find("needs 12 bytes") != std::string::npos);
    write_raw(path, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
              std::vector<char>(6, 0));
    CHECK(load_error(path).find("overlap") != std::string::npos);
    write_raw(path, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight);
    CHECK(load_error(path).find("hole") != std::string::npos);
    write_raw(path, R"({"a":{"dtype":"X9","shape":[1],"data_offsets":[0,8]}})", eight);
    CHECK(load_error(path).find("unknown dtype") != std::string::npos);
    write_raw(path, R"({"a":{"dtype":"F32","shape":"two","data_offsets":[0,8]}})", eight);
    CHECK(load_error(path).find("tensor a: shape is not an array") != std::string::npos);
    {
        std::ofstream out(path, std::ios::binary);
        out.write("abc", 3);
    }
    CHECK(load_error(path).find("shorter than its 8-byte header length") != std::string::npos);
    CHECK(load_error(scratch("absent.safetensors")).find("cannot open") != std::string::npos);
    fs::remove_all(path.parent_path());
}

TEST_CASE("safetensors: declared shapes cannot wrap, round or nest: every file is read exactly or refused") {
    const fs::path path = scratch("shapes.safetensors");
    const auto refused = [&](const std::string& header, std::size_t data_bytes, const char* reason) {
        write_raw(path, header, std::vector<char>(data_bytes, 0));
        const std::string error = load_error(path);
        CHECK_MESSAGE(error.find(reason) != std::string::npos, header, " -> ", error);
        CHECK_MESSAGE(error.find(path.string()) != std::string::npos, "the message names the file: ", error);
    };
    // element counts that overflow size_t (2^64 * 4 bytes wraps to 0) and extents of -1
    refused(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0, "more than 2^48 elements");
    refused(R"({"a":{"dtype":"U8","shape":[-1,-1],"data_offsets":[0,0]}})", 0, "must hold non-negative integers");
    refused(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0, "more than 2^48 elements");
    refused(R"({"a":{"dtype":"F32","shape":[4611686018427387905,4],"data_offsets":[0,4]}})", 4, "more than 2^48 elements");
    // a zero extent does not hide the others: strides of [0, 2^62, 2^62] would overflow
    refused(R"({"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})", 0,
            "more than 2^48 elements");
    // an extent of 2.9 was read as 2, offsets of -8 as 2^64 - 8, 2^64 as a float
    refused(R"({"a":{"dtype":"F32","shape":[2.9],"data_offsets":[0,8]}})", 8, "must hold non-negative integers");
    refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8, "must hold non-negative integers");
    refused(R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}})", 8,
            "must hold non-negative integers");
    // entries hold exactly the format's three keys, of the right types
    refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", 8, "an entry must hold exactly");
    refused(R"({"a":{"dtype":"F32","shape":[2]}})", 8, "an entry must hold exactly");
    refused(R"({"a":[1,2,3]})", 8, "an entry must hold exactly");
    refused(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, "the dtype is not a string");
    refused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8, "data_offsets must hold 2 numbers");
    refused(R"({"__metadata__":{"k":{"nested":"x"}}})", 0, "metadata k is not a string");
    // a header nested 100,000 levels deep is refused while parsing, without recursion
    refused(std::string(100000, '[') + std::string(100000, ']'), 0, "nests deeper than 3 levels");
    refused(R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", 8, "nests deeper than 3 levels");
    // the largest legal values still read
    write_raw(path, R"({"a":{"dtype":"F32","shape":[0,281474976710656],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1,2],"data_offsets":[0,2]}})",
              std::vector<char>(2, 0));
    CHECK(load_error(path).empty());
    fs::remove_all(path.parent_path());
}

TEST_CASE("safetensors: names and metadata that are not UTF-8 are an sda::error when written, not nlohmann's") {
    const fs::path path = scratch("utf8.safetensors");
    const std::vector<float> w = {1.f, 2.f};
    sda::io::SafetensorsWriter writer;
    CHECK_THROWS_WITH_AS(writer.add<float>("bad\xff", w, {2}), doctest::Contains("is not valid UTF-8"), sda::error);
    CHECK_THROWS_WITH_AS(writer.metadata("sda.note", "caf\xe9"), doctest::Contains("is not valid UTF-8"), sda::error);
    CHECK_THROWS_WITH_AS(writer.metadata("\xc3", "x"), doctest::Contains("is not valid UTF-8"), sda::error);
    writer.add<float>("caf\xc3\xa9", w, {2});  // valid UTF-8 passes, and reads back
    writer.metadata("note", "\xe2\x88\x87 log p");
    writer.write(path);
    const sda::io::SafetensorsFile file(path);
    CHECK(file.read<float>("caf\xc3\xa9", {2}) == w);
    CHECK(file.metadata("note") == "\xe2\x88\x87 log p");
    fs::remove_all(path.parent_path());
}

TEST_CASE("hdf5: trajectories round trip, and bad files are refused") {
    const fs::path path = scratch("train.h5");
    sda::Tensor<float> x = sda::empty_tensor<float>({3, 5, 2});
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = 0.5f * float(i) - 3.f;
    sda::io::write_trajectories(path, x);
    CHECK(sda::io::read_trajectories(path) == x);
    for (const auto& entry : fs::directory_iterator(path.parent_path()))
        CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);

    CHECK_THROWS_WITH_AS(sda::io::read_trajectories(scratch("absent.h5")), doctest::Contains("no file"), sda::error);
    {
        std::ofstream out(scratch("text.h5"));
        out << "not an HDF5 file";
    }
    CHECK_THROWS_WITH_AS(sda::io::read_trajectories(scratch("text.h5")), doctest::Contains("is not an HDF5 file"), sda::error);
    // truncate a real file
    const auto size = fs::file_size(path);
    fs::copy_file(path, scratch("cut.h5"));
    fs::resize_file(scratch("cut.h5"), size / 2);
    CHECK_THROWS_AS(sda::io::read_trajectories(scratch("cut.h5")), sda::error);
    CHECK_THROWS_AS(sda::io::write_trajectories(scratch("empty.h5"), sda::Tensor<float>(xt::zeros<float>({0, 3}))), sda::error);
    CHECK_THROWS_AS(sda::io::write_trajectories(scratch("rank1.h5"), sda::Tensor<float>(xt::ones<float>({4}))), sda::error);
    CHECK_THROWS_WITH_AS(sda::io::write_trajectories(scratch("rank33.h5"),
                                                     sda::Tensor<float>(xt::ones<float>(sda::Shape(33, 1)))),
                         doctest::Contains("of rank 2 to 32"), sda::error);
    // failures of the file system are sda::error too, never std::filesystem::filesystem_error
    std::ofstream(scratch("a_file")) << "x";
    CHECK_THROWS_WITH_AS(sda::io::write_trajectories(scratch("a_file") / "sub" / "x.h5", x),
                         doctest::Contains("cannot create the folder"), sda::error);
    fs::create_directories(scratch("occupied.h5") / "inside");
    CHECK_THROWS_WITH_AS(sda::io::write_trajectories(scratch("occupied.h5"), x), doctest::Contains("cannot move"),
                         sda::error);
    CHECK_FALSE(fs::exists(scratch("occupied.h5.tmp.h5")));
    fs::remove_all(path.parent_path());
}

TEST_CASE("hdf5: a write killed with SIGKILL leaves the previous file whole under the final name") {
    const fs::path path = scratch("killed.h5");
    sda::Tensor<float> before = sda::empty_tensor<float>({2, 3, 4});
    for (std::size_t i = 0; i < before.size(); ++i) before.data()[i] = float(i);
    sda::io::write_trajectories(path, before);
    const fs::path temporary = path.string() + ".tmp.h5";
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // writes 400 MB, slowly enough to be killed in the middle
        sda::Tensor<float> big = sda::empty_tensor<float>({100, 1000, 1000});
        std::fill(big.begin(), big.end(), 1.5f);
        sda::io::write_trajectories(path, big);
        ::_exit(0);
    }
    // kill it once the temporary file exists and has started to grow
    bool started = false;
    for (int i = 0; i < 20000 && !started; ++i) {
        std::error_code error;
        started = fs::exists(temporary, error) && fs::file_size(temporary, error) > 4096;
        if (!started) ::usleep(1000);
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(started);
    CHECK(WIFSIGNALED(status));
    // the final name still holds the previous trajectories, whole; the temporary is never read
    CHECK(sda::io::read_trajectories(path) == before);
    fs::remove_all(path.parent_path());
}

namespace {

/// Writes an HDF5 file holding one dataset `name` of the given file type and
/// extents, from `data` of memory type `memory` (or, with no data, a chunked
/// dataset that claims the extents without storing them).
void write_h5(const fs::path& path, const char* name, hid_t file_type, const std::vector<hsize_t>& dims,
              hid_t memory = -1, const void* data = nullptr) {
    using sda::io::detail::H5Handle;
    const H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    REQUIRE(file.valid());
    const H5Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                                      : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                         H5Sclose);
    const H5Handle properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (!data) {
        const std::vector<hsize_t> chunk(dims.size(), 1);
        REQUIRE(H5Pset_chunk(properties.get(), static_cast<int>(chunk.size()), chunk.data()) >= 0);
    }
    const H5Handle dataset(H5Dcreate2(file.get(), name, file_type, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                           H5Dclose);
    REQUIRE(dataset.valid());
    if (data) REQUIRE(H5Dwrite(dataset.get(), memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
}

/// What `read_trajectories(path)` throws, or "no error".
std::string error_of(const fs::path& path) {
    try {
        sda::io::read_trajectories(path);
    } catch (const sda::error& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("hdf5: trajectories of 2-D fields round trip, and files of any rank from 2 read") {
    // velocity fields: N = 3 trajectories of L = 4 states, 2 channels on an 8 x 6 grid
    const fs::path path = scratch("fields.h5");
    sda::Tensor<float> x = sda::empty_tensor<float>({3, 4, 2, 8, 6});
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = 0.25f * float(i % 97) - float(i % 5);
    sda::io::write_trajectories(path, x);
    const sda::Tensor<float> back = sda::io::read_trajectories(path);
    CHECK(sda::shape_of(back) == sda::Shape{3, 4, 2, 8, 6});
    CHECK(back == x);
    // [N, L] and [N, L, D] files, as written before, read as they were
    for (const sda::Shape& shape : {sda::Shape{5, 7}, sda::Shape{2, 5, 3}, sda::Shape{1, 2, 1, 1, 3, 2}}) {
        sda::Tensor<float> y = sda::empty_tensor<float>(shape);
        for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = float(i) - 4.5f;
        sda::io::write_trajectories(path, y);
        CHECK(sda::io::read_trajectories(path) == y);
    }
    // a float64 dataset (numpy's default) is converted
    std::vector<double> values(2 * 3 * 2 * 2 * 2);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.5 * double(i) - 3.0;
    write_h5(scratch("double.h5"), "x", H5T_IEEE_F64LE, {2, 3, 2, 2, 2}, H5T_NATIVE_DOUBLE, values.data());
    const sda::Tensor<float> converted = sda::io::read_trajectories(scratch("double.h5"));
    REQUIRE(sda::shape_of(converted) == sda::Shape{2, 3, 2, 2, 2});
    for (std::size_t i = 0; i < values.size(); ++i) CHECK(converted.data()[i] == float(values[i]));
    fs::remove_all(path.parent_path());
}

TEST_CASE("hdf5: a dataset x that is missing, not floating point, of rank below 2 or too large is refused") {
    const std::vector<float> floats(64, 1.f);
    const std::vector<int> ints(64, 1);

    write_h5(scratch("other.h5"), "y", H5T_IEEE_F32LE, {2, 4, 8}, H5T_NATIVE_FLOAT, floats.data());
    CHECK(error_of(scratch("other.h5")).find("has no dataset \"x\"") != std::string::npos);
    {
        const sda::io::detail::H5Handle file(H5Fcreate(scratch("group.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                                             H5Fclose);
        const sda::io::detail::H5Handle group(H5Gcreate2(file.get(), "x", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    }
    CHECK(error_of(scratch("group.h5")).find("\"x\" is not a dataset") != std::string::npos);
    write_h5(scratch("int.h5"), "x", H5T_STD_I32LE, {2, 4, 8}, H5T_NATIVE_INT, ints.data());
    CHECK(error_of(scratch("int.h5")).find("\"x\" is not floating point") != std::string::npos);
    write_h5(scratch("rank1.h5"), "x", H5T_IEEE_F32LE, {64}, H5T_NATIVE_FLOAT, floats.data());
    CHECK(error_of(scratch("rank1.h5")).find("\"x\" has rank 1, expected [N, L, state...]") != std::string::npos);
    write_h5(scratch("scalar.h5"), "x", H5T_IEEE_F32LE, {}, H5T_NATIVE_FLOAT, floats.data());
    CHECK(error_of(scratch("scalar.h5")).find("\"x\" has rank 0") != std::string::npos);
    // extents that claim more than memory holds, stored as empty chunks
    write_h5(scratch("huge.h5"), "x", H5T_IEEE_F32LE, {hsize_t(1) << 20, hsize_t(1) << 20, hsize_t(1) << 10});
    CHECK(error_of(scratch("huge.h5")).find("more than 2^48 elements") != std::string::npos);
    write_h5(scratch("overflow.h5"), "x", H5T_IEEE_F32LE, {hsize_t(1) << 31, hsize_t(1) << 31, 4});
    CHECK(error_of(scratch("overflow.h5")).find("more than 2^48 elements") != std::string::npos);
    fs::remove_all(scratch("x").parent_path());
}

TEST_CASE("hdf5: declared extents must be backed by data in the file, and nothing is allocated before that is known") {
    // a small file with unwritten chunks that declares [262144, 256, 4] (1 GiB) was read into a
    // 1 GiB tensor of fill values
    write_h5(scratch("unwritten.h5"), "x", H5T_IEEE_F32LE, {262144, 256, 4});
    CHECK(fs::file_size(scratch("unwritten.h5")) < 100000);
    const std::string unwritten = error_of(scratch("unwritten.h5"));
    CHECK_MESSAGE(unwritten.find("declares shape [262144, 256, 4] (1073741824 bytes) but the file stores 0 bytes") !=
                      std::string::npos,
                  unwritten);
    CHECK(unwritten.find(scratch("unwritten.h5").string()) != std::string::npos);
    // after a zero extent the overflow guard stopped checking, and xtensor's strides overflowed:
    // a release build returned a tensor of shape [0, 72057594037927941, 131073]
    write_h5(scratch("zero.h5"), "x", H5T_IEEE_F32LE, {0, 72057594037927941ull, 131073});
    CHECK(error_of(scratch("zero.h5")).find("more than 2^48 elements") != std::string::npos);
    write_h5(scratch("empty.h5"), "x", H5T_IEEE_F32LE, {0, 5, 3});
    CHECK(error_of(scratch("empty.h5")).find("\"x\" of shape [0, 5, 3] is empty") != std::string::npos);
    // a dataset half written (some chunks stored) is refused too; a whole one reads
    {
        using sda::io::detail::H5Handle;
        const H5Handle file(H5Fcreate(scratch("half.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
        const hsize_t dims[3] = {4, 8, 2}, chunk[3] = {1, 8, 2}, half[3] = {2, 8, 2};
        const H5Handle space(H5Screate_simple(3, dims, nullptr), H5Sclose);
        const H5Handle properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
        H5Pset_chunk(properties.get(), 3, chunk);
        const H5Handle dataset(H5Dcreate2(file.get(), "x", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, properties.get(),
                                          H5P_DEFAULT),
                               H5Dclose);
        const H5Handle memory(H5Screate_simple(3, half, nullptr), H5Sclose);
        const hsize_t start[3] = {0, 0, 0};
        const H5Handle selection(H5Dget_space(dataset.get()), H5Sclose);
        H5Sselect_hyperslab(selection.get(), H5S_SELECT_SET, start, nullptr, half, nullptr);
        const std::vector<float> values(32, 1.5f);
        REQUIRE(H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, memory.get(), selection.get(), H5P_DEFAULT, values.data()) >= 0);
    }
    CHECK(error_of(scratch("half.h5")).find("but the file stores 128 bytes") != std::string::npos);
    // every failure is an sda::error, the file system's included (a folder named like the file)
    fs::create_directories(scratch("folder.h5"));
    CHECK(error_of(scratch("folder.h5")).find("no file") != std::string::npos);
    fs::remove_all(scratch("x").parent_path());
}
