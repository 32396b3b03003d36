// The process vocabulary's names, payloads and fold: how a process's events build its state.

#include "sagas/process.hpp"
#include "domain/overloaded.hpp"

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

namespace ordo::sagas {
namespace {

using domain::Overloaded;

constexpr std::array<std::string_view, 4> kStepKinds = {"action", "compensation", "pivot",
                                                        "forward"};
constexpr std::array<std::string_view, 6> kStepStatuses = {"pending",   "succeeded", "rejected",
                                                           "timed_out", "abandoned", "failed"};
constexpr std::array<std::string_view, 4> kProcessStatuses = {"running", "completed", "compensated",
                                                              "failed"};
constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kPublished = {{
    {"stock_allocated", "StockAllocated"},
    {"stock_allocation_failed", "StockAllocationFailed"},
    {"payment_secured", "PaymentSecured"},
    {"payment_declined", "PaymentDeclined"},
}};

template <class Enum, std::size_t N>
std::optional<Enum> enum_of(const std::array<std::string_view, N>& names, std::string_view s) {
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == s) return static_cast<Enum>(i);
    }
    return std::nullopt;
}

nlohmann::json encode_order(const OrderInfo& o) {
    return {{"order_id", o.order_id},
            {"customer_id", o.customer_id},
            {"account_id", o.account_id},
            {"lines", domain::orders::encode_lines(o.lines)},
            {"total", o.total}};
}

OrderInfo decode_order(const nlohmann::json& j) {
    OrderInfo o{j.at("order_id").get<std::string>(),
                j.at("customer_id").get<std::string>(),
                j.at("account_id").get<std::string>(),
                {},
                j.at("total").get<std::int64_t>()};
    auto lines = domain::orders::decode_lines(j.at("lines"));
    // decode() turns a json exception into "unreadable", as for any other malformed field.
    if (!lines) throw nlohmann::json::other_error::create(501, "malformed order lines", &j);
    o.lines = std::move(*lines);
    return o;
}

Step* find_step(State& state, std::string_view name) {
    auto it = std::find_if(state.steps.begin(), state.steps.end(),
                           [&](const Step& s) { return s.name == name; });
    return it == state.steps.end() ? nullptr : &*it;
}

// An outcome for a step that is no longer pending changes nothing: a late outcome of an
// abandoned step, or a duplicate, must not reopen what the process already decided.
void finish(State& state, std::string_view name, StepStatus status, int attempts,
            std::int64_t at_ms, std::string error) {
    Step* step = find_step(state, name);
    if (!step || !step->pending()) return;
    step->status = status;
    step->attempts = std::max(step->attempts, attempts);
    step->finished_ms = at_ms;
    if (!error.empty()) step->error = std::move(error);
}

}  // namespace

std::string_view to_string(StepKind kind) {
    return kStepKinds[static_cast<std::size_t>(kind)];
}
std::string_view to_string(StepStatus status) {
    return kStepStatuses[static_cast<std::size_t>(status)];
}
std::string_view to_string(ProcessStatus status) {
    return kProcessStatuses[static_cast<std::size_t>(status)];
}

std::string published_type(std::string_view fact) {
    for (const auto& [f, type] : kPublished) {
        if (f == fact) return std::string{type};
    }
    return "FactPublished";
}

std::optional<std::string> published_fact(std::string_view type) {
    for (const auto& [fact, t] : kPublished) {
        if (t == type) return std::string{fact};
    }
    return std::nullopt;
}

const Step* State::step(std::string_view name) const {
    return find_step(const_cast<State&>(*this), name);
}

std::string event_type(const Event& event) {
    return std::visit(Overloaded{
                          [](const FactPublished& e) { return published_type(e.fact); },
                          [](const auto& e) { return std::string{e.kType}; },
                      },
                      event);
}

