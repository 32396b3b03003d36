// The operator console: the page and its script, served by the query service at /console,
// and the one route it needs besides the API (docs/operations.md, "Console").
#pragma once

#include <chrono>
#include <string>

#include "platform/core/log.hpp"
#include "platform/http/http.hpp"

namespace ordo::query {

struct ConsoleOptions {
    // Where the Command API is (ORDO_COMMAND_URL), for the dead-letter actions; empty: they
    // answer 503 saying so.
    std::string command_url;
    std::string ca_file;  // the CAs that verify command_url's certificate (PEM); empty: system
    std::chrono::milliseconds timeout{5000};  // one forwarded action, end to end
};

// GET /console and GET /console/{file}: the console's static files (query/console/), open to
// anyone because they hold no data. Every view fetches its data from the API with the
// operator's token, which the page keeps in the tab's sessionStorage and sends as a bearer
// token: no cookie carries authority, so no other site can act with it. The files are sent
// with a Content-Security-Policy that allows scripts, styles and requests to this origin
// only, and an ETag (If-None-Match answers 304).
//
// POST /console/api/dead-letters/{id}/retry and …/skip, admin scope: the dead-letter actions
// live on the Command API, another origin, so the console asks them here. The request goes
// to `command_url` with the caller's own token and trace, and its answer comes back as it
// was (status and JSON body); an unreachable Command API is 503 unavailable, a Command API
// that answers something else than JSON is 502. The request must carry X-Ordo-Console (403
// otherwise), which no cross-site form or simple request can: with the API open (no tokens,
// `ordo dev`) that is what keeps another site from skipping letters through a browser.
//
// Throws platform::InvalidInput when the CA file cannot be loaded.
void add_console_routes(platform::http::Router& router, ConsoleOptions options,
                        platform::Logger log);

}  // namespace ordo::query
