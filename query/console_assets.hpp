// The console's static files (query/console/), compiled into the binary so that the query
// service serves them without a file system or a build chain (cmake/embed_console.cmake).
#pragma once

#include <span>
#include <string_view>

namespace ordo::query {

struct ConsoleAsset {
    std::string_view name;          // the file's name, e.g. "console.js"
    std::string_view content_type;  // from its extension
    std::string_view body;
};

// Every file of query/console/, sorted by name.
std::span<const ConsoleAsset> console_assets();

}  // namespace ordo::query
