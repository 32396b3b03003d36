// The Query API's routes: strict request reading, the prepared list queries and their
// checksummed cursor, ETag answers, and the consistency wait before a read.
#include "query/service.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "domain/ids.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/hops.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/utc_time.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/dependency_failure.hpp"
#include "query/progress_watch.hpp"
#include "query/request_reader.hpp"

namespace ordo::query {
namespace {

using eventstore::Checkpoint;
using nlohmann::json;
using platform::http::Access;
using platform::http::FieldError;
using platform::http::problem;
using platform::http::Request;
using platform::http::Response;

constexpr std::int64_t kDefaultLimit = 20;
constexpr std::int64_t kMaxLimit = 100;
// A trace is one request and the saga it starts: dozens of events. A client can reuse a
// traceparent on any number of commands, so the answer is bounded all the same.
constexpr std::int64_t kMaxTraceEvents = 10000;

const std::string kOrderColumns =
    "order_id, customer_id, account_id, status, lines::text, total, cancel_reason, version, " +
    platform::sql_utc("updated_at") + ", placed_position";

// The list query in its four shapes (status filter or not, first page or after a cursor),
// each prepared, so that every shape gets a plan that uses the (customer_id[, status],
// placed_position DESC, order_id) indexes. The redundant `placed_position <= $n` lets the
// index scan start at the cursor.
std::string list_orders_sql(bool with_status, bool after_cursor) {
    std::string sql = "SELECT " + kOrderColumns + " FROM read.orders WHERE customer_id = $1";
    int next = 2;
    if (with_status) sql += " AND status = $" + std::to_string(next++);
    if (after_cursor) {
        auto pos = "$" + std::to_string(next++);
        auto id = "$" + std::to_string(next++);
        sql += " AND placed_position <= " + pos + " AND (placed_position < " + pos +
               " OR order_id > " + id + ")";
    }
    sql += " ORDER BY placed_position DESC, order_id LIMIT $" + std::to_string(next);
    return sql;
}

std::string list_orders_statement(bool with_status, bool after_cursor) {
    return std::string{"query_list_orders"} + (with_status ? "_status" : "") +
           (after_cursor ? "_after" : "");
}

// --- the list cursor ---------------------------------------------------------------------

// Opaque to clients: base64url (no padding) of "<placed_position>:<order_id>:<check>", the
// key of the last item of the page and an FNV-1a checksum of it in hex. Decoding is strict
// and the checksum catches an edited cursor, so it is refused rather than read as some
// other position. The checksum is no secret: a forged cursor still only moves a client
// within the list it may read anyway.
struct Cursor {
    std::int64_t placed_position = 0;
    std::string order_id;
};

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view bytes) {
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        buffer = (buffer << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kBase64Url[(buffer >> bits) & 0x3f]);
        }
    }
    if (bits > 0) out.push_back(kBase64Url[(buffer << (6 - bits)) & 0x3f]);
    return out;
}

// nullopt for characters outside the alphabet, padding, an impossible length or non-zero
// trailing bits: each text decodes from exactly one encoding.
std::optional<std::string> from_base64url(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (char c : text) {
        auto digit = kBase64Url.find(c);
        if (digit == std::string_view::npos) return std::nullopt;
        buffer = (buffer << 6) | static_cast<std::uint32_t>(digit);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buffer >> bits) & 0xff));
        }
    }
    if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

std::string checksum(std::string_view text) {
    std::uint32_t h = 2166136261u;
    for (char c : text) {
        h ^= static_cast<std::uint8_t>(c);
        h *= 16777619u;
    }
    constexpr std::string_view kHex = "0123456789abcdef";
    std::string out(8, '0');
    for (int i = 7; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = kHex[h & 0xf];
    return out;
}

std::string encode_cursor(const Cursor& cursor) {
    auto key = std::to_string(cursor.placed_position) + ":" + cursor.order_id;
    return base64url(key + ":" + checksum(key));
}

std::optional<Cursor> decode_cursor(std::string_view text) {
    if (text.empty() || text.size() > 160) return std::nullopt;
    auto bytes = from_base64url(text);
    if (!bytes) return std::nullopt;
    auto last = bytes->rfind(':');
    if (last == std::string::npos) return std::nullopt;
    std::string_view key{bytes->data(), last};
    if (std::string_view{*bytes}.substr(last + 1) != checksum(key)) return std::nullopt;
    auto colon = key.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    auto digits = key.substr(0, colon);
    Cursor cursor;
    auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), cursor.placed_position);
    if (ec != std::errc{} || end != digits.data() + digits.size() || cursor.placed_position < 0) {
        return std::nullopt;
    }
    cursor.order_id = std::string{key.substr(colon + 1)};
    if (!domain::is_valid_id(cursor.order_id)) return std::nullopt;
    return cursor;
}

