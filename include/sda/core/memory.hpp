// sda/core/memory.hpp: the allocator of every buffer sda computes in (tensors,
// parameters, gradients, optimiser moments, layer caches).
//
// Buffers start on a 64-byte boundary, always. Eigen and xtensor vectorise a loop
// by peeling the elements before the first aligned address; where that boundary
// falls decides which partial sums a reduction forms, and whether an element takes
// the scalar or the packet (FMA) path. With glibc's malloc the address of a large
// buffer depends on the process's history (its mmap threshold adapts to what was
// freed before, differently with each thread interleaving), so two runs of the same
// training differed in the last bits from one process to the next. Fixed
// alignment makes results identical from run to run.
//
// Memory comes from oneTBB's scalable allocator: samplers create and drop
// batch-sized temporaries every step, which glibc's malloc serves by mapping and
// unmapping pages each time. Built with SDA_SANITIZE (the sanitizer build), it
// comes from `std::aligned_alloc`, which AddressSanitizer sees.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <limits>
#include <new>
#include <vector>

#if !defined(SDA_SANITIZE)
#include <tbb/scalable_allocator.h>
#endif

namespace sda {

/// A standard allocator returning 64-byte-aligned memory.
template <class T>
struct AlignedAllocator {
    using value_type = T;
    static constexpr std::size_t alignment = 64;

    AlignedAllocator() noexcept = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(T) - alignment) throw std::bad_array_new_length();
        const std::size_t bytes = (n * sizeof(T) + alignment - 1) / alignment * alignment;
#if defined(SDA_SANITIZE)
        void* p = std::aligned_alloc(alignment, bytes == 0 ? alignment : bytes);
#else
        void* p = scalable_aligned_malloc(bytes == 0 ? alignment : bytes, alignment);
#endif
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) noexcept {
#if defined(SDA_SANITIZE)
        std::free(p);
#else
        scalable_aligned_free(p);
#endif
    }

    template <class U>
    bool operator==(const AlignedAllocator<U>&) const noexcept {
        return true;
    }
};

/// A `std::vector` whose buffer starts on a 64-byte boundary.
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace sda