nlohmann::json encode_payload(const Event& event) {
    return std::visit(
        Overloaded{
            [](const ProcessStarted& e) -> nlohmann::json {
                return {{"order", encode_order(e.order)}, {"at_ms", e.at_ms}};
            },
            [](const FactObserved& e) -> nlohmann::json {
                return {{"fact", e.fact}, {"reason", e.reason}, {"at_ms", e.at_ms}};
            },
            [](const StepScheduled& e) -> nlohmann::json {
                return {{"name", e.name},
                        {"kind", to_string(e.kind)},
                        {"command", domain::encode_command(e.command)},
                        {"deadline_ms", e.deadline_ms},
                        {"at_ms", e.at_ms}};
            },
            [](const StepSucceeded& e) -> nlohmann::json {
                return {{"name", e.name}, {"attempt", e.attempt}, {"at_ms", e.at_ms}};
            },
            [](const StepRejected& e) -> nlohmann::json {
                return {{"name", e.name},
                        {"attempt", e.attempt},
                        {"code", e.code},
                        {"message", e.message},
                        {"at_ms", e.at_ms}};
            },
            [](const StepAttemptFailed& e) -> nlohmann::json {
                return {{"name", e.name},
                        {"attempt", e.attempt},
                        {"error", e.error},
                        {"retry_at_ms", e.retry_at_ms},
                        {"at_ms", e.at_ms}};
            },
            [](const StepGaveUp& e) -> nlohmann::json {
                return {{"name", e.name},
                        {"attempts", e.attempts},
                        {"error", e.error},
                        {"at_ms", e.at_ms}};
            },
            [](const StepAbandoned& e) -> nlohmann::json {
                return {{"name", e.name}, {"at_ms", e.at_ms}};
            },
            [](const DeadlineSet& e) -> nlohmann::json {
                return {{"name", e.name}, {"due_ms", e.due_ms}};
            },
            [](const DeadlineReached& e) -> nlohmann::json {
                return {{"name", e.name}, {"at_ms", e.at_ms}};
            },
            [](const CompensationStarted& e) -> nlohmann::json {
                return {{"reason", e.reason}, {"at_ms", e.at_ms}};
            },
            [](const FactPublished& e) -> nlohmann::json {
                return {{"fact", e.fact},
                        {"reason", e.reason},
                        {"order", encode_order(e.order)},
                        {"at_ms", e.at_ms}};
            },
            [](const ProcessEnded& e) -> nlohmann::json {
                return {{"status", to_string(e.status)}, {"reason", e.reason}, {"at_ms", e.at_ms}};
            },
        },
        event);
}

std::vector<domain::EventSchema> event_schemas() {
    std::vector<domain::EventSchema> all;
    // Every alternative of Event at the version it writes (a new one is listed by itself), but
    // FactPublished, which is stored under kPublished's types.
    [&]<class... E>(std::type_identity<std::variant<E...>>) {
        (
            [&] {
                if constexpr (!std::is_same_v<E, FactPublished>) {
                    all.push_back({E::kType, domain::schema_version_of<E>()});
                }
            }(),
            ...);
    }(std::type_identity<Event>{});
    for (const auto& [fact, type] : kPublished) {
        all.push_back({type, domain::schema_version_of<FactPublished>()});
    }
    return all;
}

std::vector<domain::Upcaster> upcasters() {
    std::vector<domain::Upcaster> all{{ProcessStarted::kType, 1, &order_lines_v1_to_v2}};
    for (const auto& [fact, type] : kPublished) all.push_back({type, 1, &order_lines_v1_to_v2});
    return all;
}

nlohmann::json order_lines_v1_to_v2(nlohmann::json payload) {
    if (payload.is_object() && payload.contains("order") && payload["order"].is_object() &&
        payload["order"].contains("lines")) {
        payload["order"]["lines"] = domain::lines_v1_to_v2(std::move(payload["order"]["lines"]));
    }
    return payload;
}

