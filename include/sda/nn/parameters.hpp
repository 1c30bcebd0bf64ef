// sda/nn/parameters.hpp: `ParameterSet`, the parameters of a network in one
// flat buffer, each tensor named as in the PyTorch state_dict it maps to.
//
// One buffer makes the optimiser a single loop and a checkpoint a list of
// (name, shape, offset); layers keep offsets, not pointers, so networks copy
// by value. Gradients use the same layout in a buffer of the same size.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"
#include "sda/core/random.hpp"
#include "sda/core/shape.hpp"

namespace sda::nn {

struct ParameterInfo {
    std::string name;  ///< PyTorch state_dict name, e.g. "network.1.1.weight"
    Shape shape;       ///< PyTorch shape, e.g. [out, in] for a Linear weight
    std::size_t offset = 0, size = 0;
};

template <class T>
class ParameterSet {
public:
    /// Appends a zero tensor; returns its offset in the flat buffer.
    std::size_t add(std::string name, Shape shape) {
        for (const auto& info : infos_)
            sda::detail::require(info.name != name, "sda::nn::ParameterSet: duplicate parameter name ", name);
        const std::size_t size = element_count(shape), offset = values_.size();
        infos_.push_back({std::move(name), std::move(shape), offset, size});
        values_.resize(offset + size, T(0));
        return offset;
    }

    std::size_t size() const { return values_.size(); }
    T* data() { return values_.data(); }
    const T* data() const { return values_.data(); }
    AlignedVector<T>& values() { return values_; }
    const AlignedVector<T>& values() const { return values_; }
    const std::vector<ParameterInfo>& infos() const { return infos_; }

    /// The entry named `name`; throws `sda::error` if there is none.
    const ParameterInfo& find(const std::string& name) const {
        for (const auto& info : infos_)
            if (info.name == name) return info;
        sda::detail::fail("sda::nn::ParameterSet: no parameter named ", name);
    }

    /// Fills entry `info` with U(-bound, bound) draws, one draw of `gen`.
    void fill_uniform(const ParameterInfo& info, double bound, Generator& gen) {
        std::vector<double> u(info.size);
        sda::fill_uniform(u.data(), 1, info.size, gen);
        for (std::size_t i = 0; i < info.size; ++i)
            values_[info.offset + i] = static_cast<T>(bound * (2.0 * u[i] - 1.0));
    }

private:
    std::vector<ParameterInfo> infos_;
    AlignedVector<T> values_;
};

}  // namespace sda::nn
