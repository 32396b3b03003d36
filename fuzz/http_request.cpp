// HTTP requests as the server reads them: Beast's parser with the server's limits, then the
// target split, routing over the Command and Query API's route table, the bearer-token check
// and the access decision, then the command body decoders. Properties:
//  - nothing crashes, throws out, or leaks;
//  - a request is allowed onto a scoped route only with a token holding that scope;
//  - a path that routes is in its one spelling: the route's pattern filled with the decoded
//    parameters, percent-encoded, routes to the same route with the same parameters.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "command/validation.hpp"
#include "fuzz/fuzz.hpp"
#include "platform/http/api_tokens.hpp"
#include "platform/http/http.hpp"

namespace {

using namespace ordo::platform::http;
namespace bhttp = boost::beast::http;

Router make_router() {
    Router router;
    auto none = [](Request&) { return Response{}; };
    for (const char* p : {"/v1/inventory/{sku}/receipts", "/v1/accounts/{account_id}/deposits",
                          "/v1/orders", "/v1/orders/{order_id}/cancel"}) {
        router.add("POST", p, Access::commands, none);
    }
    for (const char* p :
         {"/v1/orders/{order_id}", "/v1/orders", "/v1/inventory/{sku}", "/v1/accounts/{account_id}",
          "/v1/sagas/{order_id}", "/v1/traces/{trace_id}"}) {
        router.add("GET", p, Access::read, none);
    }
    router.add("GET", "/v1/admin/projections", Access::admin, none);
    router.add("GET", "/v1/admin/dead-letters", Access::admin, none);
    router.add("POST", "/v1/admin/dead-letters/{id}/retry", Access::admin, none);
    router.add("POST", "/v1/admin/dead-letters/{id}/skip", Access::admin, none);
    for (const char* p : {"/healthz", "/readyz", "/metrics"})
        router.add("GET", p, Access::open, none);
    return router;
}

const Router& router() {
    static const Router r = make_router();
    return r;
}

const TokenSet& tokens() {
    static const TokenSet t =
        TokenSet::parse("reader read " + to_hex(sha256("read-token")) + "\n" + "writer commands " +
                        to_hex(sha256("command-token")) + "\n" + "operator admin " +
                        to_hex(sha256("admin-token")) + "\n");
    return t;
}

std::string encode_segment(const std::string& value) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : value) {
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '~';
        if (plain) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

// The route's pattern with its parameters filled in, each percent-encoded.
std::string fill(const std::string& pattern, const std::map<std::string, std::string>& params) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size();) {
        if (pattern[i] == '{') {
            auto close = pattern.find('}', i);
            out += encode_segment(params.at(pattern.substr(i + 1, close - i - 1)));
            i = close + 1;
        } else {
            out += pattern[i++];
        }
    }
    return out;
}

void decode_body(const Router::Match& match, const Request& request) {
    if (request.method != "POST") return;
    std::string error;
    auto body = ordo::command::parse_body(request.body, error);
    if (!body || !body->is_object()) return;
    if (match.route == "/v1/inventory/{sku}/receipts") {
        ordo::command::decode_receive_stock(match.params.at("sku"), *body);
    } else if (match.route == "/v1/accounts/{account_id}/deposits") {
        ordo::command::decode_deposit(match.params.at("account_id"), *body);
    } else if (match.route == "/v1/orders") {
        ordo::command::decode_place_order(*body, [] { return std::string("generated"); });
    } else if (match.route == "/v1/orders/{order_id}/cancel") {
        ordo::command::decode_cancellation(match.params.at("order_id"), *body,
                                           request.header("if-match"));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(1 << 20);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (used < size && !parser.is_done()) {
        auto n = parser.put(boost::asio::buffer(data + used, size - used), ec);
        if (ec || n == 0) break;
        used += n;
    }
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;

    auto& msg = parser.get();
    Request request;
    request.method = std::string(msg.method_string());
    request.target = std::string(msg.target());
    for (const auto& field : msg) {
        std::string name{field.name_string()};
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        request.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    request.body = msg.body();

    auto target = parse_target(request.target);
    if (!target) return 0;
    request.path = target->path;
    request.query = target->query;

    auto match = router().match(request.method, request.path);
    auto caller = tokens().authenticate(request.header("authorization"));
    if (caller) {
        bool known = false;
        for (const auto& e : tokens().entries()) known |= e.name == caller->name;
        ORDO_FUZZ_CHECK(known);
    }
    auto verdict = decide_access(match, true, caller ? &*caller : nullptr);
    if (match.kind == Router::Match::Kind::found) {
        if (verdict == Verdict::allowed)
            ORDO_FUZZ_CHECK(caller ? caller->may(match.access) : match.access == Access::open);
        // One spelling: the canonical form routes to the same place.
        auto again = router().match(request.method, fill(match.route, match.params));
        ORDO_FUZZ_CHECK(again.kind == Router::Match::Kind::found && again.route == match.route &&
                        again.params == match.params);
        for (const auto& [name, value] : match.params) {
            ORDO_FUZZ_CHECK(!value.empty() && value.find('/') == std::string::npos &&
                            value != "." && value != "..");
        }
        if (verdict == Verdict::allowed) decode_body(match, request);
    } else if (verdict == Verdict::allowed) {
        // Only a caller with some token learns that a path is not there or is malformed.
        ORDO_FUZZ_CHECK(caller.has_value() ||
                        (match.kind == Router::Match::Kind::method_not_allowed &&
                         match.access == Access::open));
    }
    return 0;
}
