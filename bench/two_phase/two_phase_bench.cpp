// Reserve stock in one database and authorize (hold) the amount in another, two ways:
// with two-phase commit (PREPARE TRANSACTION in both, then COMMIT PREPARED in both), and as
// two independent local transactions with a compensating release when the authorization is
// refused (the shape of the saga's steps, without its orchestration). Prints throughput and
// latency under contention, and how long orders on the same rows wait while a coordinator
// stalls after PREPARE. Run through bench/two_phase/run.sh, which starts a cluster of its
// own with max_prepared_transactions enabled.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "app/two_phase.hpp"
#include "platform/core/config.hpp"

using namespace ordo;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kInventory = "two_phase_inventory";
constexpr const char* kPayments = "two_phase_payments";
constexpr int kRows = 1000;                        // skus and accounts; the hot ones come first
constexpr long long kInitial = 1'000'000'000'000;  // stock and funds: never the limit
constexpr long long kAmount = 100;
constexpr long long kRefusedAmount = 2 * kInitial;  // every tenth order: more than any account
constexpr int kRefusedEvery = 10;

struct Settings {
    std::string admin_url;
    int seconds = 8;
    int clients = 16;
    int hot_rows = 4;
    int stall_seconds = 5;
};

int bounded_setting(const char* name, int fallback, int low, int high) {
    auto text = platform::env(name);
    if (!text) return fallback;
    int value = 0;
    try {
        std::size_t used = 0;
        value = std::stoi(*text, &used);
        if (used != text->size()) throw std::invalid_argument{"trailing characters"};
    } catch (const std::exception&) {
        throw std::runtime_error(std::string{name} + " must be an integer");
    }
    if (value < low || value > high) {
        throw std::runtime_error(std::string{name} + " must be between " + std::to_string(low) +
                                 " and " + std::to_string(high));
    }
    return value;
}

Settings read_settings() {
    Settings s;
    auto url = platform::env("ORDO_PG_ADMIN_URL");
    if (!url) throw std::runtime_error("ORDO_PG_ADMIN_URL is not set (source the stack.env)");
    s.admin_url = *url;
    s.seconds = bounded_setting("ORDO_BENCH_SECONDS", s.seconds, 1, 600);
    s.clients = bounded_setting("ORDO_BENCH_CLIENTS", s.clients, 1, 128);
    s.hot_rows = bounded_setting("ORDO_BENCH_HOT_ROWS", s.hot_rows, 1, kRows);
    s.stall_seconds = bounded_setting("ORDO_BENCH_STALL_SECONDS", s.stall_seconds, 1, 120);
    return s;
}

std::string url_of(const Settings& s, const char* database) {
    return platform::with_database(s.admin_url, database);
}

// Leftovers of an interrupted run would keep their rows locked and block DROP DATABASE.
void roll_back_leftovers(const Settings& s) {
    for (const auto& p : app::two_phase::list_prepared(s.admin_url)) {
        if (p.database != kInventory && p.database != kPayments) continue;
        pqxx::connection conn{url_of(s, p.database.c_str())};
        pqxx::nontransaction txn{conn};
        txn.exec("ROLLBACK PREPARED " + txn.quote(p.gid));
    }
}

