// The database roles: each service's role can do what its service needs and nothing more.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/test_database.hpp"

// What each service's database role (migration 0009) is refused, and a few things it must
// be able to do. The services' own suites run on these roles, so they show the rest of what
// each may do; this file shows the limits. Every statement runs in a read-write transaction
// that is rolled back, so a refusal comes from the grants (or a guard trigger), not from the
// query role's read-only default, and nothing a probe does stays behind.
namespace ordo {
namespace {

using testing::TestDatabase;

constexpr const char* kRefused = "42501";  // insufficient_privilege
constexpr const char* kAllowed = "ok";

struct Probe {
    std::string sql;
    std::optional<std::string> param;  // bound as $1
    const char* expected;
};

// The SQLSTATE `probe` ends with on `conn`, or "ok".
std::string outcome(pqxx::connection& conn, const Probe& probe) {
    pqxx::work tx{conn};
    try {
        tx.exec("SET TRANSACTION READ WRITE");
        if (probe.param) {
            tx.exec_params(probe.sql, *probe.param);
        } else {
            tx.exec_params(probe.sql);
        }
    } catch (const pqxx::sql_error&) {
        return platform::pg::sqlstate_of(std::current_exception());
    }
    return kAllowed;  // the work rolls back when it goes out of scope
}

void expect_outcomes(const std::string& url, const std::vector<Probe>& probes) {
    pqxx::connection conn{url};
    for (const auto& probe : probes) {
        SCOPED_TRACE(probe.sql);
        EXPECT_EQ(outcome(conn, probe), probe.expected);
    }
}

std::string one_event_batch() {
    return "[{\"event_id\": \"" + platform::new_uuid() +
           "\", \"type\": \"Forged\", \"schema_version\": 1, \"payload\": {}, \"metadata\": {}}]";
}

// A store with an event on `order-seed` and a parked dead letter, put there by the owner.
class DatabaseRoles : public ::testing::Test {
   protected:
    void SetUp() override {
        pqxx::connection owner{db_.migrator_url()};
        pqxx::work tx{owner};
        tx.exec_params("SELECT * FROM ordo.append_events('order-seed', -1, $1::jsonb)",
                       one_event_batch());
        dead_letter_ =
            tx.exec_params1(
                  "INSERT INTO ordo.dead_letters (projection, partition, transaction_id, "
                  "global_position, stream_id, stream_version, event_id, event_type, "
                  "schema_version, category, payload, metadata, recorded_at, error, policy) "
                  "SELECT 'orders', 0, transaction_id, global_position, stream_id, "
                  "stream_version, event_id, event_type, schema_version, category, payload, "
                  "metadata, recorded_at, $1, 'skip' FROM ordo.events LIMIT 1 RETURNING id::text",
                  "a poison event")[0]
                .as<std::string>();
        tx.commit();
    }

    // What no service role may do: change or delete events, insert them past the append
    // function, or change the schema.
    std::vector<Probe> refused_to_everyone() const {
        return {
            {"UPDATE ordo.events SET payload = '{}' WHERE stream_id = $1", "order-seed", kRefused},
            {"DELETE FROM ordo.events WHERE stream_id = $1", "order-seed", kRefused},
            {"TRUNCATE ordo.events", std::nullopt, kRefused},
            {"INSERT INTO ordo.events (stream_id, category, stream_version, event_id, "
             "event_type, payload) VALUES ($1, 'order', 2, gen_random_uuid(), 'Forged', '{}')",
             "order-seed", kRefused},
            {"ALTER TABLE ordo.events DISABLE TRIGGER events_append_only", std::nullopt, kRefused},
            {"DROP TABLE ordo.events", std::nullopt, kRefused},
            {"CREATE TABLE ordo.sneaky (id int)", std::nullopt, kRefused},
            {"CREATE TABLE read.sneaky (id int)", std::nullopt, kRefused},
            {"CREATE TABLE public.sneaky (id int)", std::nullopt, kRefused},
            {"CREATE TEMP TABLE sneaky (id int)", std::nullopt, kRefused},
            {"CREATE SCHEMA sneaky", std::nullopt, kRefused},
            {"DELETE FROM ordo_migrations.applied", std::nullopt, kRefused},
            {"UPDATE ordo.streams SET version = 0 WHERE stream_id = $1", "order-seed", kRefused},
        };
    }