// --- responses ---------------------------------------------------------------------------

// Whether If-None-Match names `etag` (weak comparison, RFC 9110 13.1.2). Entity tags this
// server makes hold no commas, so splitting on them is exact for ours; a foreign tag that
// does simply never matches.
bool none_match_hits(const std::optional<std::string>& header, std::string_view etag) {
    if (!header) return false;
    std::string_view list{*header};
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
            item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (item == "*") return true;
        if (item.substr(0, 2) == "W/") item.remove_prefix(2);
        if (item == etag) return true;
    }
    return false;
}

// A single resource: 200 with ETag "<version>", or 304 when the client already has it.
Response versioned(const Request& request, std::int64_t version, const json& body) {
    auto etag = "\"" + std::to_string(version) + "\"";
    Response response;
    if (none_match_hits(request.header("if-none-match"), etag)) {
        response.status = 304;
        response.content_type.clear();
    } else {
        response = Response::json(200, body);
    }
    response.headers.emplace_back("ETag", etag);
    return response;
}

json span_json(const StoredSpan& span) {
    json attributes = json::object();
    for (const auto& [key, value] : span.attributes) attributes[key] = value;
    return {
        {"span_id", span.span_id},
        {"parent_span_id", span.parent_span_id.empty() ? json(nullptr) : json(span.parent_span_id)},
        {"service", span.service},
        {"name", span.name},
        {"kind", span.kind},
        {"start_ns", span.start_ns},
        {"end_ns", span.end_ns},
        {"duration_ms", static_cast<double>(span.end_ns - span.start_ns) / 1e6},
        {"error", span.error},
        {"status_message", span.status_message},
        {"attributes", std::move(attributes)}};
}

json nullable_text(const pqxx::field& f) {
    return f.is_null() ? json(nullptr) : json(f.as<std::string>());
}

// The columns of kOrderColumns, in order.
json order_json(const pqxx::row& row) {
    json order;
    order["order_id"] = row[0].as<std::string>();
    order["customer_id"] = row[1].as<std::string>();
    order["account_id"] = row[2].as<std::string>();
    order["status"] = row[3].as<std::string>();
    order["lines"] = json::parse(row[4].as<std::string>());
    order["total"] = row[5].as<std::int64_t>();
    order["cancel_reason"] = nullable_text(row[6]);
    order["version"] = row[7].as<std::int64_t>();
    order["updated_at"] = row[8].as<std::string>();
    return order;
}

}  // namespace

QueryService::QueryService(platform::pg::Pool& pool, int partitions, platform::Logger log,
                           std::size_t max_waiting, platform::metrics::Registry* metrics,
                           const SpanStore* spans)
    : pool_{pool},
      partitions_{partitions},
      log_{std::move(log)},
      token_wait_{metrics ? &platform::metrics::hop(*metrics, "query_token_wait") : nullptr},
      spans_{spans},
      watch_{pool, partitions, max_waiting, log_.with_component("consistency")} {}

