# Generates a C++ source holding every migrations/*.sql file, so the ordo binary carries
# its schema and `ordo migrate` needs no files beside it.
#   cmake -DMIGRATIONS_DIR=... -DOUTPUT=... -P embed_migrations.cmake
file(GLOB files "${MIGRATIONS_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  string(REGEX MATCH "^[0-9]+" version "${name}")
  if(version STREQUAL "")
    message(FATAL_ERROR "migration ${name} does not start with a number")
  endif()
  math(EXPR version "${version}")
  file(READ "${f}" sql)
  string(APPEND body "        {${version}, \"${name}\", R\"ordo_sql(${sql})ordo_sql\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from migrations/*.sql by cmake/embed_migrations.cmake.
#include \"eventstore/schema.hpp\"

namespace ordo::eventstore {

const std::vector<platform::pg::Migration>& migrations() {
    static const std::vector<platform::pg::Migration> kMigrations = {
${body}    };
    return kMigrations;
}

}  // namespace ordo::eventstore
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
