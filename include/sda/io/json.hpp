// sda/io/json.hpp: JSON from files sda does not control (safetensors headers,
// checkpoint metadata), parsed with bounded nesting and converted to sda's
// conventions: every failure is an `sda::error` naming the source.
//
// nlohmann::json parses iteratively, but printing, comparing and copying a value
// recurse once per level, so a 200 KB file nested 100,000 levels deep would end
// the process with a stack overflow in whatever touches the value next. Parsing
// stops at `max_depth` levels instead, before the value is built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sda/core/error.hpp"

namespace sda::io {

/// Nesting levels of JSON a file read by sda may hold (a checkpoint's configuration needs 3).
inline constexpr int max_json_depth = 64;

/// `text` as JSON; throws `sda::error` naming `source` when it is not valid JSON or nests
/// deeper than `max_depth` arrays and objects.
inline nlohmann::json parse_json(std::string_view text, const std::string& source, int max_depth = max_json_depth) {
    // the callback sees each value's depth before the parser descends into it
    const auto bounded = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
        const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                           event == nlohmann::json::parse_event_t::array_start;
        if (opens && depth >= max_depth)
            sda::detail::fail(source, ": the JSON nests deeper than ", max_depth, " levels");
        return true;
    };
    try {
        return nlohmann::json::parse(text.begin(), text.end(), bounded);
    } catch (const nlohmann::json::exception& e) {
        sda::detail::fail(source, ": not valid JSON: ", e.what());
    }
}

/// Whether `j` is a whole number >= 0 (parsed text gives unsigned numbers; values built in
/// C++ from a signed integer are signed).
inline bool is_whole_nonnegative(const nlohmann::json& j) {
    return j.is_number_unsigned() || (j.is_number_integer() && j.get<std::int64_t>() >= 0);
}

/// At most `max_chars` characters of `j` printed, for error messages; `j` must come from
/// `parse_json` or from sda (bounded depth).
inline std::string json_excerpt(const nlohmann::json& j, std::size_t max_chars = 200) {
    std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > max_chars) text = text.substr(0, max_chars) + "... (" + std::to_string(text.size()) + " characters)";
    return text;
}

/// Whether `text` is valid UTF-8 (what JSON strings must hold), as nlohmann::json's own
/// strict serialiser decides.
inline bool valid_utf8(const std::string& text) {
    try {
        (void)nlohmann::json(text).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

}  // namespace sda::io