void QueryService::prepare(pqxx::connection& conn) {
    conn.prepare("query_order",
                 "SELECT " + kOrderColumns + " FROM read.orders WHERE order_id = $1");
    for (bool with_status : {false, true}) {
        for (bool after : {false, true}) {
            conn.prepare(list_orders_statement(with_status, after),
                         list_orders_sql(with_status, after));
        }
    }
    conn.prepare("query_inventory",
                 "SELECT sku, on_hand, reserved, version FROM read.inventory WHERE sku = $1");
    conn.prepare(
        "query_account",
        "SELECT account_id, balance, held, version FROM read.accounts WHERE account_id = $1");
    conn.prepare("query_saga",
                 "SELECT saga_id, order_id, mode, status, steps::text, version, processes::text, "
                 "trace_id "
                 "FROM read.sagas "
                 "WHERE order_id = $1");
    conn.prepare(
        "query_trace",
        "SELECT stream_id, stream_version, event_type, transaction_id::text, global_position, " +
            platform::sql_utc("recorded_at") +
            ", causation_id, correlation_id FROM read.trace_events AS t WHERE trace_id = $1 "
            // Qualified: a bare name would sort by the output column, the text.
            "ORDER BY t.transaction_id, t.global_position LIMIT $2");
    // Lag in events would need the head of ordo.events, which the query role cannot see
    // (least privilege); the projector can publish it as a metric instead. lag_seconds is
    // the age of the last event a partition applied: on a quiet system it grows although
    // nothing is pending, so read it together with the checkpoint.
    // The projector reports what the reader cannot see (lag in events, the age of the
    // oldest pending event, its breaker) in read.projection_status.
    // The relay leaders as each last reported itself (every 2 s while it leads): a row not
    // seen for long has no live leader.
    conn.prepare("query_relays",
                 "SELECT shard, leader, " + platform::sql_utc("leader_since") +
                     ", horizon_hidden_seconds, " + platform::sql_utc("seen_at") +
                     ", extract(epoch FROM now() - seen_at)::float8, transaction_id, "
                     "global_position, " +
                     platform::sql_utc("updated_at") + " FROM read.relays ORDER BY shard");
    conn.prepare("query_projections",
                 "SELECT p.projection, p.partition, p.owner, p.transaction_id, "
                 "p.global_position, CASE WHEN p.last_event_at IS NOT NULL "
                 "THEN greatest(0, extract(epoch FROM now() - p.last_event_at))::float8 END, " +
                     platform::sql_utc("p.updated_at") +
                     ", s.breaker, s.lag_events, s.lag_seconds, s.halted_on, " +
                     platform::sql_utc("s.updated_at") +
                     ", (SELECT count(*) FROM read.dead_letters d WHERE d.projection = "
                     "p.projection AND d.partition = p.partition AND d.status IN ('parked', "
                     "'retry_requested', 'skip_requested')), "
                     "coalesce(s.breaker_transitions, '[]')::text "
                     "FROM read.projection_progress p LEFT JOIN read.projection_status s "
                     "ON s.projection = p.projection AND s.partition = p.partition "
                     "ORDER BY p.projection, p.partition");
    // Filters are optional: a NULL parameter matches everything.
    conn.prepare("query_dead_letters",
                 "SELECT id, projection, partition, transaction_id, global_position, stream_id, "
                 "stream_version, event_id, event_type, payload::text, metadata::text, error, "
                 "attempts, policy, status, " +
                     platform::sql_utc("recorded_at") + ", " + platform::sql_utc("created_at") +
                     ", " + platform::sql_utc("updated_at") + ", " +
                     platform::sql_utc("requested_at") + ", " + platform::sql_utc("resolved_at") +
                     " FROM read.dead_letters WHERE ($1::text IS NULL OR projection = $1) "
                     "AND ($2::text IS NULL OR status = $2) AND ($3::int IS NULL OR partition = "
                     "$3) AND id > $4 ORDER BY id LIMIT $5");
    conn.prepare("query_progress_of",
                 "SELECT projection, partition, transaction_id, global_position, shard "
                 "FROM read.projection_progress "
                 "WHERE projection = $1 AND partition >= 0 AND partition < $2");
    conn.prepare("query_progress_every",
                 "SELECT projection, partition, transaction_id, global_position, shard "
                 "FROM read.projection_progress WHERE partition >= 0 AND partition < $1");
}

