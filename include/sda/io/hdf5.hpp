// sda/io/hdf5.hpp: trajectories in HDF5, the layout of the paper's code: one
// float32 dataset "x" of shape [N, L, state...] per file (train.h5, valid.h5,
// test.h5): [N, L, D] for Lorenz-63, [N, L, C, H, W] for 2-D fields such as the
// Kolmogorov flow's [N, L, 2, 64, 64] velocities. Any rank from 2 to HDF5's 32.
//
// Opt-in: include this header and link HDF5 (the CMake target `sda::hdf5`).
// Writes go to a temporary file renamed into place; reads check that the file
// is HDF5, holds "x", and that "x" is a floating-point dataset (float16 to
// long double, converted to float32) of rank 2 to 32, not empty, whose declared
// size is backed by data really in the file (the stored bytes are at most the
// file's size, at least the declared size when unfiltered, and at most 1100
// times smaller when compressed, deflate's limit being 1032), all before
// anything is allocated, and throw `sda::error` otherwise (HDF5's own error
// printing is silenced).
//
// Trust: HDF5 files are trusted input. libhdf5 parses the file's internal
// structures (superblock, object headers, B-trees, heaps) itself, and Debian 12's
// 1.10.8 can be crashed by malformed ones: fuzzing found ~2 KB files that
// segfault inside `H5Lexists` (a memcpy under H5F__accum_read, reached from
// H5G__stab_lookup). Such crashes are reported against libhdf5 steadily
// (CVE-2021-37501, HDF5 issue #2458, present in 1.10.8; CVE-2025-2915, #5380;
// #6401, open in 2026); nothing sda could check before calling HDF5 prevents
// them, since they lie in the structures HDF5 must read to find "x" at all.
// What sda controls (the dataset's type, rank and extents and their relation to
// the data in the file) is checked. Read HDF5 files only from sources you trust,
// as you would a pickle or a TorchScript module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include <hdf5.h>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/core/tensor.hpp"

