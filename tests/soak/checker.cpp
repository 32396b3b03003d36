// The soak's checker (see checker.hpp).
#include "tests/soak/checker.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "platform/core/utc_time.hpp"
#include "platform/nats/jetstream.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/saga_stack.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::soak {
namespace {

using namespace std::chrono_literals;

// The faults that overlap [from, to], for a violation's message.
std::string faults_around(const std::vector<FaultRecord>& faults, Millis from, Millis to) {
    std::string out;
    for (const auto& f : faults) {
        if (f.ended < from - 5s || f.began > to + 5s) continue;
        out += (out.empty() ? "" : ", ") + f.planned.spec.name() + "#" +
               std::to_string(f.planned.instance) + " at " + seconds_text(f.began) + "-" +
               seconds_text(f.ended);
    }
    return out.empty() ? "no fault around it" : "faults around it: " + out;
}

// A PostgreSQL array literal of `texts`, each quoted, for a $n::text[] parameter.
std::string text_array(const std::vector<std::string>& texts) {
    std::string out = "{";
    for (std::size_t i = 0; i < texts.size(); ++i) {
        out += i ? ",\"" : "\"";
        for (char c : texts[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::int64_t count(pqxx::connection& conn, const std::string& sql) {
    pqxx::read_transaction tx{conn};
    return tx.exec1(sql)[0].as<std::int64_t>();
}

// The store's shards, a connection to each; the first also holds the read models, the
// checkpoints and the dead letters.
class Shards {
   public:
    Shards(const testing::TestDatabase& db, const testing::TestDatabase* second) {
        for (const auto* shard : {&db, second}) {
            if (shard)
                connections_.push_back(std::make_unique<pqxx::connection>(shard->admin_url()));
        }
    }
    std::size_t size() const { return connections_.size(); }
    pqxx::connection& operator[](std::size_t shard) { return *connections_.at(shard); }
    pqxx::connection& read() { return *connections_.front(); }
    // `sql`'s count summed over every shard.
    std::int64_t total(const std::string& sql) {
        std::int64_t sum = 0;
        for (auto& conn : connections_) sum += count(*conn, sql);
        return sum;
    }

   private:
    std::vector<std::unique_ptr<pqxx::connection>> connections_;
};

// Settled: no order pending, no saga running, every projection (the webhook's too, when one
// is expected) with a checkpoint in every partition and each at the head of its shard's log
// in commit order, JetStream holding as many messages as the store has events.
bool settled(Shards& store, platform::jetstream::Client& nats, const std::string& stream,
             bool webhook) {
    auto& conn = store.read();
    if (count(conn, "SELECT count(*) FROM read.orders WHERE status = 'pending'") != 0) return false;
    if (count(conn,
              "SELECT count(*) FROM (SELECT projection FROM ordo.projection_checkpoints GROUP BY "
              "projection HAVING count(*) < (SELECT partitions FROM ordo.topology)) AS partial") !=
        0)
        return false;
    if (webhook && count(conn,
                         "SELECT count(*) FROM ordo.projection_checkpoints WHERE projection = "
                         "'webhook'") == 0)
        return false;
    if (count(conn, "SELECT count(*) FROM read.sagas WHERE status = 'running'") != 0) return false;
    // A checkpoint names its shard (on one store none, or 0); under the spread map partition
    // p is on shard p mod the shards.
    for (std::size_t shard = 0; shard < store.size(); ++shard) {
        pqxx::result head;
        {
            pqxx::read_transaction tx{store[shard]};
            head = tx.exec(
                "SELECT transaction_id::text, global_position FROM ordo.events ORDER BY "
                "transaction_id DESC, global_position DESC LIMIT 1");
        }
        if (head.empty()) continue;
        pqxx::read_transaction tx{conn};
        if (tx.exec_params1("SELECT count(*) FROM ordo.projection_checkpoints c WHERE "
                            "coalesce(c.shard, c.partition % $1) = $2 AND (c.transaction_id, "
                            "c.global_position) < ($3::xid8, $4::bigint)",
                            static_cast<int>(store.size()), static_cast<int>(shard),
                            head[0][0].as<std::string>(), head[0][1].as<std::int64_t>())[0]
                .as<std::int64_t>() != 0)
            return false;
    }
    const auto events = store.total("SELECT count(*) FROM ordo.events");
    std::int64_t messages = -1;
    try {
        messages = static_cast<std::int64_t>(nats.message_count(stream));
    } catch (const std::exception&) {
        return false;
    }
    return messages >= events;
}

}  // namespace

CheckResult check(const testing::TestDatabase& db, const testing::TestDatabase* second_shard,
                  const std::string& stream, const std::string& subjects,
                  const WebhookExpectation& webhook, const WorkloadResult& work,
                  const std::vector<FaultRecord>& faults, Millis settle_bound,
                  const std::function<Millis()>& now) {
    CheckResult result;
    Shards store{db, second_shard};
    auto& conn = store.read();
    platform::jetstream::Client nats{testing::nats_admin(), platform::Logger::null_logger()};

    // Settle: the faults are over; the services finish what the load left behind.
    const auto load_end = work.load_time;
    std::vector<std::string> invariants;
    for (;;) {
        if (settled(store, nats, stream, !webhook.event_types.empty()) &&
            (invariants = testing::invariant_violations(db, second_shard)).empty()) {
            result.settled_after = now() - load_end;
            break;
        }
        if (now() - load_end > settle_bound) break;
        std::this_thread::sleep_for(250ms);
    }
    if (result.settled_after < 0ms) {
        result.violations.push_back("the system did not settle within " +
                                    seconds_text(settle_bound) + " after the load");
        for (auto& v : testing::invariant_violations(db, second_shard)) {
            result.violations.push_back("invariant: " + v);
        }
    }

    // Each command's events by its Idempotency-Key (the causation of what it appended).
    std::vector<std::string> sent;
    for (const auto& c : work.commands) sent.push_back(c.key);
    const auto keys = text_array(sent);
    std::map<std::string, std::int64_t> stored;
    for (std::size_t shard = 0; shard < store.size(); ++shard) {
        pqxx::read_transaction tx{store[shard]};
        for (const auto& row :
             tx.exec_params("SELECT e.metadata->>'causation_id', count(*) FROM ordo.events e "
                            "JOIN unnest($1::text[]) AS sent(key) ON sent.key = "
                            "e.metadata->>'causation_id' GROUP BY 1",
                            keys)) {
            stored[row[0].as<std::string>()] += row[1].as<std::int64_t>();
        }
        result.events += tx.exec1("SELECT count(*) FROM ordo.events")[0].as<std::int64_t>();
    }
    // A command's event once (a refused one's never, a given-up one's at most once), except
    // that a cancel of an order whose cancellation was already requested is accepted and
    // appends nothing: per order, the acknowledged cancels have one event between them.
    auto stored_for = [&](const CommandRecord& c) {
        auto it = stored.find(c.key);
        return it == stored.end() ? std::int64_t{0} : it->second;
    };
    auto report = [&](const CommandRecord& c, const std::string& what) {
        result.violations.push_back(c.kind + " " + c.key + " on " + c.path + ": " + what + "; " +
                                    faults_around(faults, c.first_sent, c.ended));
    };
    std::map<std::string, std::vector<const CommandRecord*>> cancels;  // by order path
    for (const auto& c : work.commands) {
        const auto n = stored_for(c);
        const bool acked = c.status >= 200 && c.status < 300;
        if (n > 1) {
            ++result.duplicated;
            report(c, "stored " + std::to_string(n) + " times");
        } else if (!acked && c.status != 0 && n != 0) {
            report(c, "refused (" + std::to_string(c.status) + ") but stored");
        } else if (c.kind == "cancel") {
            cancels[c.path].push_back(&c);
        } else if (acked && n == 0) {
            ++result.lost;
            report(c, "acknowledged but not stored");
        }
    }
    for (const auto& [path, sent] : cancels) {
        std::int64_t events = 0;
        const CommandRecord* first_acked = nullptr;
        for (const auto* c : sent) {
            events += stored_for(*c);
            if (!first_acked && c->status >= 200 && c->status < 300) first_acked = c;
        }
        if (first_acked && events == 0) {
            ++result.lost;
            report(*first_acked, "acknowledged, and no cancel of this order stored");
        } else if (events > 1) {
            ++result.duplicated;
            report(*sent.front(), std::to_string(events) + " cancellation requests stored");
        }
    }

    // Events made by commands (their causation is no event) that no client sent. Each shard
    // gives those whose causation is neither a key sent nor an event of its own; over shards
    // an event may be caused by one on another shard (a saga's reaction), so what is left is
    // looked up there.
    {
        static const char* const kCausingEvent =
            "CASE WHEN c.key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "
            "THEN c.key::uuid END";
        struct Unexplained {
            std::string stream, type, causation;
        };
        std::vector<Unexplained> unexplained;
        for (std::size_t shard = 0; shard < store.size(); ++shard) {
            pqxx::read_transaction tx{store[shard]};
            for (const auto& row : tx.exec_params(
                     // Hash anti-joins and index probes: linear in the events, however many.
                     std::string{"SELECT e.stream_id, e.event_type, c.key FROM ordo.events e "
                                 "CROSS JOIN LATERAL (SELECT e.metadata->>'causation_id' AS key) "
                                 "c LEFT JOIN unnest($1::text[]) AS sent(key) ON sent.key = "
                                 "coalesce(c.key, '') WHERE sent.key IS NULL AND NOT EXISTS "
                                 "(SELECT 1 FROM ordo.events o WHERE o.event_id = "} +
                         kCausingEvent + ")",
                     keys)) {
                unexplained.push_back({row[0].as<std::string>(), row[1].as<std::string>(),
                                       row[2].as<std::string>("(none)")});
            }
        }
        // Over shards: the causations found as events on some shard.
        std::set<std::string> causing;
        if (store.size() > 1 && !unexplained.empty()) {
            std::vector<std::string> causations;
            for (const auto& u : unexplained) causations.push_back(u.causation);
            for (std::size_t shard = 0; shard < store.size(); ++shard) {
                pqxx::read_transaction tx{store[shard]};
                for (const auto& row : tx.exec_params(
                         std::string{"SELECT c.key FROM unnest($1::text[]) AS c(key) WHERE "
                                     "EXISTS (SELECT 1 FROM ordo.events o WHERE o.event_id = "} +
                             kCausingEvent + ")",
                         text_array(causations))) {
                    causing.insert(row[0].as<std::string>());
                }
            }
        }
        std::size_t reported = 0;
        for (const auto& u : unexplained) {
            if (causing.contains(u.causation) || ++reported > 20) continue;
            result.violations.push_back("event " + u.type + " on " + u.stream + " caused by " +
                                        u.causation + ", which no client sent");
        }
        const auto letters = count(conn, "SELECT count(*) FROM ordo.dead_letters");
        if (letters != 0) {
            result.violations.push_back(std::to_string(letters) +
                                        " dead letters, and the soak injected no poison");
        }
    }

    // JetStream: every event once per Nats-Msg-Id, nothing else.
    std::mutex mutex;
    std::set<std::string> ids;
    std::int64_t messages = 0;
    try {
        auto subscription = nats.subscribe_ordered(
            stream, subjects, std::nullopt,
            [&](platform::jetstream::Message m) {
                std::lock_guard lock{mutex};
                ++messages;
                if (auto it = m.headers.find("nats-msg-id"); it != m.headers.end())
                    ids.insert(it->second);
                if (auto it = m.headers.find("ordo-recorded-at"); it != m.headers.end()) {
                    if (auto recorded = platform::parse_utc(it->second)) {
                        result.publish_delays.emplace_back(
                            *recorded, std::chrono::duration_cast<Millis>(m.stored - *recorded));
                    }
                }
            },
            /*stored_time=*/true);
        // Read all the stream holds (nothing more comes once settled), 60 s at most.
        std::int64_t held = -1;
        try {
            held = static_cast<std::int64_t>(nats.message_count(stream));
        } catch (const std::exception& e) {
            result.violations.push_back(std::string{"cannot count the JetStream stream: "} +
                                        e.what());
        }
        const auto until = now() + 60s;
        while (held >= 0 && now() < until) {
            {
                std::lock_guard lock{mutex};
                if (messages >= held) break;
            }
            std::this_thread::sleep_for(20ms);
        }
    } catch (const std::exception& e) {
        result.violations.push_back(std::string{"cannot read the JetStream stream back: "} +
                                    e.what());
    }
    result.jetstream_messages = messages;
    std::set<std::string> event_ids;
    for (std::size_t shard = 0; shard < store.size(); ++shard) {
        pqxx::read_transaction tx{store[shard]};
        for (const auto& row : tx.exec("SELECT event_id::text FROM ordo.events"))
            event_ids.insert(row[0].as<std::string>());
    }
    if (messages != result.events || ids != event_ids) {
        std::int64_t missing = 0, extra = 0;
        for (const auto& id : event_ids) missing += ids.contains(id) ? 0 : 1;
        for (const auto& id : ids) extra += event_ids.contains(id) ? 0 : 1;
        result.violations.push_back("JetStream holds " + std::to_string(messages) +
                                    " messages with " + std::to_string(ids.size()) +
                                    " distinct ids for " + std::to_string(result.events) +
                                    " events: " + std::to_string(missing) + " missing, " +
                                    std::to_string(extra) + " unknown");
    }

    // The webhook: settled means its checkpoints are at the head too, so every event of its
    // types has been answered 200 at least once by now.
    {
        std::set<std::string> forwarded;
        for (std::size_t shard = 0; shard < store.size(); ++shard) {
            pqxx::read_transaction tx{store[shard]};
            for (const auto& row :
                 tx.exec_params("SELECT event_id::text FROM ordo.events WHERE event_type = "
                                "ANY(string_to_array($1, ','))",
                                webhook.event_types)) {
                forwarded.insert(row[0].as<std::string>());
            }
        }
        std::set<std::string> delivered;
        std::ifstream log{webhook.log};
        for (std::string line; std::getline(log, line);) {
            ++result.webhook_deliveries;
            delivered.insert(line);
        }
        result.webhook_events = static_cast<std::int64_t>(forwarded.size());
        std::int64_t missing = 0, unknown = 0;
        for (const auto& id : forwarded) missing += delivered.contains(id) ? 0 : 1;
        for (const auto& id : delivered) unknown += forwarded.contains(id) ? 0 : 1;
        if (missing != 0 || unknown != 0) {
            result.violations.push_back(
                "the webhook receiver logged " + std::to_string(delivered.size()) +
                " distinct ids for " + std::to_string(forwarded.size()) +
                " events: " + std::to_string(missing) + " never delivered, " +
                std::to_string(unknown) + " unknown");
        }
    }

    for (const auto& u : work.unexpected) result.violations.push_back("unexpected answer: " + u);
    for (const auto& f : faults) {
        if (!f.error.empty())
            result.violations.push_back("fault " + f.planned.spec.name() + " at " +
                                        seconds_text(f.began) + ": " + f.error);
    }
    return result;
}

std::vector<std::string> differences_from_rebuild(
    const testing::TestDatabase& db, int partitions,
    const std::map<std::string, std::vector<std::string>>& without) {
    static const std::vector<std::pair<std::string, std::string>> kModels = {
        {"orders", "read.orders"},
        {"inventory", "read.inventory"},
        {"accounts", "read.accounts"},
        {"traces", "read.trace_events"},
        {"sagas", "read.sagas"}};
    auto rows_of = [&](const std::string& table) {
        pqxx::connection conn{db.admin_url()};
        pqxx::read_transaction tx{conn};
        std::multiset<std::string> rows;
        auto left_out = without.find(table);
        if (left_out == without.end()) {
            for (const auto& row : tx.exec("SELECT t::text FROM " + table + " t")) {
                rows.insert(row[0].as<std::string>());
            }
            return rows;
        }
        std::string columns = "{";
        for (const auto& column : left_out->second)
            columns += (columns.size() > 1 ? "," : "") + column;
        for (const auto& row : tx.exec_params(
                 "SELECT (to_jsonb(t) - $1::text[])::text FROM " + table + " t", columns + "}")) {
            rows.insert(row[0].as<std::string>());
        }
        return rows;
    };
    std::vector<std::string> out;
    for (const auto& [projection, table] : kModels) {
        const auto live = rows_of(table);
        testing::Process rebuild{{testing::ordo_binary(), "rebuild", projection, "--database-url",
                                  db.migrator_url(), "--partitions", std::to_string(partitions)},
                                 {{"ORDO_LOG_LEVEL", "error"}}};
        if (auto rc = rebuild.wait(std::chrono::minutes(10)); rc != 0) {
            out.push_back("ordo rebuild " + projection + " failed with " +
                          (rc ? std::to_string(*rc) : std::string{"a timeout"}));
            continue;
        }
        const auto rebuilt = rows_of(table);
        if (live == rebuilt) continue;
        std::vector<std::string> only_live, only_rebuilt;
        std::set_difference(live.begin(), live.end(), rebuilt.begin(), rebuilt.end(),
                            std::back_inserter(only_live));
        std::set_difference(rebuilt.begin(), rebuilt.end(), live.begin(), live.end(),
                            std::back_inserter(only_rebuilt));
        std::string what =
            table + " differs from its rebuild: " + std::to_string(only_live.size()) +
            " rows only live, " + std::to_string(only_rebuilt.size()) + " only rebuilt";
        for (std::size_t i = 0; i < std::min<std::size_t>(3, only_live.size()); ++i)
            what += "\n    live:    " + only_live[i];
        for (std::size_t i = 0; i < std::min<std::size_t>(3, only_rebuilt.size()); ++i)
            what += "\n    rebuilt: " + only_rebuilt[i];
        out.push_back(what);
    }
    return out;
}

}  // namespace ordo::soak