void QueryService::register_routes(platform::http::Router& router) {
    router.add("GET", "/v1/orders/{order_id}", Access::read,
               [this](Request& r) { return get_order(r); });
    router.add("GET", "/v1/orders", Access::read, [this](Request& r) { return list_orders(r); });
    router.add("GET", "/v1/inventory/{sku}", Access::read,
               [this](Request& r) { return get_inventory(r); });
    router.add("GET", "/v1/accounts/{account_id}", Access::read,
               [this](Request& r) { return get_account(r); });
    router.add("GET", "/v1/sagas/{order_id}", Access::read,
               [this](Request& r) { return get_saga(r); });
    router.add("GET", "/v1/traces/{trace_id}", Access::read,
               [this](Request& r) { return get_trace(r); });
    router.add("GET", "/v1/admin/projections", Access::admin,
               [this](Request& r) { return list_projections(r); });
    router.add("GET", "/v1/admin/dead-letters", Access::admin,
               [this](Request& r) { return list_dead_letters(r); });
    router.add("GET", "/v1/admin/relays", Access::admin,
               [this](Request& r) { return list_relays(r); });
}

// --- consistency -------------------------------------------------------------------------

bool QueryService::has_passed(const Reads& reads, Checkpoint token, int shard) {
    return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
        return read_progress(tx, partitions_, reads.projection).passed(reads, token, shard);
    });
}

Response QueryService::guarded(const platform::TraceContext& trace,
                               const std::function<Response()>& answer) {
    try {
        return answer();
    } catch (...) {
        const std::string unavailable = "the read models are unavailable; retry shortly";
        return platform::answer_dependency_failure(
            log_, trace,
            {.unavailable = unavailable, .overloaded = unavailable, .outcome_unknown = {}});
    }
}

Response QueryService::serve(const Request& request,
                             const std::optional<eventstore::ShardToken>& shard_token,
                             std::chrono::milliseconds wait, const Reads& reads,
                             std::function<Response()> answer) {
    // What the token waits for: the partitions read whose checkpoints are in its shard's
    // commit order (Progress::passed).
    std::optional<Checkpoint> token;
    const int shard = shard_token ? shard_token->shard : 0;
    if (shard_token) token = shard_token->at;
    // A read with a token observes how long its token took to pass, checked at once or
    // parked; reads that time out are not observed (they are answered 503).
    const auto arrived = std::chrono::steady_clock::now();
    auto observe_wait = [token_wait = token_wait_, arrived] {
        if (token_wait) {
            token_wait->observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - arrived).count());
        }
    };
    // Most tokens have passed already: only a request that must wait is parked.
    std::optional<bool> passed;
    if (token) {
        auto checked = guarded(request.trace, [&] {
            passed = has_passed(reads, *token, shard);
            return Response{};
        });
        if (!passed) return checked;  // the check itself failed
    }
    if (token && *passed) observe_wait();
    if (!token || *passed) return guarded(request.trace, answer);

    const auto deadline = std::chrono::steady_clock::now() + wait;
    return Response::later([this, reads, token = *token, shard, deadline, wait,
                            trace = request.trace, answer = std::move(answer),
                            observe_wait](const platform::http::Resume& resume) {
        auto woken = [this, reads, token, wait, trace, answer, resume,
                      observe_wait](ProgressWatch::Outcome outcome) {
            if (outcome == ProgressWatch::Outcome::passed) observe_wait();
            resume->resume([this, reads, token, wait, trace, answer, outcome] {
                switch (outcome) {
                    case ProgressWatch::Outcome::passed:
                        return guarded(trace, answer);
                    case ProgressWatch::Outcome::timed_out: {
                        auto response = problem(
                            503, "projection_lagging",
                            "the " + reads.projection + " projection has not reached " +
                                token.token() + " within " + std::to_string(wait.count()) + " ms");
                        response.headers.emplace_back("Retry-After", "1");
                        return response;
                    }
                    case ProgressWatch::Outcome::unavailable:
                        break;
                    case ProgressWatch::Outcome::stopped:
                        return problem(503, "unavailable", "the service is stopping");
                }
                return problem(503, "unavailable",
                               "the read models are unavailable; retry shortly");
            });
        };
        if (!watch_.park(reads, token, deadline, std::move(woken), shard)) {
            resume->resume([] {
                return problem(503, "unavailable",
                               "too many requests are waiting for their consistency token; "
                               "retry shortly");
            });
        }
    });
}

// --- routes ------------------------------------------------------------------------------

