// sda/core/error.hpp: the one exception type of sda, and the helpers that build
// its messages.
//
// Every check at a boundary (constructors, `sample`, `guide`, loaders) throws
// `sda::error` whose message names the component, the offending argument and
// its value, e.g. "sda::MarkovComposedScore: trajectory length L = 4 is below
// the window 2K+1 = 5".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "sda/fwd.hpp"

namespace sda {

/// Thrown for every invalid input sda detects.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    out.precision(6);
    (out << ... << parts);
    return out.str();
}

/// Throws `sda::error` with the concatenation of `parts`.
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
    throw error(concat(parts...));
}

/// Throws `sda::error` with the concatenation of `parts` unless `condition`.
template <class... Parts>
void require(bool condition, const Parts&... parts) {
    if (!condition) fail(parts...);
}

}  // namespace detail
}  // namespace sda