void create_databases(const Settings& s) {
    roll_back_leftovers(s);
    {
        pqxx::connection admin{s.admin_url};
        pqxx::nontransaction txn{admin};
        for (const char* db : {kInventory, kPayments}) {
            txn.exec("DROP DATABASE IF EXISTS " + txn.quote_name(db) + " WITH (FORCE)");
            txn.exec("CREATE DATABASE " + txn.quote_name(db));
        }
    }
    const std::string markers =
        "CREATE TABLE " + std::string{app::two_phase::kCommittedTable} +
        " (gid text PRIMARY KEY, recorded_at timestamptz NOT NULL DEFAULT now())";
    {
        pqxx::connection conn{url_of(s, kInventory)};
        pqxx::work txn{conn};
        txn.exec(
            "CREATE TABLE stock (sku text PRIMARY KEY, available bigint NOT NULL "
            "CHECK (available >= 0))");
        txn.exec(
            "CREATE TABLE reservations (order_id text PRIMARY KEY, sku text NOT NULL, "
            "quantity bigint NOT NULL)");
        txn.exec(markers);
        txn.exec_params(
            "INSERT INTO stock SELECT 'sku-' || g, $1 FROM generate_series(0, $2 - 1) g", kInitial,
            kRows);
        txn.commit();
    }
    {
        pqxx::connection conn{url_of(s, kPayments)};
        pqxx::work txn{conn};
        txn.exec(
            "CREATE TABLE accounts (account text PRIMARY KEY, available bigint NOT NULL "
            "CHECK (available >= 0), held bigint NOT NULL DEFAULT 0)");
        txn.exec(
            "CREATE TABLE holds (order_id text PRIMARY KEY, account text NOT NULL, "
            "amount bigint NOT NULL)");
        txn.exec(markers);
        txn.exec_params(
            "INSERT INTO accounts (account, available) "
            "SELECT 'account-' || g, $1 FROM generate_series(0, $2 - 1) g",
            kInitial, kRows);
        txn.commit();
    }
}

// One client's connections to both databases, with the statements both modes share.
struct Participants {
    pqxx::connection inventory;
    pqxx::connection payments;

    explicit Participants(const Settings& s)
        : inventory{url_of(s, kInventory)}, payments{url_of(s, kPayments)} {
        inventory.prepare("reserve",
                          "UPDATE stock SET available = available - $2 "
                          "WHERE sku = $1 AND available >= $2");
        inventory.prepare("record_reservation",
                          "INSERT INTO reservations (order_id, sku, quantity) VALUES ($1, $2, $3)");
        inventory.prepare("release", "UPDATE stock SET available = available + $2 WHERE sku = $1");
        inventory.prepare("forget_reservation", "DELETE FROM reservations WHERE order_id = $1");
        payments.prepare("authorize",
                         "UPDATE accounts SET available = available - $2, held = held + $2 "
                         "WHERE account = $1 AND available >= $2");
        payments.prepare("record_hold",
                         "INSERT INTO holds (order_id, account, amount) VALUES ($1, $2, $3)");
        for (auto* conn : {&inventory, &payments}) {
            conn->prepare("mark", "INSERT INTO " + std::string{app::two_phase::kCommittedTable} +
                                      " (gid) VALUES ($1)");
        }
    }
};

struct Order {
    std::string id;
    std::string global_id;  // 32 hex digits
    std::string sku;
    std::string account;
    long long quantity = 1;
    long long amount = kAmount;
};

enum class Outcome { confirmed, refused };

// Runs between PREPARE and COMMIT PREPARED (2PC), or between the two steps (saga).
using Pause = std::function<void()>;