Response QueryService::get_order(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto id = in.path_id("order_id");
    auto consistency = in.consistency();
    in.only({"wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    Reads reads{"orders", platform::partition_of(domain::order_stream(*id), partitions_)};
    return serve(request, consistency.token, consistency.wait, reads, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            auto rows = tx.exec_prepared("query_order", *id);
            if (rows.empty()) return problem(404, "not_found", "no order " + *id);
            return versioned(request, rows[0][7].template as<std::int64_t>(), order_json(rows[0]));
        });
    });
}

Response QueryService::list_orders(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto customer = in.id("customer_id");
    auto status = in.one_of("status", {"pending", "confirmed", "cancelled"},
                            "must be pending, confirmed or cancelled");
    auto limit = in.integer("limit", 1, kMaxLimit, kDefaultLimit);
    std::optional<Cursor> cursor;
    if (const auto* text = in.query("cursor")) {
        cursor = decode_cursor(*text);
        if (!cursor) errors.push_back({"query.cursor", "must be a next_cursor of an earlier page"});
    }
    auto consistency = in.consistency();
    in.only({"customer_id", "status", "limit", "cursor", "wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    return serve(
        request, consistency.token, consistency.wait, Reads{"orders", std::nullopt}, [=, this] {
            return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
                // One row more than the page tells whether another page follows.
                const auto statement =
                    list_orders_statement(status.has_value(), cursor.has_value());
                pqxx::result rows;
                if (status && cursor) {
                    rows = tx.exec_prepared(statement, *customer, *status, cursor->placed_position,
                                            cursor->order_id, limit + 1);
                } else if (status) {
                    rows = tx.exec_prepared(statement, *customer, *status, limit + 1);
                } else if (cursor) {
                    rows = tx.exec_prepared(statement, *customer, cursor->placed_position,
                                            cursor->order_id, limit + 1);
                } else {
                    rows = tx.exec_prepared(statement, *customer, limit + 1);
                }
                const auto page =
                    std::min<std::size_t>(rows.size(), static_cast<std::size_t>(limit));
                json items = json::array();
                for (std::size_t i = 0; i < page; ++i) items.push_back(order_json(rows[i]));
                json next = nullptr;
                if (rows.size() > page) {
                    const auto& last = rows[page - 1];
                    next = encode_cursor(
                        {last[9].template as<std::int64_t>(), last[0].template as<std::string>()});
                }
                return Response::json(
                    200, {{"items", std::move(items)}, {"next_cursor", std::move(next)}});
            });
        });
}

Response QueryService::get_inventory(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto sku = in.path_id("sku");
    auto consistency = in.consistency();
    in.only({"wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    Reads reads{"inventory", platform::partition_of(domain::inventory_stream(*sku), partitions_)};
    return serve(request, consistency.token, consistency.wait, reads, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            auto rows = tx.exec_prepared("query_inventory", *sku);
            if (rows.empty())
                return problem(404, "not_found", "no stock was ever received for " + *sku);
            const auto& row = rows[0];
            auto on_hand = row[1].template as<std::int64_t>();
            auto reserved = row[2].template as<std::int64_t>();
            return versioned(request, row[3].template as<std::int64_t>(),
                             {{"sku", row[0].template as<std::string>()},
                              {"on_hand", on_hand},
                              {"reserved", reserved},
                              {"available", on_hand - reserved}});
        });
    });
}

Response QueryService::get_account(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto account = in.path_id("account_id");
    auto consistency = in.consistency();
    in.only({"wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    Reads reads{"accounts", platform::partition_of(domain::account_stream(*account), partitions_)};
    return serve(request, consistency.token, consistency.wait, reads, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            auto rows = tx.exec_prepared("query_account", *account);
            if (rows.empty()) return problem(404, "not_found", "no account " + *account);
            const auto& row = rows[0];
            auto balance = row[1].template as<std::int64_t>();
            auto held = row[2].template as<std::int64_t>();
            return versioned(request, row[3].template as<std::int64_t>(),
                             {{"account_id", row[0].template as<std::string>()},
                              {"balance", balance},
                              {"held", held},
                              {"available", balance - held}});
        });
    });
}

