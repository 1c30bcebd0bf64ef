// sda/io/safetensors.hpp: reading and writing the safetensors format
// (Hugging Face, https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header mapping tensor names to dtype,
// shape and byte offsets (plus "__metadata__", string to string), then the raw
// little-endian data. PyTorch, JAX and NumPy read it; so does
// tools/torch_interop.py, with Debian's python3-torch alone.
//
// Files are written atomically. Reading validates everything a hostile or
// truncated file could get wrong before it allocates anything for it: JSON
// (bounded nesting), entries with exactly the three keys of the format,
// extents and offsets that are non-negative integers (not -1, not 2.9), element
// counts that cannot wrap (at most 2^48 elements), sizes that match the data,
// overlaps, holes and dtypes; it throws `sda::error` naming the file and the
// problem.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/io/atomic_file.hpp"
#include "sda/io/json.hpp"

namespace sda::io {

static_assert(std::endian::native == std::endian::little, "sda::io::safetensors assumes a little-endian host");

namespace detail {

template <class T>
constexpr const char* dtype_of() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    else if constexpr (std::is_same_v<T, double>) return "F64";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "I64";
    else static_assert(sizeof(T) == 0, "sda::io::safetensors: unsupported element type");
}

inline std::size_t dtype_size(const std::string& dtype) {
    static const std::map<std::string, std::size_t> sizes = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
        {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},  {"BOOL", 1}};
    const auto it = sizes.find(dtype);
    sda::detail::require(it != sizes.end(), "safetensors: unknown dtype \"", dtype, "\"");
    return it->second;
}

}  // namespace detail

/// Collects tensors and metadata, then writes them as one safetensors file.
class SafetensorsWriter {
public:
    template <class T>
    void add(const std::string& name, std::span<const T> data, const Shape& shape) {
        sda::detail::require(element_count(shape) == data.size(), "safetensors: tensor ", name, " has ", data.size(),
                             " values for shape ", format_shape(shape));
        sda::detail::require(!name.empty() && name != "__metadata__" && !entries_.count(name),
                             "safetensors: invalid or duplicate tensor name \"", name, "\"");
        sda::detail::require(valid_utf8(name), "safetensors: the tensor name \"", name, "\" is not valid UTF-8");
        Entry& e = entries_[name];
        e.dtype = detail::dtype_of<T>();
        e.shape = shape;
        e.bytes.resize(data.size_bytes());
        if (!data.empty()) std::memcpy(e.bytes.data(), data.data(), data.size_bytes());
    }
    void metadata(const std::string& key, const std::string& value) {
        sda::detail::require(valid_utf8(key) && valid_utf8(value), "safetensors: the metadata \"", key,
                             "\" is not valid UTF-8");
        metadata_[key] = value;
    }

    /// Writes the file atomically (temporary file, then rename).
    void write(const std::filesystem::path& path) const {
        nlohmann::json header = nlohmann::json::object();
        if (!metadata_.empty()) header["__metadata__"] = metadata_;
        std::size_t offset = 0;
        for (const auto& [name, e] : entries_) {  // std::map: sorted by name, like the reference writer
            header[name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
            offset += e.bytes.size();
        }
        std::string text = header.dump();
        text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the reference writer does
        AtomicFile file(path, std::ios::binary);
        const std::uint64_t size = text.size();
        file.stream().write(reinterpret_cast<const char*>(&size), 8);
        file.stream().write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const auto& [name, e] : entries_)
            file.stream().write(reinterpret_cast<const char*>(e.bytes.data()), static_cast<std::streamsize>(e.bytes.size()));
        file.commit();
    }

private:
    struct Entry {
        std::string dtype;
        Shape shape;
        std::vector<std::byte> bytes;
    };
    std::map<std::string, Entry> entries_;
    std::map<std::string, std::string> metadata_;
};

/// A safetensors file read into memory and validated.
class SafetensorsFile {
public:
    struct Info {
        std::string dtype;
        Shape shape;
        std::size_t begin = 0, end = 0;  ///< byte offsets in the data section
    };

