// Fuzz target: HDF5 trajectory files, structured. libhdf5 itself parses a file's internal
// structures and is trusted (sda/io/hdf5.hpp says why); what sda controls is what a
// well-formed file can declare. The input picks a dataset's name, type, rank, extents,
// layout (contiguous, chunked, compressed) and how much of it is written; libhdf5 writes
// that file and `read_trajectories` must read it exactly or refuse it with `sda::error`,
// without allocating more than the data in the file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include "common.hpp"
#include "sda/io/hdf5.hpp"

namespace {

using sda::io::detail::H5Handle;

/// Writes the file the input describes; false when libhdf5 refuses to create it.
bool write_described(const std::filesystem::path& path, FuzzedDataProvider& in) {
    const hid_t types[] = {H5T_IEEE_F32LE, H5T_IEEE_F64LE, H5T_IEEE_F32BE, H5T_STD_I32LE, H5T_STD_U8LE};
    const hid_t type = types[in.ConsumeIntegralInRange<int>(0, 4)];
    const int rank = in.ConsumeIntegralInRange<int>(0, 6);
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    for (auto& d : dims) {
        const int bits = in.ConsumeIntegralInRange<int>(0, 63);
        d = in.ConsumeIntegralInRange<hsize_t>(0, (hsize_t(1) << bits));
    }
    const int layout = in.ConsumeIntegralInRange<int>(0, 2);  // contiguous, chunked, chunked + deflate
    const bool write = in.ConsumeBool();
    const char* name = in.ConsumeBool() ? "x" : "y";

    const sda::io::detail::H5Quiet quiet;
    const H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file.valid()) return false;
    const H5Handle space(rank ? H5Screate_simple(rank, dims.data(), nullptr) : H5Screate(H5S_SCALAR), H5Sclose);
    if (!space.valid()) return false;
    const H5Handle properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    hsize_t chunks = 1;  // how many chunks a whole write touches (capped: libhdf5 takes seconds per 10^5)
    if (layout > 0 && rank > 0) {
        std::vector<hsize_t> chunk(dims.size());
        for (std::size_t i = 0; i < dims.size(); ++i) {
            chunk[i] = std::max<hsize_t>(1, std::min<hsize_t>(dims[i], in.ConsumeIntegralInRange<hsize_t>(1, 64)));
            const hsize_t along = (dims[i] + chunk[i] - 1) / chunk[i] + 1, cap = hsize_t(1) << 40;
            chunks = along > cap / chunks ? cap : chunks * along;
        }
        if (H5Pset_chunk(properties.get(), rank, chunk.data()) < 0) return false;
        if (layout == 2) H5Pset_deflate(properties.get(), 6);
    }
    const H5Handle dataset(H5Dcreate2(file.get(), name, type, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                           H5Dclose);
    if (!dataset.valid()) return false;
    hsize_t count = 1;
    for (hsize_t d : dims) count = d && count > (hsize_t(1) << 40) / d ? (hsize_t(1) << 41) : count * d;
    if (write && count <= (hsize_t(1) << 18) && chunks <= 4096) {  // small enough to write whole
        std::vector<double> values(static_cast<std::size_t>(count));
        for (auto& v : values) v = in.ConsumeFloatingPoint<double>();
        H5Dwrite(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const auto& path = sda::fuzz::scratch_file(".h5");
    if (!write_described(path, in)) return 0;
    return sda::fuzz::expect_sda_errors_only([&] { (void)sda::io::read_trajectories(path); });
}