Response QueryService::get_saga(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto order = in.path_id("order_id");
    auto consistency = in.consistency();
    in.only({"wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    // In choreography an order's saga is three streams, in up to three partitions: wait
    // for every partition rather than guess.
    Reads reads{"sagas", std::nullopt};
    return serve(request, consistency.token, consistency.wait, reads, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            auto rows = tx.exec_prepared("query_saga", *order);
            if (rows.empty()) return problem(404, "not_found", "no saga for order " + *order);
            const auto& row = rows[0];
            return versioned(request, row[5].template as<std::int64_t>(),
                             {{"saga_id", row[0].template as<std::string>()},
                              {"order_id", row[1].template as<std::string>()},
                              {"mode", row[2].template as<std::string>()},
                              {"status", row[3].template as<std::string>()},
                              {"steps", json::parse(row[4].template as<std::string>())},
                              {"processes", json::parse(row[6].template as<std::string>())},
                              {"trace_id", nullable_text(row[7])}});
        });
    });
}

Response QueryService::get_trace(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto trace_id = in.path_trace_id("trace_id");
    auto consistency = in.consistency();
    in.only({"wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    return serve(
        request, consistency.token, consistency.wait, Reads{"traces", std::nullopt}, [=, this] {
            return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
                auto rows = tx.exec_prepared("query_trace", *trace_id, kMaxTraceEvents);
                json spans = json::array();
                if (spans_) {
                    for (const auto& span : spans_->trace(*trace_id))
                        spans.push_back(span_json(span));
                }
                if (rows.empty() && spans.empty())
                    return problem(404, "not_found", "no events or spans in trace " + *trace_id);
                json events = json::array();
                for (const auto& row : rows) {
                    Checkpoint position{eventstore::transaction_id_from_xid8(row[3].c_str()),
                                        row[4].template as<std::int64_t>()};
                    events.push_back({{"stream", row[0].template as<std::string>()},
                                      {"version", row[1].template as<std::int64_t>()},
                                      {"type", row[2].template as<std::string>()},
                                      {"position", position.token()},
                                      {"recorded_at", row[5].template as<std::string>()},
                                      {"causation_id", nullable_text(row[6])},
                                      {"correlation_id", nullable_text(row[7])}});
                }
                return Response::json(200, {{"trace_id", *trace_id},
                                            {"events", std::move(events)},
                                            {"spans", std::move(spans)}});
            });
        });
}

Response QueryService::list_projections(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    auto consistency = in.consistency();
    in.only({"wait_ms"});
    if (!errors.empty()) return invalid(std::move(errors));
    // Progress itself reads no projection: a token has nothing to wait for here.
    return serve(request, std::nullopt, consistency.wait, Reads{}, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            json list = json::array();
            for (const auto& row : tx.exec_prepared("query_projections")) {
                Checkpoint checkpoint{eventstore::transaction_id_from_xid8(row[3].c_str()),
                                      row[4].template as<std::int64_t>()};
                list.push_back(
                    {{"projection", row[0].template as<std::string>()},
                     {"partition", row[1].template as<int>()},
                     {"owner", nullable_text(row[2])},
                     {"checkpoint", checkpoint.token()},
                     {"lag_seconds",
                      row[5].is_null() ? json(nullptr) : json(row[5].template as<double>())},
                     {"updated_at", row[6].template as<std::string>()},
                     {"breaker", nullable_text(row[7])},
                     {"lag_events",
                      row[8].is_null() ? json(nullptr) : json(row[8].template as<std::int64_t>())},
                     {"oldest_pending_seconds",
                      row[9].is_null() ? json(nullptr) : json(row[9].template as<double>())},
                     {"halted_on_dead_letter", row[10].is_null()
                                                   ? json(nullptr)
                                                   : json(row[10].template as<std::int64_t>())},
                     {"status_updated_at", nullable_text(row[11])},
                     {"dead_letters", row[12].template as<std::int64_t>()},
                     {"breaker_transitions", json::parse(row[13].template as<std::string>())}});
            }
            return Response::json(200, {{"projections", std::move(list)}});
        });
    });
}

