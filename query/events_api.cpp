#include "query/events_api.hpp"

#include <algorithm>
#include <chrono>
#include <future>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/http/http.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/dependency_failure.hpp"
#include "query/request_reader.hpp"

namespace ordo::query {
namespace {

using eventstore::Checkpoint;
using eventstore::EventStore;
using platform::http::Access;
using platform::http::FieldError;
using platform::http::Request;
using platform::http::Response;

// How long a shard whose read failed is not read for pages.
constexpr std::chrono::seconds kResting{5};

// A failure of a shard's database (Unavailable, or an error pg::classify calls transient),
// as against a bug.
bool dependency_failed(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const platform::Unavailable&) {
        return true;
    } catch (...) {
        return platform::pg::classify(error) == platform::FailureKind::transient;
    }
}

EventSelection selection(RequestReader& in) {
    return {in.id_list("category", EventsApi::kMaxNames), in.id_list("type", EventsApi::kMaxNames)};
}

// Where a reader without a position starts: the start of each shard of `sources`.
FeedPosition start_of(const std::vector<ShardSource>& sources) {
    std::vector<int> shards;
    for (const auto& source : sources) shards.push_back(source.shard);
    return FeedPosition{shards};
}

// A position names a shard the service could not look up (ShardSources::confirm: unsure).
Response unsure_of_shards() {
    auto answer = platform::http::problem(
        503, "unavailable",
        "the position names a shard this service cannot look up now; retry shortly");
    answer.headers.emplace_back("Retry-After", "1");
    return answer;
}

}  // namespace

EventsApi::EventsApi(ShardSources& sources, Subscriptions& subscriptions,
                     const eventstore::Upcasters* upcasters, platform::Logger log)
    : sources_{sources},
      resting_until_{std::make_unique<std::atomic<std::int64_t>[]>(eventstore::kMaxShards)},
      subscriptions_{subscriptions},
      upcasters_{upcasters},
      log_{std::move(log)} {}

std::optional<std::vector<ShardSource>> EventsApi::sources_for(
    std::initializer_list<const std::string*> tokens) {
    for (const auto* token : tokens) {
        if (token == nullptr) continue;
        // A malformed position is refused by the parse, without a look at the map.
        const auto named = FeedPosition::named_shards(*token);
        if (named && sources_.confirm(*named) == ShardSources::Named::unsure) return std::nullopt;
    }
    return sources_.current();
}

void EventsApi::register_routes(platform::http::Router& router) {
    router.add("GET", "/v1/events", Access::read, [this](Request& r) { return page(r); });
    router.add("GET", "/v1/events/stream", Access::read, [this](Request& r) { return stream(r); });
}