Outcome order_two_phase(Participants& p, const Order& o, const Pause& pause) {
    const std::vector<std::string> databases{kInventory, kPayments};
    const auto inventory_gid = app::two_phase::format_gid({o.global_id, 0, databases});
    const auto payments_gid = app::two_phase::format_gid({o.global_id, 1, databases});
    pqxx::nontransaction inventory{p.inventory};
    pqxx::nontransaction payments{p.payments};
    bool inventory_open = false, payments_open = false;
    bool inventory_prepared = false, payments_prepared = false;
    try {
        inventory.exec("BEGIN");
        inventory_open = true;
        if (inventory.exec_prepared("reserve", o.sku, o.quantity).affected_rows() != 1) {
            inventory.exec("ROLLBACK");
            return Outcome::refused;
        }
        inventory.exec_prepared("record_reservation", o.id, o.sku, o.quantity);
        inventory.exec_prepared("mark", inventory_gid);
        payments.exec("BEGIN");
        payments_open = true;
        if (payments.exec_prepared("authorize", o.account, o.amount).affected_rows() != 1) {
            payments.exec("ROLLBACK");
            inventory.exec("ROLLBACK");
            return Outcome::refused;
        }
        payments.exec_prepared("record_hold", o.id, o.account, o.amount);
        payments.exec_prepared("mark", payments_gid);
        inventory.exec("PREPARE TRANSACTION " + inventory.quote(inventory_gid));
        inventory_open = false;
        inventory_prepared = true;
        payments.exec("PREPARE TRANSACTION " + payments.quote(payments_gid));
        payments_open = false;
        payments_prepared = true;
        if (pause) pause();
        inventory.exec("COMMIT PREPARED " + inventory.quote(inventory_gid));
        inventory_prepared = false;
        payments.exec("COMMIT PREPARED " + payments.quote(payments_gid));
        return Outcome::confirmed;
    } catch (const std::exception&) {
        // Before the commit decision, everything is undone; after it, a half-committed order
        // is what `ordo 2pc-recover` finishes, and the bench reports it as an error.
        auto quietly = [](pqxx::nontransaction& txn, const std::string& sql) {
            try {
                txn.exec(sql);
            } catch (const std::exception& e) {
                std::cerr << "cleanup failed: " << e.what() << '\n';
            }
        };
        if (inventory_open) quietly(inventory, "ROLLBACK");
        if (payments_open) quietly(payments, "ROLLBACK");
        if (inventory_prepared && payments_prepared) {
            quietly(inventory, "COMMIT PREPARED " + inventory.quote(inventory_gid));
            quietly(payments, "COMMIT PREPARED " + payments.quote(payments_gid));
        } else if (inventory_prepared) {
            quietly(inventory, "ROLLBACK PREPARED " + inventory.quote(inventory_gid));
        }
        throw;
    }
}

Outcome order_saga(Participants& p, const Order& o, const Pause& pause) {
    {
        pqxx::work reserve{p.inventory};
        if (reserve.exec_prepared("reserve", o.sku, o.quantity).affected_rows() != 1) {
            return Outcome::refused;
        }
        reserve.exec_prepared("record_reservation", o.id, o.sku, o.quantity);
        reserve.commit();
    }
    if (pause) pause();
    {
        pqxx::work authorize{p.payments};
        if (authorize.exec_prepared("authorize", o.account, o.amount).affected_rows() == 1) {
            authorize.exec_prepared("record_hold", o.id, o.account, o.amount);
            authorize.commit();
            return Outcome::confirmed;
        }
    }
    pqxx::work compensate{p.inventory};
    compensate.exec_prepared("release", o.sku, o.quantity);
    compensate.exec_prepared("forget_reservation", o.id);
    compensate.commit();
    return Outcome::refused;
}

enum class Mode { two_phase, saga };

const char* name_of(Mode mode) {
    return mode == Mode::two_phase ? "2PC" : "saga";
}

Outcome place(Mode mode, Participants& p, const Order& o, const Pause& pause = {}) {
    return mode == Mode::two_phase ? order_two_phase(p, o, pause) : order_saga(p, o, pause);
}

struct Sample {
    Clock::time_point started;
    Clock::time_point finished;
    double millis() const {
        return std::chrono::duration<double, std::milli>(finished - started).count();
    }
};

struct Tally {
    std::vector<Sample> samples;
    long confirmed = 0;
    long refused = 0;
    long errors = 0;
    std::string first_error;

    void merge(Tally&& other) {
        samples.insert(samples.end(), other.samples.begin(), other.samples.end());
        confirmed += other.confirmed;
        refused += other.refused;
        errors += other.errors;
        if (first_error.empty()) first_error = std::move(other.first_error);
    }
};

double percentile(std::vector<double> values, double q) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    auto at = static_cast<std::size_t>(std::lround(q * static_cast<double>(values.size() - 1)));
    return values[std::min(at, values.size() - 1)];
}

