// Validation of Command API requests: JSON bodies of bounded depth, field readers that collect
// every error, and the request bodies read into domain commands.

#include "command/validation.hpp"

#include <algorithm>
#include <set>

#include "domain/ids.hpp"

namespace ordo::command {

std::optional<nlohmann::json> parse_body(std::string_view body, std::string& error) {
    constexpr int kMaxDepth = 32;
    try {
        nlohmann::json::parser_callback_t limit_depth = [](int depth, nlohmann::json::parse_event_t,
                                                           nlohmann::json&) {
            if (depth > kMaxDepth) throw std::invalid_argument("nested deeper than 32 levels");
            return true;
        };
        return nlohmann::json::parse(body, limit_depth);
    } catch (const nlohmann::json::exception& e) {
        // parse_error, and out_of_range for a number beyond a double ("1e999"), which the
        // depth callback makes the parser throw too (found by fuzzing: it was a 500).
        error = e.what();
    } catch (const std::invalid_argument& e) {
        error = e.what();
    }
    return std::nullopt;
}

bool is_json_content_type(const std::optional<std::string>& content_type) {
    if (!content_type) return false;
    std::string value = content_type->substr(0, content_type->find(';'));
    value.erase(std::remove(value.begin(), value.end(), ' '), value.end());
    std::transform(value.begin(), value.end(), value.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return value == "application/json";
}

FieldReader::FieldReader(const nlohmann::json& object, std::vector<FieldError>& errors,
                         std::string prefix)
    : object_{object}, errors_{errors}, prefix_{std::move(prefix)} {}

std::optional<std::int64_t> FieldReader::integer(const char* name, std::int64_t min,
                                                 std::int64_t max, bool required) {
    auto it = object_.find(name);
    auto range = "must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
    if (it == object_.end() || it->is_null()) {
        if (required) errors_.push_back({field(name), "is required; " + range});
        return std::nullopt;
    }
    if (it->is_number_unsigned()) {
        auto v = it->get<std::uint64_t>();
        if (v <= static_cast<std::uint64_t>(max) && static_cast<std::int64_t>(v) >= min) {
            return static_cast<std::int64_t>(v);
        }
    } else if (it->is_number_integer()) {
        auto v = it->get<std::int64_t>();
        if (v >= min && v <= max) return v;
    }
    errors_.push_back({field(name), range});
    return std::nullopt;
}

std::optional<std::string> FieldReader::id(const char* name, bool required) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) {
        if (required) errors_.push_back({field(name), "is required"});
        return std::nullopt;
    }
    if (!it->is_string() || !domain::is_valid_id(it->get_ref<const std::string&>())) {
        errors_.push_back({field(name), "must be 1 to 64 characters of [A-Za-z0-9._-]"});
        return std::nullopt;
    }
    return it->get<std::string>();
}

std::optional<std::string> FieldReader::text(const char* name, std::size_t max_length,
                                             bool required) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) {
        if (required) errors_.push_back({field(name), "is required"});
        return std::nullopt;
    }
    if (!it->is_string() || it->get_ref<const std::string&>().size() > max_length) {
        errors_.push_back(
            {field(name), "must be a string of at most " + std::to_string(max_length) + " bytes"});
        return std::nullopt;
    }
    // PostgreSQL's jsonb cannot hold U+0000, and no control character belongs in free text.
    const auto& value = it->get_ref<const std::string&>();
    if (std::any_of(value.begin(), value.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 && c != '\t'; })) {
        errors_.push_back({field(name), "must not contain control characters"});
        return std::nullopt;
    }
    return it->get<std::string>();
}

const nlohmann::json* FieldReader::array(const char* name) {
    auto it = object_.find(name);
    if (it == object_.end() || !it->is_array()) {
        errors_.push_back({field(name), "must be an array"});
        return nullptr;
    }
    return &*it;
}

void FieldReader::only(std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : object_.items()) {
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            // A field named "" still gets a name a client can read in the answer.
            errors_.push_back(
                {key.empty() ? field("\"\"") : field(key.c_str()), "is not a known field"});
        }
    }
}

