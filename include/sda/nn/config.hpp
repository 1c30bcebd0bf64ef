// sda/nn/config.hpp: network configurations described by one field table each.
//
// A configuration struct lists its fields once, in `static constexpr auto fields()`
// (name and member pointer), and names its architecture in `kind`; its JSON form
// (what checkpoints store as "sda.config"), its parsing and its equality all come
// from that table, so a field cannot be serialised but left out of equality, or
// the reverse. Enumerations convert through the `to_json`/`from_json` overloads
// found next to them (their names, never silent defaults).
//
// A configuration read from a file is untrusted: integers must be whole, non-negative
// and at most `max_config_integer` (nlohmann would turn -1 into 2^64 - 1 and 2.5 into
// 2), lists at most `max_config_list` long, flags true or false, numbers finite. Each
// configuration's `validate()` then bounds what the layers would allocate before any
// is built.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/io/json.hpp"

namespace sda::nn {

/// The largest integer a configuration field may hold: 2^24, far above any layer's size,
/// far below where products of sizes could wrap.
inline constexpr std::size_t max_config_integer = std::size_t{1} << 24;
/// The most entries a list of sizes may hold (an event's rank, a U-Net's levels).
inline constexpr std::size_t max_config_list = 64;
/// The most numbers a list of values may hold (a U-Net's fixed context fields).
inline constexpr std::size_t max_config_values = std::size_t{1} << 24;
/// The most parameters a configuration may describe (2^30: 4 GiB of float32 weights).
inline constexpr double max_parameters = double(std::size_t{1} << 30);
/// The most values one sample (an event) of a network may hold (2^32: 16 GiB of float32).
inline constexpr std::size_t max_event_elements = std::size_t{1} << 32;

/// Throws `sda::error` naming `who` unless `event` is a shape of at most `max_event_elements`
/// values (none of its extents 0) and `parameters`, an estimate of what the layers would
/// allocate, is at most `max_parameters`.
inline void require_sane_size(const char* who, const Shape& event, double parameters) {
    const std::size_t n = element_count_checked(event, who);
    sda::detail::require(n > 0 && n <= max_event_elements, who, ": event ", format_shape(event),
                         " must hold from 1 to 2^32 values");
    sda::detail::require(parameters <= max_parameters, who, ": this architecture would have about ", parameters,
                         " parameters, above the limit of 2^30");
}

namespace detail {

template <class T>
inline constexpr bool is_vector = false;
template <class E, class A>
inline constexpr bool is_vector<std::vector<E, A>> = true;

/// Reads `j` into `value` strictly (see the header comment); `who` and `name` name the field.
template <class Member>
void read_field(const nlohmann::json& j, Member& value, const char* who, const char* name) {
    const auto require = [&](bool ok, const char* expected) {
        if (!ok)  // printed only on failure: a context list may hold 2^24 numbers
            sda::detail::fail(who, ": the configuration's \"", name, "\" must be ", expected, ", not ",
                              j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).substr(0, 80));
    };
    if constexpr (std::is_same_v<Member, bool>) {
        require(j.is_boolean(), "true or false");
        value = j.get<bool>();
    } else if constexpr (std::is_integral_v<Member> && std::is_unsigned_v<Member>) {
        require(io::is_whole_nonnegative(j) && j.get<std::uint64_t>() <= max_config_integer,
                "a whole number from 0 to 2^24");
        value = static_cast<Member>(j.get<std::uint64_t>());
    } else if constexpr (std::is_floating_point_v<Member>) {
        require(j.is_number() && std::isfinite(j.get<double>()), "a finite number");
        value = j.get<Member>();
    } else if constexpr (is_vector<Member>) {
        constexpr bool sizes = std::is_integral_v<typename Member::value_type>;
        require(j.is_array() && j.size() <= (sizes ? max_config_list : max_config_values),
                sizes ? "a list of at most 64 sizes" : "a list of at most 2^24 numbers");
        value.assign(j.size(), typename Member::value_type{});
        for (std::size_t i = 0; i < j.size(); ++i) read_field(j[i], value[i], who, name);
    } else {
        // enumerations (by name) and strings, through their own from_json
        try {
            j.get_to(value);
        } catch (const nlohmann::json::exception& e) {
            sda::detail::fail(who, ": the configuration's \"", name, "\" is invalid: ", e.what());
        }
    }
}

}  // namespace detail

/// One entry of a configuration's field table.
template <class Config, class Member>
struct Field {
    const char* name;
    Member Config::*member;
};

template <class Config, class Member>
constexpr Field<Config, Member> field(const char* name, Member Config::*member) {
    return {name, member};
}

/// A configuration: `Config::kind` names the architecture, `Config::fields()` lists every field.
template <class Config>
concept FieldTable = requires(const Config& c) {
    { Config::kind } -> std::convertible_to<const char*>;
    std::tuple_size<decltype(Config::fields())>::value;
};

/// {"kind": Config::kind, field: value, ...}.
template <FieldTable Config>
nlohmann::json config_to_json(const Config& config) {
    nlohmann::json j{{"kind", Config::kind}};
    std::apply([&](const auto&... f) { ((j[f.name] = config.*(f.member)), ...); }, Config::fields());
    return j;
}

/// The configuration `j` describes. Throws `sda::error` naming `who` when "kind" is not
/// `Config::kind`, when a field is missing or of the wrong type, or when `j` has a key the
/// table does not know (a misspelt field is an error, not a default).
template <FieldTable Config>
Config config_from_json(const nlohmann::json& j, const char* who) {
    sda::detail::require(j.is_object(), who, ": the configuration is not a JSON object");
    sda::detail::require(j.contains("kind") && j.at("kind").is_string(), who,
                         ": the configuration does not say its kind (expected \"kind\": \"", Config::kind, "\")");
    const std::string kind = j.at("kind").get<std::string>();
    sda::detail::require(kind == Config::kind, who, ": a configuration of kind \"", kind, "\", not \"", Config::kind,
                         "\"");
    Config config;
    std::apply(
        [&](const auto&... f) {
            ((sda::detail::require(j.contains(f.name), who, ": the configuration has no \"", f.name, "\""),
              detail::read_field(j.at(f.name), config.*(f.member), who, f.name)),
             ...);
        },
        Config::fields());
    for (const auto& item : j.items()) {
        const std::string& key = item.key();
        bool listed = key == "kind";
        std::apply([&](const auto&... f) { ((listed = listed || key == f.name), ...); }, Config::fields());
        sda::detail::require(listed, who, ": the configuration has an unknown field \"", key.substr(0, 80), "\"");
    }
    return config;
}

/// Field-by-field equality over the whole table.
template <FieldTable Config>
bool config_equal(const Config& a, const Config& b) {
    return std::apply([&](const auto&... f) { return ((a.*(f.member) == b.*(f.member)) && ...); }, Config::fields());
}

}  // namespace sda::nn