std::vector<double> millis_of(const std::vector<Sample>& samples) {
    std::vector<double> values;
    values.reserve(samples.size());
    for (const auto& s : samples) values.push_back(s.millis());
    return values;
}

// A fresh global id per order: run, client and sequence, as 32 hex digits.
std::string global_id(unsigned run, unsigned client, unsigned long long sequence) {
    std::array<char, 33> text{};
    std::snprintf(text.data(), text.size(), "%08x%08x%016llx", run, client, sequence);
    return text.data();
}

// `clients` threads place orders on rows [0, rows) until `until`, each on its own
// connections, opened before the clock starts.
Tally run_clients(const Settings& s, Mode mode, unsigned run, int rows, Clock::time_point until,
                  std::vector<std::unique_ptr<Participants>>& connections) {
    std::vector<Tally> tallies(static_cast<std::size_t>(s.clients));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(s.clients));
    for (int c = 0; c < s.clients; ++c) {
        threads.emplace_back([&, c] {
            auto& tally = tallies[static_cast<std::size_t>(c)];
            auto& p = *connections[static_cast<std::size_t>(c)];
            std::mt19937 random{static_cast<unsigned>(run * 1000 + static_cast<unsigned>(c))};
            std::uniform_int_distribution<int> row{0, rows - 1};
            for (unsigned long long n = 0; Clock::now() < until; ++n) {
                Order o;
                o.global_id = global_id(run, static_cast<unsigned>(c), n);
                o.id = "order-" + o.global_id;
                o.sku = "sku-" + std::to_string(row(random));
                o.account = "account-" + std::to_string(row(random));
                if (n % kRefusedEvery == kRefusedEvery - 1) o.amount = kRefusedAmount;
                Sample sample{Clock::now(), {}};
                try {
                    auto outcome = place(mode, p, o);
                    sample.finished = Clock::now();
                    tally.samples.push_back(sample);
                    (outcome == Outcome::confirmed ? tally.confirmed : tally.refused) += 1;
                } catch (const std::exception& e) {
                    ++tally.errors;
                    if (tally.first_error.empty()) tally.first_error = e.what();
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    Tally total;
    for (auto& t : tallies) total.merge(std::move(t));
    return total;
}

std::vector<std::unique_ptr<Participants>> connect_clients(const Settings& s) {
    std::vector<std::unique_ptr<Participants>> connections;
    connections.reserve(static_cast<std::size_t>(s.clients));
    for (int c = 0; c < s.clients; ++c) connections.push_back(std::make_unique<Participants>(s));
    return connections;
}

struct Throughput {
    double orders_per_second = 0;
    double p50 = 0;
    double p99 = 0;
    long refused = 0;
    long errors = 0;
};

Throughput measure(const Settings& s, Mode mode, unsigned run, int rows) {
    auto connections = connect_clients(s);
    auto started = Clock::now();
    auto tally =
        run_clients(s, mode, run, rows, started + std::chrono::seconds(s.seconds), connections);
    double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    if (tally.errors) std::cerr << name_of(mode) << ": first error: " << tally.first_error << '\n';
    auto millis = millis_of(tally.samples);
    return {static_cast<double>(tally.confirmed + tally.refused) / elapsed,
            percentile(millis, 0.50), percentile(millis, 0.99), tally.refused, tally.errors};
}

struct Stall {
    long completed_during_stall = 0;  // other orders on the stalled rows
    long started_during_stall = 0;
    double longest_wait = 0;  // ms, of the orders started during the stall
    double p50_wait = 0;
    long errors = 0;
};

// One coordinator places an order on sku-0 / account-0 and stalls for stall_seconds after
// PREPARE (2PC) or after its first step (saga); meanwhile every client places orders on the
// same rows until a second after the stall ends.
Stall measure_stall(const Settings& s, Mode mode, unsigned run) {
    auto connections = connect_clients(s);
    Participants coordinator{s};
    std::promise<Clock::time_point> paused;
    auto paused_at = paused.get_future();
    const auto stall = std::chrono::seconds(s.stall_seconds);
    std::thread stalled{[&] {
        Order o{"order-stalled-" + std::to_string(run), global_id(run, 0xffffffff, 0), "sku-0",
                "account-0"};
        bool pausing = false;
        try {
            place(mode, coordinator, o, [&] {
                pausing = true;
                paused.set_value(Clock::now());
                std::this_thread::sleep_for(stall);
            });
        } catch (const std::exception& e) {
            if (!pausing) paused.set_exception(std::current_exception());
            std::cerr << name_of(mode) << ": the stalled order failed: " << e.what() << '\n';
        }
    }};
    Clock::time_point stall_began;
    try {
        stall_began = paused_at.get();
    } catch (const std::exception&) {
        stalled.join();
        throw;
    }
    auto stall_ends = stall_began + stall;
    auto tally = run_clients(s, mode, run, 1, stall_ends + std::chrono::seconds(1), connections);
    stalled.join();
    Stall result;
    std::vector<double> waits;
    for (const auto& sample : tally.samples) {
        if (sample.finished < stall_ends) ++result.completed_during_stall;
        if (sample.started < stall_ends) {
            ++result.started_during_stall;
            waits.push_back(sample.millis());
        }
    }
    result.longest_wait = waits.empty() ? 0 : *std::max_element(waits.begin(), waits.end());
    result.p50_wait = percentile(waits, 0.5);
    result.errors = tally.errors;
    if (tally.errors) std::cerr << name_of(mode) << ": first error: " << tally.first_error << '\n';
    return result;
}

// Money and stock are conserved, every confirmed order holds both its reservation and its
// authorization, and no prepared transaction is left: printed, not asserted.
std::string check_invariants(const Settings& s) {
    pqxx::connection inventory{url_of(s, kInventory)};
    pqxx::connection payments{url_of(s, kPayments)};
    pqxx::read_transaction i{inventory};
    pqxx::read_transaction p{payments};
    auto stock = i.exec1(
        "SELECT (SELECT sum(available) FROM stock) + "
        "(SELECT coalesce(sum(quantity), 0) FROM reservations), "
        "(SELECT count(*) FROM reservations)");
    auto funds = p.exec1(
        "SELECT (SELECT sum(available) + sum(held) FROM accounts), "
        "(SELECT coalesce(sum(amount), 0) FROM holds) = (SELECT sum(held) FROM accounts), "
        "(SELECT count(*) FROM holds)");
    auto leftover = i.exec1("SELECT count(*) FROM pg_prepared_xacts")[0].as<long>();
    const long long total = kInitial * kRows;
    std::string problems;
    if (stock[0].as<long long>() != total) problems += " stock not conserved;";
    if (funds[0].as<long long>() != total) problems += " money not conserved;";
    if (!funds[1].as<bool>()) problems += " holds differ from held amounts;";
    if (stock[1].as<long>() != funds[2].as<long>()) {
        problems += " " + stock[1].as<std::string>() + " reservations but " +
                    funds[2].as<std::string>() + " holds;";
    }
    if (leftover) problems += " " + std::to_string(leftover) + " prepared transactions left;";
    return problems.empty() ? "consistent (" + stock[1].as<std::string>() + " confirmed orders)"
                            : "INCONSISTENT:" + problems;
}

std::string load_average() {
    std::ifstream in{"/proc/loadavg"};
    std::string one, five;
    in >> one >> five;
    return one + " " + five;
}

}  // namespace

int main() {
    try {
        auto s = read_settings();
        {
            pqxx::connection admin{s.admin_url};
            pqxx::nontransaction txn{admin};
            auto allowed = txn.exec1("SHOW max_prepared_transactions")[0].as<int>();
            // Each client holds up to two prepared transactions at once; the stalled
            // coordinator two more.
            if (allowed < 2 * s.clients + 2) {
                std::cerr << "max_prepared_transactions is " << allowed << "; " << s.clients
                          << " clients need " << 2 * s.clients + 2
                          << " (start the cluster with ORDO_PG_MAX_PREPARED_TRANSACTIONS)\n";
                return 2;
            }
            std::cout << "PostgreSQL " << txn.exec1("SHOW server_version")[0].c_str() << ", fsync "
                      << txn.exec1("SHOW fsync")[0].c_str() << ", synchronous_commit "
                      << txn.exec1("SHOW synchronous_commit")[0].c_str()
                      << ", max_prepared_transactions " << allowed << "; load average "
                      << load_average() << "\n";
        }
        create_databases(s);

        std::printf(
            "\nreserve 1 unit (database %s) + authorize %lld (database %s) per order; "
            "%d clients, %d s per measurement; every %dth order is refused by payments\n\n",
            kInventory, kAmount, kPayments, s.clients, s.seconds, kRefusedEvery);
        std::printf("%-22s %-6s %12s %10s %10s %9s %7s\n", "rows (skus, accounts)", "mode",
                    "orders/s", "p50 ms", "p99 ms", "refused", "errors");
        unsigned run = 1;
        struct Row {
            std::string label;
            Throughput two_phase, saga;
        };
        std::vector<Row> rows;
        for (int row_count : {s.hot_rows, kRows}) {
            Row row{std::to_string(row_count) + (row_count == s.hot_rows ? " (hot)" : ""), {}, {}};
            for (auto mode : {Mode::two_phase, Mode::saga}) {
                auto t = measure(s, mode, run++, row_count);
                (mode == Mode::two_phase ? row.two_phase : row.saga) = t;
                std::printf("%-22s %-6s %12.0f %10.2f %10.2f %9ld %7ld\n", row.label.c_str(),
                            name_of(mode), t.orders_per_second, t.p50, t.p99, t.refused, t.errors);
                std::fflush(stdout);
            }
            rows.push_back(row);
        }
        std::printf("\n%-22s %18s %18s %18s\n", "saga / 2PC", "throughput", "p50 latency",
                    "p99 latency");
        for (const auto& r : rows) {
            std::printf("%-22s %17.2fx %17.2fx %17.2fx\n", r.label.c_str(),
                        r.saga.orders_per_second / r.two_phase.orders_per_second,
                        r.saga.p50 / r.two_phase.p50, r.saga.p99 / r.two_phase.p99);
        }

        std::printf(
            "\nstalled coordinator: it holds sku-0 / account-0 for %d s after PREPARE (2PC) or "
            "between its steps (saga);\n%d clients order the same rows meanwhile\n\n",
            s.stall_seconds, s.clients);
        std::printf("%-6s %24s %22s %18s %18s %7s\n", "mode", "completed during stall",
                    "started during stall", "longest wait ms", "p50 wait ms", "errors");
        std::array<Stall, 2> stalls;
        for (auto mode : {Mode::two_phase, Mode::saga}) {
            auto st = measure_stall(s, mode, run++);
            stalls[mode == Mode::two_phase ? 0 : 1] = st;
            std::printf("%-6s %24ld %22ld %18.1f %18.2f %7ld\n", name_of(mode),
                        st.completed_during_stall, st.started_during_stall, st.longest_wait,
                        st.p50_wait, st.errors);
            std::fflush(stdout);
        }
        std::printf("\n2PC / saga: longest wait %.0fx, p50 wait %.0fx\n",
                    stalls[0].longest_wait / std::max(stalls[1].longest_wait, 0.001),
                    stalls[0].p50_wait / std::max(stalls[1].p50_wait, 0.001));
        std::printf("\nafter the run: %s\n", check_invariants(s).c_str());
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "two_phase bench: " << e.what() << '\n';
        return 1;
    }
}