namespace sda::io {

namespace detail {

/// Closes an HDF5 identifier with the matching function.
class H5Handle {
public:
    H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    H5Handle(const H5Handle&) = delete;
    H5Handle& operator=(const H5Handle&) = delete;
    ~H5Handle() {
        if (id_ >= 0) close_(id_);
    }
    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }

private:
    hid_t id_;
    herr_t (*close_)(hid_t);
};

/// Silences HDF5's automatic error printing while alive.
class H5Quiet {
public:
    H5Quiet() {
        H5Eget_auto2(H5E_DEFAULT, &function_, &data_);
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
    ~H5Quiet() { H5Eset_auto2(H5E_DEFAULT, function_, data_); }

private:
    H5E_auto2_t function_ = nullptr;
    void* data_ = nullptr;
};

}  // namespace detail

/// Writes `x` ([N, L, state...], rank 2 to 32) as the float32 dataset "x" of a new HDF5 file at `path`.
inline void write_trajectories(const std::filesystem::path& path, const Tensor<float>& x) {
    sda::detail::require(x.dimension() >= 2 && x.dimension() <= H5S_MAX_RANK && x.size() > 0,
                         "sda::io::write_trajectories: ", path.string(), ": need a non-empty [N, L, ...] tensor of rank 2 to ",
                         H5S_MAX_RANK, ", got shape ", format_shape(shape_of(x)));
    std::error_code error;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
    sda::detail::require(!error, "sda::io::write_trajectories: cannot create the folder of ", path.string(), ": ",
                         error.message());
    const std::filesystem::path temporary = path.string() + ".tmp.h5";
    const detail::H5Quiet quiet;
    {
        const detail::H5Handle file(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
        sda::detail::require(file.valid(), "sda::io::write_trajectories: cannot create ", temporary.string());
        const std::vector<hsize_t> dims(x.shape().begin(), x.shape().end());
        const detail::H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
        const detail::H5Handle dataset(
            H5Dcreate2(file.get(), "x", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
        const bool written = dataset.valid() &&
                             H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data()) >= 0;
        if (!written) {
            std::filesystem::remove(temporary, error);
            sda::detail::fail("sda::io::write_trajectories: writing ", temporary.string(), " failed");
        }
    }
    std::filesystem::rename(temporary, path, error);
    if (error) {
        const std::string reason = error.message();
        std::filesystem::remove(temporary, error);
        sda::detail::fail("sda::io::write_trajectories: cannot move ", temporary.string(), " to ", path.string(), ": ",
                          reason);
    }
}

/// Reads the dataset "x" of an HDF5 file as float32 [N, L, state...], whatever its rank (2 to 32).
inline Tensor<float> read_trajectories(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::error_code error;
    sda::detail::require(std::filesystem::is_regular_file(path, error), "sda::io::read_trajectories: no file ", name);
    const detail::H5Quiet quiet;
    sda::detail::require(H5Fis_hdf5(name.c_str()) > 0, "sda::io::read_trajectories: ", name, " is not an HDF5 file");
    const detail::H5Handle file(H5Fopen(name.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    sda::detail::require(file.valid(), "sda::io::read_trajectories: cannot open ", name, " (truncated?)");
    sda::detail::require(H5Lexists(file.get(), "x", H5P_DEFAULT) > 0, "sda::io::read_trajectories: ", name,
                         " has no dataset \"x\"");
    const detail::H5Handle dataset(H5Dopen2(file.get(), "x", H5P_DEFAULT), H5Dclose);
    sda::detail::require(dataset.valid(), "sda::io::read_trajectories: ", name, ": \"x\" is not a dataset");
    const detail::H5Handle type(H5Dget_type(dataset.get()), H5Tclose);
    sda::detail::require(H5Tget_class(type.get()) == H5T_FLOAT, "sda::io::read_trajectories: ", name,
                         ": \"x\" is not floating point");
    const detail::H5Handle space(H5Dget_space(dataset.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    sda::detail::require(rank >= 2 && rank <= H5S_MAX_RANK, "sda::io::read_trajectories: ", name, ": \"x\" has rank ",
                         rank, ", expected [N, L, state...] of rank 2 or more");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    sda::detail::require(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) == rank,
                         "sda::io::read_trajectories: ", name, ": cannot read the extents of \"x\"");
    const Shape shape(dims.begin(), dims.end());
    // a hostile header may claim any extents: refuse what the file's data cannot back
    const std::size_t count = element_count_checked(shape, "sda::io::read_trajectories: " + name + ": \"x\"");
    sda::detail::require(count > 0, "sda::io::read_trajectories: ", name, ": \"x\" of shape ", format_shape(shape),
                         " is empty");
    const std::size_t item = H5Tget_size(type.get());
    sda::detail::require(item >= 2 && item <= 16, "sda::io::read_trajectories: ", name, ": \"x\" has ", item,
                         "-byte elements, not a floating-point type sda reads");
    const std::uintmax_t file_size = std::filesystem::file_size(path, error);
    sda::detail::require(!error, "sda::io::read_trajectories: cannot read the size of ", name, ": ", error.message());
    const hsize_t stored = H5Dget_storage_size(dataset.get());
    const std::size_t declared = count * item;  // count <= 2^48, item <= 16: no wrap
    const detail::H5Handle plist(H5Dget_create_plist(dataset.get()), H5Pclose);
    sda::detail::require(plist.valid(), "sda::io::read_trajectories: ", name, ": cannot read how \"x\" is stored");
    const bool filtered = H5Pget_nfilters(plist.get()) > 0;
    sda::detail::require(stored <= file_size && (filtered ? double(declared) <= 1100.0 * double(stored)
                                                          : stored >= declared),
                         "sda::io::read_trajectories: ", name, ": \"x\" declares shape ", format_shape(shape), " (",
                         declared, " bytes) but the file stores ", stored, " bytes of it", filtered ? " compressed" : "",
                         " in ", file_size, ": truncated, unwritten or hostile");
    Tensor<float> x;
    try {
        x = empty_tensor<float>(shape);
    } catch (const std::bad_alloc&) {
        sda::detail::fail("sda::io::read_trajectories: ", name, ": cannot allocate \"x\" of shape ", format_shape(shape));
    }
    sda::detail::require(H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data()) >= 0,
                         "sda::io::read_trajectories: ", name, ": reading \"x\" of shape ", format_shape(shape),
                         " failed (truncated, or stored with a filter this HDF5 lacks?)");
    return x;
}

}  // namespace sda::io