Response EventsApi::page(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    const auto after_query = request.query.find("after");
    const auto confirmed =
        sources_for({after_query == request.query.end() ? nullptr : &after_query->second});
    if (!confirmed) return unsure_of_shards();
    const auto& sources = *confirmed;
    const auto start = start_of(sources);
    auto after = in.feed_position("after", start).value_or(start);
    auto selected = selection(in);
    auto limit = in.integer("limit", 1, kMaxLimit, kDefaultLimit);
    in.only({"after", "category", "type", "limit"});
    if (!errors.empty()) return invalid(std::move(errors));
    // One shard's read, or its failure (a bug is thrown on).
    struct Outcome {
        ShardRead read;
        std::exception_ptr failure;
    };
    auto read_shard = [&](std::size_t i) {
        Outcome out;
        try {
            sources[i].pool->transact<pqxx::nontransaction>([&](auto& tx) {
                // Everything up to the head is committed and stays as it is: the page and
                // the position to go on from are exact, whatever commits meanwhile.
                // A filtered read looks at kMaxScan events at most, so a rare type costs a
                // bounded read: the page may be short, even empty, with next_after further on.
                const auto head = EventStore::head(tx).value_or(Checkpoint{});
                auto selected_read = EventStore::read_selected(
                    tx, after.at(i), head, selected.categories, selected.types,
                    static_cast<std::size_t>(limit), kMaxScan);
                out.read = {std::move(selected_read.events), selected_read.read_to};
            });
        } catch (const std::exception& e) {
            out.failure = std::current_exception();
            if (!dependency_failed(out.failure)) throw;
            log_.warn("a shard's events could not be read for a page",
                      {{"shard", sources[i].shard}, {"error", e.what()}});
        }
        return out;
    };
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto resting = [&](std::size_t i) -> std::atomic<std::int64_t>& {
        return resting_until_[static_cast<std::size_t>(sources[i].shard)];
    };
    std::vector<std::future<Outcome>> pending(sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) {
        if (resting(i).load() > now) continue;
        // The first shard on this thread, the others each on one of their own.
        pending[i] = std::async(i == 0 ? std::launch::deferred : std::launch::async, read_shard, i);
    }
    std::vector<ShardRead> reads(sources.size());
    std::size_t read = 0;
    std::exception_ptr failure;
    for (std::size_t i = 0; i < sources.size(); ++i) {
        // A shard not read keeps its place (its read_to is where the reader is).
        reads[i].read_to = after.at(i);
        if (!pending[i].valid()) continue;
        auto outcome = pending[i].get();
        if (outcome.failure) {
            failure = outcome.failure;
            // Over one store there are no others to serve meanwhile: every page tries it.
            if (sources.size() > 1) {
                resting(i) =
                    (std::chrono::steady_clock::now() + kResting).time_since_epoch().count();
            }
            continue;
        }
        reads[i] = std::move(outcome.read);
        ++read;
    }
    if (read == 0) {
        if (!failure) {
            auto busy = platform::http::problem(
                503, "unavailable", "no shard of the event store can be read now; retry shortly");
            busy.headers.emplace_back("Retry-After", "5");
            return busy;
        }
        try {
            std::rethrow_exception(failure);
        } catch (...) {
            const std::string unavailable = "the event store is unavailable; retry shortly";
            return platform::answer_dependency_failure(
                log_, request.trace,
                {.unavailable = unavailable, .overloaded = unavailable, .outcome_unknown = {}});
        }
    }
    auto page = merge_reads(after, std::move(reads), static_cast<std::size_t>(limit));
    nlohmann::json items = nlohmann::json::array();
    for (auto& [event, position] : page.events) {
        items.push_back(event_json(
            as_current(upcasters_, std::move(event),
                       [&](const auto& stored, const std::exception& why) {
                           log_.warn("an event is shown as stored: it cannot be upcast",
                                     {{"event_id", stored.event_id}, {"error", why.what()}});
                       }),
            position));
    }
    return Response::json(200, {{"events", std::move(items)}, {"next_after", page.next.token()}});
}

Response EventsApi::stream(Request& request) {
    std::vector<FieldError> errors;
    RequestReader in{request, errors};
    const auto after_query = request.query.find("after");
    const auto last_event_id = request.header("last-event-id");
    const auto confirmed =
        sources_for({after_query == request.query.end() ? nullptr : &after_query->second,
                     last_event_id ? &*last_event_id : nullptr});
    if (!confirmed) return unsure_of_shards();
    const auto start = start_of(*confirmed);
    auto after = in.feed_position("after", start).value_or(start);
    if (auto last = request.header("last-event-id")) {
        // A reconnecting EventSource resumes after the last event it saw, whatever the URL says.
        if (auto position = FeedPosition::parse(*last, start.shards())) {
            after = *position;
        } else {
            errors.push_back({"Last-Event-ID", "must be an id this stream sent"});
        }
    }
    auto selected = selection(in);
    in.only({"after", "category", "type"});
    if (!errors.empty()) return invalid(std::move(errors));
    auto place = subscriptions_.reserve();
    if (!place) {
        auto refused =
            platform::http::problem(503, "unavailable", "too many subscribers; retry shortly");
        refused.headers.emplace_back("Retry-After", "5");
        return refused;
    }
    return Response::streamed("text/event-stream", [this, place = std::move(place), after,
                                                    selected = std::move(selected)](
                                                       platform::http::Stream stream) mutable {
        subscriptions_.subscribe(std::move(place), after, std::move(selected), std::move(stream));
    });
}

}  // namespace ordo::query
