#pragma once

// A batch's rows for one set-based statement: JSON text that the statement reads with
// jsonb_to_recordset($1::jsonb), sent in bounded chunks.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <pqxx/transaction_base>

namespace ordo::projections {

// Collects rows (JSON objects) for `sql`, whose one parameter is the JSON array of them, and
// runs `sql` each time about `chunk_bytes` of text has gathered, and once more at done(). So
// the statement text of a batch of large rows (orders of a hundred lines) is held a chunk at
// a time, and no second document of a row is built; a row is never split. Rows of one writer
// must have distinct keys, so that chunks written one after another leave what one statement
// would, and should come in key order, so that transactions writing the same rows lock
// them in the same order.
class SqlRows {
   public:
    static constexpr std::size_t kChunkBytes = 1 << 20;

    SqlRows(pqxx::transaction_base& txn, std::string sql, std::size_t chunk_bytes = kChunkBytes);

    // Adds `row`, with `raw_json` (JSON text already serialized, such as an order's lines)
    // as its field `raw_name` when that is not empty.
    void add(const nlohmann::json& row, std::string_view raw_name = {},
             std::string_view raw_json = {});

    // Runs the statement for the rows not yet sent. Until it is called, some may not be.
    void done();

   private:
    pqxx::transaction_base& txn_;
    std::string sql_;
    std::string name_;  // of the prepared statement
    std::size_t chunk_bytes_;
    std::string text_;  // "[" and the rows so far, without the closing bracket
};

}  // namespace ordo::projections