std::optional<Event> decode(std::string_view type, const nlohmann::json& p) {
    try {
        auto str = [&](const char* key) { return p.at(key).get<std::string>(); };
        auto ms = [&](const char* key) { return p.at(key).get<std::int64_t>(); };
        if (type == ProcessStarted::kType)
            return ProcessStarted{decode_order(p.at("order")), ms("at_ms")};
        if (type == FactObserved::kType)
            return FactObserved{str("fact"), str("reason"), ms("at_ms")};
        if (type == StepScheduled::kType) {
            auto kind = enum_of<StepKind>(kStepKinds, str("kind"));
            if (!kind) return std::nullopt;
            auto command = domain::decode_command(p.at("command"));
            auto* read = std::get_if<domain::InternalCommand>(&command);
            if (!read) return std::nullopt;
            return StepScheduled{str("name"), *kind, std::move(*read), ms("deadline_ms"),
                                 ms("at_ms")};
        }
        if (type == StepSucceeded::kType) {
            return StepSucceeded{str("name"), p.at("attempt").get<int>(), ms("at_ms")};
        }
        if (type == StepRejected::kType) {
            return StepRejected{str("name"), p.at("attempt").get<int>(), str("code"),
                                str("message"), ms("at_ms")};
        }
        if (type == StepAttemptFailed::kType) {
            return StepAttemptFailed{str("name"), p.at("attempt").get<int>(), str("error"),
                                     ms("retry_at_ms"), ms("at_ms")};
        }
        if (type == StepGaveUp::kType) {
            return StepGaveUp{str("name"), p.at("attempts").get<int>(), str("error"), ms("at_ms")};
        }
        if (type == StepAbandoned::kType) return StepAbandoned{str("name"), ms("at_ms")};
        if (type == DeadlineSet::kType) return DeadlineSet{str("name"), ms("due_ms")};
        if (type == DeadlineReached::kType) return DeadlineReached{str("name"), ms("at_ms")};
        if (type == CompensationStarted::kType)
            return CompensationStarted{str("reason"), ms("at_ms")};
        if (type == ProcessEnded::kType) {
            auto status = enum_of<ProcessStatus>(kProcessStatuses, str("status"));
            if (!status) return std::nullopt;
            return ProcessEnded{*status, str("reason"), ms("at_ms")};
        }
        if (auto fact = published_fact(type)) {
            return FactPublished{*fact, str("reason"), decode_order(p.at("order")), ms("at_ms")};
        }
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
    return std::nullopt;
}

State evolve(State state, const Event& event) {
    std::visit(Overloaded{
                   [&](const ProcessStarted& e) {
                       state.started = true;
                       state.order = e.order;
                       state.started_ms = e.at_ms;
                   },
                   [&](const FactObserved& e) {
                       state.facts.insert(e.fact);
                       if (!e.reason.empty()) state.fact_reason = e.reason;
                   },
                   [&](const StepScheduled& e) {
                       if (find_step(state, e.name)) return;
                       state.steps.push_back(Step{e.name,
                                                  e.kind,
                                                  e.command,
                                                  StepStatus::kPending,
                                                  0,
                                                  e.at_ms,
                                                  0,
                                                  0,
                                                  e.deadline_ms,
                                                  "",
                                                  {}});
                   },
                   [&](const StepSucceeded& e) {
                       finish(state, e.name, StepStatus::kSucceeded, e.attempt, e.at_ms, "");
                   },
                   [&](const StepRejected& e) {
                       finish(state, e.name, StepStatus::kRejected, e.attempt, e.at_ms,
                              e.code + ": " + e.message);
                   },
                   [&](const StepAttemptFailed& e) {
                       Step* step = find_step(state, e.name);
                       if (!step || !step->pending()) return;
                       step->attempts = std::max(step->attempts, e.attempt);
                       step->retry_at_ms = e.retry_at_ms;
                       step->error = e.error;
                       step->failures.push_back({e.attempt, e.at_ms, e.retry_at_ms, e.error});
                       if (step->failures.size() > Step::kMaxFailuresKept)
                           step->failures.erase(step->failures.begin());
                   },
                   [&](const StepGaveUp& e) {
                       finish(state, e.name, StepStatus::kFailed, e.attempts, e.at_ms, e.error);
                   },
                   [&](const StepAbandoned& e) {
                       finish(state, e.name, StepStatus::kAbandoned, 0, e.at_ms, "");
                   },
                   [&](const DeadlineSet& e) {
                       auto it = std::find_if(state.deadlines.begin(), state.deadlines.end(),
                                              [&](const Deadline& d) { return d.name == e.name; });
                       if (it == state.deadlines.end())
                           state.deadlines.push_back({e.name, e.due_ms, false});
                   },
                   [&](const DeadlineReached& e) {
                       for (auto& d : state.deadlines) {
                           if (d.name == e.name) d.reached = true;
                       }
                       // A step's own deadline times it out if it has not finished by then.
                       if (e.name.starts_with("step:")) {
                           finish(state, std::string_view{e.name}.substr(5), StepStatus::kTimedOut,
                                  0, e.at_ms, "deadline passed");
                       }
                   },
                   [&](const CompensationStarted& e) {
                       state.compensating = true;
                       state.compensation_reason = e.reason;
                       state.compensation_started_ms = e.at_ms;
                   },
                   [&](const FactPublished& e) { state.published.insert(e.fact); },
                   [&](const ProcessEnded& e) {
                       state.status = e.status;
                       state.end_reason = e.reason;
                       state.ended_ms = e.at_ms;
                   },
               },
               event);
    return state;
}

State fold(const Events& events) {
    State state;
    for (const auto& e : events) state = evolve(std::move(state), e);
    return state;
}

}  // namespace ordo::sagas