Response QueryService::list_relays(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    in.only({});
    if (!errors.empty()) return invalid(std::move(errors));
    return serve(request, std::nullopt, kDefaultWait, Reads{}, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            auto number_or_null = [](const pqxx::field& f) {
                return f.is_null() ? json(nullptr) : json(f.as<double>());
            };
            json list = json::array();
            for (const auto& row : tx.exec_prepared("query_relays")) {
                Checkpoint checkpoint{eventstore::transaction_id_from_xid8(row[6].c_str()),
                                      row[7].template as<std::int64_t>()};
                list.push_back({{"shard", row[0].template as<int>()},
                                {"leader", nullable_text(row[1])},
                                {"leader_since", nullable_text(row[2])},
                                {"horizon_hidden_seconds", row[3].template as<double>()},
                                {"seen_at", nullable_text(row[4])},
                                {"seen_seconds_ago", number_or_null(row[5])},
                                {"checkpoint", checkpoint.token()},
                                {"checkpoint_updated_at", row[8].template as<std::string>()}});
            }
            return Response::json(200, {{"relays", std::move(list)}});
        });
    });
}

namespace {

constexpr std::int64_t kMaxDeadLetterId = std::numeric_limits<std::int64_t>::max();

json dead_letter_json(const pqxx::row& row) {
    return {{"id", row[0].as<std::int64_t>()},
            {"projection", row[1].as<std::string>()},
            {"partition", row[2].as<int>()},
            {"checkpoint", Checkpoint{eventstore::transaction_id_from_xid8(row[3].c_str()),
                                      row[4].as<std::int64_t>()}
                               .token()},
            {"stream", row[5].as<std::string>()},
            {"version", row[6].as<std::int64_t>()},
            {"event_id", row[7].as<std::string>()},
            {"type", row[8].as<std::string>()},
            {"payload", json::parse(row[9].as<std::string>())},
            {"metadata", json::parse(row[10].as<std::string>())},
            {"error", row[11].as<std::string>()},
            {"attempts", row[12].as<int>()},
            {"policy", row[13].as<std::string>()},
            {"status", row[14].as<std::string>()},
            {"recorded_at", row[15].as<std::string>()},
            {"created_at", row[16].as<std::string>()},
            {"updated_at", row[17].as<std::string>()},
            {"requested_at", nullable_text(row[18])},
            {"resolved_at", nullable_text(row[19])}};
}

}  // namespace

Response QueryService::list_dead_letters(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    std::optional<std::string> projection;
    if (in.query("projection")) projection = in.id("projection");
    auto status =
        in.one_of("status", {"parked", "retry_requested", "skip_requested", "resolved", "skipped"},
                  "must be parked, retry_requested, skip_requested, resolved or skipped");
    std::optional<std::int64_t> partition;
    if (in.query("partition")) partition = in.integer("partition", 0, 1023, 0);
    auto limit = in.integer("limit", 1, kMaxLimit, kDefaultLimit);
    // The cursor is the id of the last letter of the previous page: ids only grow.
    auto after = in.integer("cursor", 0, kMaxDeadLetterId, 0);
    in.only({"projection", "status", "partition", "limit", "cursor"});
    if (!errors.empty()) return invalid(std::move(errors));
    return serve(request, std::nullopt, kDefaultWait, Reads{}, [=, this] {
        return pool_.transact<pqxx::nontransaction>([&](auto& tx) {
            auto rows = tx.exec_prepared(
                "query_dead_letters", projection ? projection->c_str() : nullptr,
                status ? status->c_str() : nullptr,
                partition ? std::optional<int>{static_cast<int>(*partition)} : std::nullopt, after,
                limit + 1);
            json list = json::array();
            std::int64_t last = 0;
            for (std::size_t i = 0; i < rows.size() && static_cast<std::int64_t>(i) < limit; ++i) {
                list.push_back(dead_letter_json(rows[i]));
                last = rows[i][0].template as<std::int64_t>();
            }
            json next = static_cast<std::int64_t>(rows.size()) > limit ? json(std::to_string(last))
                                                                       : json(nullptr);
            return Response::json(200, {{"dead_letters", std::move(list)}, {"next_cursor", next}});
        });
    });
}

}  // namespace ordo::query