    explicit SafetensorsFile(const std::filesystem::path& path) : path_(path.string()) {
        std::ifstream in(path, std::ios::binary);
        sda::detail::require(in.is_open(), "safetensors: cannot open ", path_);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        fail_unless(bytes.size() >= 8, "the file is shorter than its 8-byte header length");
        std::uint64_t header_size = 0;
        std::memcpy(&header_size, bytes.data(), 8);
        fail_unless(header_size <= bytes.size() - 8, "the header length ", header_size, " exceeds the file (",
                    bytes.size(), " bytes): truncated?");
        fail_unless(header_size <= (std::uint64_t(100) << 20), "the header length ", header_size, " is implausibly large");
        // root object, entry object, shape array: nothing deeper is valid
        const nlohmann::json header =
            parse_json(std::string_view(bytes.data() + 8, header_size), "safetensors: " + path_ + ": the header", 3);
        fail_unless(header.is_object(), "the header is not a JSON object");
        data_.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_size), bytes.end());

        std::vector<std::pair<std::size_t, std::size_t>> ranges;
        for (const auto& [name, value] : header.items()) {
            if (name == "__metadata__") {
                fail_unless(value.is_object(), "__metadata__ is not an object");
                for (const auto& [key, text] : value.items()) {
                    fail_unless(text.is_string(), "metadata ", key, " is not a string");
                    metadata_[key] = text.get<std::string>();
                }
                continue;
            }
            fail_unless(value.is_object() && value.size() == 3 && value.contains("dtype") && value.contains("shape") &&
                            value.contains("data_offsets"),
                        "tensor ", name, ": an entry must hold exactly \"dtype\", \"shape\" and \"data_offsets\", not ",
                        json_excerpt(value));
            Info info;
            fail_unless(value["dtype"].is_string(), "tensor ", name, ": the dtype is not a string");
            info.dtype = value["dtype"].get<std::string>();
            const std::size_t item = dtype_size(name, info.dtype);
            info.shape = unsigned_list(value["shape"], name, "shape");
            const auto offsets = unsigned_list(value["data_offsets"], name, "data_offsets");
            fail_unless(offsets.size() == 2, "tensor ", name, ": data_offsets must hold 2 numbers");
            info.begin = offsets[0], info.end = offsets[1];
            fail_unless(info.begin <= info.end && info.end <= data_.size(), "tensor ", name, ": data_offsets [",
                        info.begin, ", ", info.end, "] lie outside the ", data_.size(), "-byte data section: truncated?");
            // at most 2^48 elements of at most 8 bytes: the byte count cannot wrap
            const std::size_t bytes_needed =
                element_count_checked(info.shape, "safetensors: " + path_ + ": tensor " + name) * item;
            fail_unless(info.end - info.begin == bytes_needed, "tensor ", name, ": shape ", format_shape(info.shape),
                        " of ", info.dtype, " needs ", bytes_needed, " bytes, data_offsets give ", info.end - info.begin);
            ranges.emplace_back(info.begin, info.end);
            tensors_[name] = std::move(info);
        }
        // the data must be covered exactly, without overlaps or holes
        std::sort(ranges.begin(), ranges.end());
        std::size_t cursor = 0;
        for (const auto& [begin, end] : ranges) {
            fail_unless(begin == cursor, begin < cursor ? "two tensors overlap" : "the data section has a hole",
                        " at byte ", std::min(begin, cursor));
            cursor = end;
        }
        fail_unless(cursor == data_.size(), "the data section has ", data_.size() - cursor, " trailing bytes");
    }

    const std::map<std::string, Info>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

    /// Metadata value; throws if absent.
    const std::string& metadata(const std::string& key) const {
        const auto it = metadata_.find(key);
        if (it == metadata_.end()) fail("no metadata \"", key, "\"");
        return it->second;
    }

    /// The tensor's values, which must have this element type and shape.
    template <class T>
    std::vector<T> read(const std::string& name, const Shape& expected) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end()) fail("no tensor \"", name, "\"");
        const Info& info = it->second;
        fail_unless(info.dtype == detail::dtype_of<T>(), "tensor ", name, " is ", info.dtype, ", expected ",
                    detail::dtype_of<T>());
        fail_unless(info.shape == expected, "tensor ", name, " has shape ", format_shape(info.shape), ", expected ",
                    format_shape(expected));
        std::vector<T> out(element_count(info.shape));
        if (!out.empty()) std::memcpy(out.data(), data_.data() + info.begin, info.end - info.begin);
        return out;
    }

private:
    std::size_t dtype_size(const std::string& name, const std::string& dtype) const {
        try {
            return detail::dtype_size(dtype);
        } catch (const sda::error& e) {
            fail("tensor ", name, ": ", e.what());
        }
    }
    /// A JSON array of non-negative integers (nlohmann parses -1 as signed, 2.9 and 2^64 as floats).
    std::vector<std::size_t> unsigned_list(const nlohmann::json& j, const std::string& name, const char* what) const {
        fail_unless(j.is_array(), "tensor ", name, ": ", what, " is not an array");
        std::vector<std::size_t> out;
        out.reserve(j.size());
        for (const auto& v : j) {
            fail_unless(is_whole_nonnegative(v), "tensor ", name, ": ", what, " ", json_excerpt(j),
                        " must hold non-negative integers");
            out.push_back(v.get<std::size_t>());
        }
        return out;
    }

    template <class... Parts>
    [[noreturn]] void fail(const Parts&... parts) const {
        sda::detail::fail("safetensors: ", path_, ": ", parts...);
    }
    template <class... Parts>
    void fail_unless(bool condition, const Parts&... parts) const {
        if (!condition) fail(parts...);
    }

    std::string path_;
    std::vector<char> data_;
    std::map<std::string, Info> tensors_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace sda::io