    std::vector<Probe> with_common(std::vector<Probe> own) const {
        auto all = refused_to_everyone();
        all.insert(all.end(), own.begin(), own.end());
        return all;
    }

    Probe append(const char* expected) const {
        return {"SELECT * FROM ordo.append_events('order-seed', -1, $1::jsonb)", one_event_batch(),
                expected};
    }

    static Probe write_read_model(const char* expected) {
        return {
            "INSERT INTO read.inventory (sku, on_hand, reserved, version, updated_at) "
            "VALUES ($1, 1, 0, 1, now())",
            "sku-probe", expected};
    }

    TestDatabase db_;
    std::string dead_letter_;
};

TEST_F(DatabaseRoles, EachServiceRoleIsALoginWithNoPowerBeyondItsGrants) {
    pqxx::connection admin{db_.admin_url()};
    pqxx::nontransaction tx{admin};
    for (const char* role :
         {"ordo_command", "ordo_relay", "ordo_projector", "ordo_sagas", "ordo_query"}) {
        SCOPED_TRACE(role);
        auto row = tx.exec_params1(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, "
            "rolbypassrls, (SELECT count(*) FROM pg_auth_members WHERE member = r.oid) "
            "FROM pg_roles r WHERE rolname = $1",
            role);
        EXPECT_TRUE(row[0].as<bool>()) << "LOGIN";
        for (int attribute = 1; attribute <= 6; ++attribute) {
            EXPECT_FALSE(row[attribute].as<bool>()) << "attribute " << attribute;
        }
        EXPECT_EQ(row[7].as<int>(), 0) << "a member of no other role";
    }
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = "
                       "s.setrole WHERE r.rolname = 'ordo_query' AND "
                       "'default_transaction_read_only=on' = ANY(s.setconfig)")[0]
                  .as<int>(),
              1)
        << "the query role's sessions are read-only by default";
}

