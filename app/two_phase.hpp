#pragma once

// Recovery for the two-phase commit contrast: gids, the in-doubt rule, `ordo 2pc-recover`.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/core/log.hpp"

// Two-phase commit across PostgreSQL databases is kept only as a measured contrast to the
// sagas (docs/sagas.md). This is the part an operator needs: the global transaction id
// format its coordinator writes, the rule that decides an in-doubt transaction, and
// `ordo 2pc-recover`, which lists and resolves orphaned prepared transactions.
namespace ordo::app::two_phase {

// PostgreSQL's limit on a gid.
inline constexpr std::size_t kMaxGidLength = 200;
inline constexpr std::size_t kMaxParticipants = 8;
inline constexpr std::size_t kMaxDatabaseName = 63;
inline constexpr std::string_view kGidPrefix = "ordo-2pc:";

// Each participant inserts its own gid into this table of its database inside the
// transaction it prepares, so the row is visible exactly when that participant committed.
// Rows must outlive every prepared participant of their global transaction.
inline constexpr std::string_view kCommittedTable = "two_phase_committed";

// One participant's gid:
//   ordo-2pc:<global id: 32 lowercase hex>:<participant index>:<database 0>,<database 1>[,...]
// Every gid names the databases of all participants, so recovery can look for the ones
// that never prepared. Database names are [a-z_][a-z0-9_]* (at most 63 characters).
struct ParticipantGid {
    std::string global_id;
    std::size_t participant = 0;
    std::vector<std::string> databases;  // of every participant, in index order

    const std::string& database() const { return databases.at(participant); }
    bool operator==(const ParticipantGid&) const = default;
};

// Throws platform::InvalidInput when a part is outside the format or the gid too long.
std::string format_gid(const ParticipantGid& gid);
// nullopt for anything that is not exactly the format above (a foreign gid).
std::optional<ParticipantGid> parse_gid(std::string_view gid);
// The gids `--commit` and `--rollback` accept, Ordo's or foreign: [A-Za-z0-9._:,+-]{1,200}.
bool is_safe_gid(std::string_view gid);

// What recovery finds for one participant of a global transaction.
enum class ParticipantState {
    prepared,   // in pg_prepared_xacts
    committed,  // not prepared, and its gid is in its database's two_phase_committed
    absent,     // neither: it never prepared, or it was rolled back
    unknown,    // its database could not be asked (missing, unreachable, no marker table)
};

enum class Decision { commit, rollback, undecided };

// The decision rule (presumed abort). A coordinator sends COMMIT PREPARED only after every
// participant prepared, so:
//   - every participant prepared or committed -> commit the prepared ones;
//   - any participant absent                  -> no participant can have committed, roll back;
//   - otherwise (some state unknown)          -> undecided: leave it to an operator.
Decision decide(const std::vector<ParticipantState>& participants);
std::string_view to_string(Decision decision);
std::string_view to_string(ParticipantState state);

// A row of pg_prepared_xacts.
struct PreparedTransaction {
    std::string gid;
    std::string database;
    std::string owner;
    std::string prepared_at;  // as PostgreSQL prints it
    double age_seconds = 0;
};

// Every prepared transaction of the server, oldest first. `server_url` may name any
// database of the server.
std::vector<PreparedTransaction> list_prepared(const std::string& server_url);

struct RecoverOptions {
    std::string server_url;  // a superuser, or the role that prepared the transactions
    std::optional<std::string> commit_gid;
    std::optional<std::string> rollback_gid;
    std::optional<int> resolve_older_than_seconds;
    bool json = false;  // one JSON object per line instead of a table
};

// `ordo 2pc-recover`: lists the prepared transactions with the decision the rule would
// take; with --commit / --rollback resolves one gid; with --resolve-older-than resolves
// every Ordo global transaction whose prepared participants are all older than that. Exit
// status 0 when all went as asked, 1 when something could not be resolved.
int run_recover(const RecoverOptions& options, const platform::Logger& log);

}  // namespace ordo::app::two_phase
