#pragma once

// The reader the domain codecs decode event and snapshot payloads with.

#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace ordo::domain::detail {

// Reads typed fields from an event payload without throwing: a missing or mistyped field
// yields a neutral value and marks the reader failed, so a decoder can build the event in
// one expression and then check ok(). Unknown extra fields are ignored (forward
// compatibility with newer writers).
class PayloadReader {
   public:
    explicit PayloadReader(const nlohmann::json& payload)
        : payload_(payload), ok_(payload.is_object()) {}

    std::string text(std::string_view key) {
        const nlohmann::json* field = find(key);
        if (field == nullptr || !field->is_string()) return fail<std::string>();
        return field->get<std::string>();
    }

    // Integers only: 3.0 or "3" is malformed, and unsigned values beyond int64 do not wrap.
    std::int64_t integer(std::string_view key) {
        const nlohmann::json* field = find(key);
        if (field == nullptr || !field->is_number_integer()) return fail<std::int64_t>();
        if (field->is_number_unsigned() &&
            field->get<std::uint64_t>() >
                static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return fail<std::int64_t>();
        }
        return field->get<std::int64_t>();
    }

    const nlohmann::json& array(std::string_view key) {
        static const nlohmann::json kEmpty = nlohmann::json::array();
        const nlohmann::json* field = find(key);
        if (field == nullptr || !field->is_array()) {
            ok_ = false;
            return kEmpty;
        }
        return *field;
    }

    void fail() { ok_ = false; }
    bool ok() const { return ok_; }

   private:
    const nlohmann::json* find(std::string_view key) const {
        if (!payload_.is_object()) return nullptr;
        const auto it = payload_.find(key);
        return it == payload_.end() ? nullptr : &*it;
    }

    template <class T>
    T fail() {
        ok_ = false;
        return T{};
    }

    const nlohmann::json& payload_;
    bool ok_;
};

// The decoded event, if every field the reader was asked for was present and well-typed.
template <class Event, class Decoded>
std::optional<Event> decoded_if_ok(const PayloadReader& in, Decoded event) {
    if (!in.ok()) return std::nullopt;
    return Event{std::move(event)};
}

// Order ids as a JSON array. A set never holds one twice, so a repeat means the snapshot was
// not written by encode_state: malformed rather than silently merged.
inline std::set<std::string> read_order_ids(PayloadReader& in, std::string_view key) {
    std::set<std::string> order_ids;
    for (const nlohmann::json& element : in.array(key)) {
        if (!element.is_string() || !order_ids.insert(element.get<std::string>()).second) {
            in.fail();
        }
    }
    return order_ids;
}

// An array of {order_id, <amount_key>} rather than an object keyed by order id, so each
// amount goes through PayloadReader's integer checks like every event field.
inline std::map<std::string, std::int64_t> read_amounts_by_order(PayloadReader& in,
                                                                 std::string_view key,
                                                                 std::string_view amount_key) {
    std::map<std::string, std::int64_t> amounts;
    for (const nlohmann::json& element : in.array(key)) {
        PayloadReader entry(element);
        std::string order_id = entry.text("order_id");
        const std::int64_t amount = entry.integer(amount_key);
        if (!entry.ok() || !amounts.emplace(std::move(order_id), amount).second) in.fail();
    }
    return amounts;
}

}  // namespace ordo::domain::detail
