// sda/nn/config.hpp: network configurations described by one field table each.
//
// A configuration struct lists its fields once, in `static constexpr auto fields()`
// (name and member pointer), and names its architecture in `kind`; its JSON form
// (what checkpoints store as "sda.config"), its parsing and its equality all come
// from that table, so a field cannot be serialised but left out of equality, or
// the reverse. Enumerations convert through the `to_json`/`from_json` overloads
// found next to them (their names, never silent defaults).
#pragma once

#include <cstddef>
#include <string>
#include <concepts>
#include <tuple>

#include <nlohmann/json.hpp>

#include "sda/core/error.hpp"

namespace sda::nn {

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
    std::size_t known = 1;  // "kind"
    try {
        std::apply(
            [&](const auto&... f) {
                ((sda::detail::require(j.contains(f.name), who, ": the configuration has no \"", f.name, "\""),
                  j.at(f.name).get_to(config.*(f.member)), ++known),
                 ...);
            },
            Config::fields());
    } catch (const nlohmann::json::exception& e) {
        sda::detail::fail(who, ": invalid configuration: ", e.what());
    }
    if (known != j.size()) {
        for (const auto& [key, value] : j.items()) {
            bool listed = key == "kind";
            std::apply([&](const auto&... f) { ((listed = listed || key == f.name), ...); }, Config::fields());
            sda::detail::require(listed, who, ": the configuration has an unknown field \"", key, "\"");
        }
    }
    return config;
}

/// Field-by-field equality over the whole table.
template <FieldTable Config>
bool config_equal(const Config& a, const Config& b) {
    return std::apply([&](const auto&... f) { return ((a.*(f.member) == b.*(f.member)) && ...); }, Config::fields());
}

}  // namespace sda::nn
