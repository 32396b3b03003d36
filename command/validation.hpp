#pragma once

// Validation of the Command API's requests.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "platform/http/http.hpp"

// Request validation for the command API. Every problem is collected with the field it
// concerns, so a client learns everything that is wrong in one round trip.
namespace ordo::command {

using platform::http::FieldError;

// Parses a JSON body no deeper than 32 levels; nullopt (and `error`) when it is not JSON.
std::optional<nlohmann::json> parse_body(std::string_view body, std::string& error);

// Whether the Content-Type is application/json (parameters such as charset allowed).
bool is_json_content_type(const std::optional<std::string>& content_type);

class FieldReader {
   public:
    FieldReader(const nlohmann::json& object, std::vector<FieldError>& errors,
                std::string prefix = {});

    std::optional<std::int64_t> integer(const char* name, std::int64_t min, std::int64_t max,
                                        bool required = true);
    std::optional<std::string> id(const char* name, bool required = true);
    std::optional<std::string> text(const char* name, std::size_t max_length, bool required = true);
    const nlohmann::json* array(const char* name);
    // Unknown fields are rejected, so a misspelt optional field cannot pass unnoticed.
    void only(std::initializer_list<std::string_view> known);

   private:
    std::string field(const char* name) const { return prefix_ + name; }
    const nlohmann::json& object_;
    std::vector<FieldError>& errors_;
    std::string prefix_;
};

// 1 to 255 visible ASCII characters.
bool is_valid_idempotency_key(std::string_view key);

// The Command API's request bodies read into domain commands: every field error, or the
// command. Pure (no database, no server), so that they are unit-tested and fuzzed alone.
// Path ids are checked by the caller before; `body` is a JSON object.
template <class Command>
using Decoded = std::variant<Command, std::vector<FieldError>>;

Decoded<domain::inventory::ReceiveStock> decode_receive_stock(const std::string& sku,
                                                              const nlohmann::json& body);
Decoded<domain::payments::Deposit> decode_deposit(const std::string& account_id,
                                                  const nlohmann::json& body);
// The order id is the body's `order_id`, or `new_id()` when it has none.
Decoded<domain::orders::PlaceOrder> decode_place_order(const nlohmann::json& body,
                                                       const std::function<std::string()>& new_id);
struct Cancellation {
    domain::orders::RequestCancellation command;
    std::optional<std::int64_t> if_match;  // the order version the client expects
};
// `if_match`: the If-Match header, "\"<version>\"" or "*" (no expectation).
Decoded<Cancellation> decode_cancellation(const std::string& order_id, const nlohmann::json& body,
                                          const std::optional<std::string>& if_match);

}  // namespace ordo::command