bool is_valid_idempotency_key(std::string_view key) {
    return !key.empty() && key.size() <= 255 &&
           std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

Decoded<domain::inventory::ReceiveStock> decode_receive_stock(const std::string& sku,
                                                              const nlohmann::json& body) {
    std::vector<FieldError> errors;
    FieldReader fields{body, errors};
    auto quantity = fields.integer("quantity", 1, domain::inventory::kMaxReceiptQuantity);
    fields.only({"quantity"});
    if (!errors.empty()) return errors;
    return domain::inventory::ReceiveStock{sku, *quantity};
}

Decoded<domain::payments::Deposit> decode_deposit(const std::string& account_id,
                                                  const nlohmann::json& body) {
    std::vector<FieldError> errors;
    FieldReader fields{body, errors};
    auto amount = fields.integer("amount", 1, domain::payments::kMaxDepositAmount);
    fields.only({"amount"});
    if (!errors.empty()) return errors;
    return domain::payments::Deposit{account_id, *amount};
}

Decoded<domain::orders::PlaceOrder> decode_place_order(const nlohmann::json& body,
                                                       const std::function<std::string()>& new_id) {
    std::vector<FieldError> errors;
    FieldReader fields{body, errors};
    auto order_id = fields.id("order_id", false);
    auto customer_id = fields.id("customer_id");
    auto account_id = fields.id("account_id");
    // The currency of every line's unit_price; optional, so clients from before prices named
    // one keep working (their orders are in the default currency, as they always were).
    auto currency = fields.text("currency", 3, false);
    if (currency && !domain::orders::is_currency(*currency)) {
        errors.push_back({"currency", "must be an ISO 4217 code of three upper-case letters"});
        currency.reset();
    }
    fields.only({"order_id", "customer_id", "account_id", "currency", "lines"});
    std::vector<domain::orders::OrderLine> lines;
    if (const auto* items = fields.array("lines")) {
        if (items->empty() || items->size() > domain::orders::kMaxLines) {
            errors.push_back({"lines", "must hold 1 to 100 lines"});
        } else {
            std::set<std::string> skus;
            for (std::size_t i = 0; i < items->size(); ++i) {
                auto prefix = "lines[" + std::to_string(i) + "].";
                const auto& item = (*items)[i];
                if (!item.is_object()) {
                    errors.push_back({"lines[" + std::to_string(i) + "]", "must be an object"});
                    continue;
                }
                FieldReader line{item, errors, prefix};
                auto sku = line.id("sku");
                auto quantity = line.integer("quantity", 1, domain::orders::kMaxLineQuantity);
                auto price = line.integer("unit_price", 0, domain::orders::kMaxUnitPrice);
                line.only({"sku", "quantity", "unit_price"});
                if (sku && !skus.insert(*sku).second) {
                    errors.push_back({prefix + "sku", "appears in more than one line"});
                }
                if (sku && quantity && price) {
                    lines.push_back(
                        {*sku, *quantity, *price,
                         currency.value_or(std::string{domain::orders::kDefaultCurrency})});
                }
            }
        }
    }
    if (!errors.empty()) return errors;
    return domain::orders::PlaceOrder{order_id ? *order_id : new_id(), *customer_id, *account_id,
                                      std::move(lines)};
}

Decoded<Cancellation> decode_cancellation(const std::string& order_id, const nlohmann::json& body,
                                          const std::optional<std::string>& if_match) {
    std::vector<FieldError> errors;
    FieldReader fields{body, errors};
    auto reason = fields.text("reason", 200, false);
    fields.only({"reason"});
    std::optional<std::int64_t> version;
    if (if_match && *if_match != "*") {
        const auto& v = *if_match;
        bool quoted =
            v.size() >= 3 && v.front() == '"' && v.back() == '"' &&
            std::all_of(v.begin() + 1, v.end() - 1, [](char c) { return c >= '0' && c <= '9'; }) &&
            v.size() < 21;
        if (!quoted) {
            errors.push_back({"If-Match", "must be a version in quotes, like \"3\""});
        } else {
            version = std::stoll(v.substr(1, v.size() - 2));
        }
    }
    if (!errors.empty()) return errors;
    return Cancellation{{order_id, reason.value_or("")}, version};
}

}  // namespace ordo::command