TEST_F(DatabaseRoles, TheOldSharedRolesCanNeitherLogInNorTouchAnything) {
    pqxx::connection admin{db_.admin_url()};
    pqxx::nontransaction tx{admin};
    for (const char* role : {"ordo_writer", "ordo_reader"}) {
        SCOPED_TRACE(role);
        EXPECT_FALSE(tx.exec_params1("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)[0]
                         .as<bool>());
        EXPECT_FALSE(tx.exec_params1("SELECT has_database_privilege($1, current_database(), "
                                     "'CONNECT')",
                                     role)[0]
                         .as<bool>());
        EXPECT_EQ(
            tx.exec_params1("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                            "c.relnamespace WHERE n.nspname IN ('ordo', 'read') AND c.relkind IN "
                            "('r', 'v') AND (has_table_privilege($1, c.oid, 'SELECT') OR "
                            "has_table_privilege($1, c.oid, 'INSERT') OR has_table_privilege($1, "
                            "c.oid, 'UPDATE') OR has_table_privilege($1, c.oid, 'DELETE') OR "
                            "has_any_column_privilege($1, c.oid, 'SELECT, UPDATE'))",
                            role)[0]
                .as<int>(),
            0);
        EXPECT_FALSE(
            tx.exec_params1("SELECT has_function_privilege($1, "
                            "'ordo.append_events(text, bigint, jsonb, boolean)', 'EXECUTE')",
                            role)[0]
                .as<bool>());
    }
}

// The read schema, and of the event store only the events (for the events API).
TEST_F(DatabaseRoles, QueryRoleReadsTheReadSchemaAndTheEventsAndNothingElse) {
    expect_outcomes(
        db_.query_url(),
        with_common({
            {"SELECT count(*) FROM ordo.events WHERE stream_id = $1", "order-seed", kAllowed},
            {"UPDATE ordo.events SET payload = '{}' WHERE stream_id = $1", "order-seed", kRefused},
            {"SELECT count(*) FROM ordo.streams", std::nullopt, kRefused},
            {"SELECT count(*) FROM ordo.snapshots", std::nullopt, kRefused},
            {"SELECT count(*) FROM ordo.command_log", std::nullopt, kRefused},
            {"SELECT count(*) FROM ordo.dead_letters", std::nullopt, kRefused},
            {"SELECT count(*) FROM ordo.projection_checkpoints", std::nullopt, kRefused},
            append(kRefused),
            write_read_model(kRefused),
            {"UPDATE read.orders SET status = 'cancelled' WHERE order_id = $1", "o-1", kRefused},
            {"DELETE FROM read.sagas WHERE order_id = $1", "o-1", kRefused},
            {"UPDATE read.dead_letters SET status = 'skip_requested' WHERE id = $1::bigint",
             dead_letter_, kRefused},
            {"SELECT count(*) FROM read.orders WHERE customer_id = $1", "c-1", kAllowed},
            {"SELECT count(*) FROM read.sagas", std::nullopt, kAllowed},
            {"SELECT count(*) FROM read.trace_events", std::nullopt, kAllowed},
            {"SELECT count(*) FROM read.projection_progress", std::nullopt, kAllowed},
            {"SELECT count(*) FROM read.projection_status", std::nullopt, kAllowed},
            {"SELECT error FROM read.dead_letters WHERE id = $1::bigint", dead_letter_, kAllowed},
        }));
}

TEST_F(DatabaseRoles, ProjectorRoleWritesReadModelsButNeitherEventsNorTheCommandSide) {
    expect_outcomes(
        db_.projector_url(),
        with_common({
            append(kRefused),
            {"SELECT count(*) FROM ordo.command_log", std::nullopt, kRefused},
            {"INSERT INTO ordo.command_log (key, fingerprint, status, response) VALUES ($1, "
             "'f', 200, '{}')",
             "http:forged", kRefused},
            {"SELECT count(*) FROM ordo.snapshots", std::nullopt, kRefused},
            {"UPDATE ordo.relay_checkpoint SET global_position = 0 WHERE shard = $1::int", "0",
             kRefused},
            {"DELETE FROM ordo.saga_schedule WHERE stream_id = $1", "saga.fulfillment-o-1",
             kRefused},
            {"DELETE FROM read.orders WHERE order_id = $1", "o-1", kRefused},
            {"UPDATE ordo.dead_letters SET payload = '{}' WHERE id = $1::bigint", dead_letter_,
             kRefused},
            {"DELETE FROM ordo.dead_letters WHERE id = $1::bigint", dead_letter_, kRefused},
            {"SELECT count(*) FROM ordo.events WHERE stream_id = $1", "order-seed", kAllowed},
            write_read_model(kAllowed),
            {"INSERT INTO read.sagas (order_id, saga_id, mode, status, steps, version, "
             "updated_at) VALUES ($1, 's', 'orchestration', 'running', '[]', 1, now())",
             "o-1", kAllowed},
            {"INSERT INTO ordo.projection_checkpoints (projection, partition) VALUES ($1, 0)",
             "probe", kAllowed},
            {"UPDATE ordo.dead_letters SET status = 'resolved', resolved_at = now() WHERE id = "
             "$1::bigint",
             dead_letter_, kAllowed},
        }));
}

TEST_F(DatabaseRoles, CommandRoleAppendsButWritesNoReadModelNorAnyoneElsesProgress) {
    expect_outcomes(
        db_.command_url(),
        with_common({
            write_read_model(kRefused),
            {"SELECT count(*) FROM read.orders", std::nullopt, kRefused},
            {"UPDATE ordo.projection_checkpoints SET global_position = 0 WHERE projection = $1",
             "orders", kRefused},
            {"UPDATE ordo.relay_checkpoint SET global_position = 0 WHERE shard = $1::int", "0",
             kRefused},
            {"INSERT INTO ordo.saga_schedule (stream_id, due_at) VALUES ($1, now())",
             "saga.fulfillment-o-1", kRefused},
            {"SELECT payload FROM ordo.dead_letters WHERE id = $1::bigint", dead_letter_, kRefused},
            {"INSERT INTO ordo.dead_letters (projection, partition, transaction_id, "
             "global_position, stream_id, stream_version, event_id, event_type, schema_version, "
             "category, payload, metadata, recorded_at, error, policy) VALUES ($1, 0, '1', 1, "
             "'order-x', 1, gen_random_uuid(), 'X', 1, 'order', '{}', '{}', now(), 'e', 'skip')",
             "orders", kRefused},
            // It may ask for a retry or a skip, never settle one.
            {"UPDATE ordo.dead_letters SET status = 'resolved' WHERE id = $1::bigint", dead_letter_,
             kRefused},
            append(kAllowed),
            {"SELECT version FROM ordo.streams WHERE stream_id = $1 FOR UPDATE", "order-seed",
             kAllowed},
            {"INSERT INTO ordo.command_log (key, fingerprint, status, response) VALUES ($1, "
             "'f', 200, '{}')",
             "http:probe", kAllowed},
            {"UPDATE ordo.dead_letters SET status = 'retry_requested', requested_at = now() "
             "WHERE id = $1::bigint",
             dead_letter_, kAllowed},
        }));
}

TEST_F(DatabaseRoles, RelayRoleReadsEventsAndMovesOnlyItsOwnCheckpoint) {
    expect_outcomes(
        db_.relay_url(),
        with_common({
            append(kRefused),
            write_read_model(kRefused),
            {"SELECT count(*) FROM ordo.command_log", std::nullopt, kRefused},
            {"INSERT INTO ordo.command_log (key, fingerprint, status, response) VALUES ($1, "
             "'f', 200, '{}')",
             "http:forged", kRefused},
            {"UPDATE ordo.projection_checkpoints SET global_position = 0 WHERE projection = $1",
             "orders", kRefused},
            {"SELECT count(*) FROM ordo.snapshots", std::nullopt, kRefused},
            {"SELECT count(*) FROM ordo.dead_letters", std::nullopt, kRefused},
            {"DELETE FROM ordo.relay_checkpoint WHERE shard = $1::int", "0", kRefused},
            {"SELECT count(*) FROM ordo.events WHERE stream_id = $1", "order-seed", kAllowed},
            {"INSERT INTO ordo.relay_checkpoint (shard) VALUES ($1::int)", "7", kAllowed},
            {"UPDATE ordo.relay_checkpoint SET global_position = 1 WHERE shard = $1::int", "0",
             kAllowed},
        }));
}

TEST_F(DatabaseRoles, SagasRoleRunsItsProcessesButCannotDeleteEventsOrTouchReadModels) {
    expect_outcomes(
        db_.sagas_url(),
        with_common({
            write_read_model(kRefused),
            {"SELECT count(*) FROM read.sagas", std::nullopt, kRefused},
            {"DELETE FROM ordo.command_log WHERE key = $1", "http:k", kRefused},
            {"UPDATE ordo.relay_checkpoint SET global_position = 0 WHERE shard = $1::int", "0",
             kRefused},
            {"UPDATE ordo.command_log SET created_at = now() WHERE key = $1", "http:k", kRefused},
            append(kAllowed),
            {"INSERT INTO ordo.saga_schedule (stream_id, due_at) VALUES ($1, now())",
             "saga.fulfillment-o-1", kAllowed},
            {"DELETE FROM ordo.saga_schedule WHERE stream_id = $1", "saga.fulfillment-o-1",
             kAllowed},
            {"INSERT INTO ordo.command_log (key, fingerprint, status, response) VALUES ($1, "
             "'f', 200, '{}')",
             "cmd:probe", kAllowed},
        }));
}

// An append through the function still works for a role without INSERT on the table: the
// function runs as the store's owner. Committed here, unlike the probes.
TEST_F(DatabaseRoles, AppendsGoThroughTheFunctionWhichKeepsVersionsItsOwn) {
    pqxx::connection command{db_.command_url()};
    pqxx::work tx{command};
    auto row = tx.exec_params1(
        "SELECT out_outcome, out_version FROM ordo.append_events("
        "'order-seed', 1, $1::jsonb)",
        one_event_batch());
    EXPECT_EQ(row[0].as<std::string>(), "appended");
    EXPECT_EQ(row[1].as<int>(), 2);
    tx.commit();
    pqxx::work check{command};
    EXPECT_EQ(
        check.exec_params1("SELECT version FROM ordo.streams WHERE stream_id = $1", "order-seed")[0]
            .as<int>(),
        2);
}

}  // namespace
}  // namespace ordo
