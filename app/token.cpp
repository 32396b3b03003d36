// `ordo token new`: prints a fresh API token once, with the token-file line that admits it.

#include <iostream>

#include "app/subcommands.hpp"
#include "platform/http/api_tokens.hpp"

namespace ordo::app {

int run_token_new(const std::string& name, const std::string& scopes) {
    auto parsed = platform::http::parse_scopes(scopes);
    if (!parsed) {
        std::cerr << "ordo token new: --scopes is a comma-separated list of commands, read, "
                     "admin, telemetry\n";
        return 2;
    }
    platform::http::NewToken issued;
    try {
        issued = platform::http::new_token(name, *parsed);
    } catch (const std::exception& e) {
        std::cerr << "ordo token new: " << e.what() << "\n";
        return 2;
    }
    std::cout << "token: " << issued.token << "\n"
              << "line:  " << issued.line << "\n";
    std::cerr << "The token is shown only now; give it to " << name
              << " (as 'Authorization: Bearer <token>').\n"
                 "Add the line to the file ORDO_API_TOKENS_FILE names, then send SIGHUP to the "
                 "command and query services (or restart them).\n";
    return 0;
}

}  // namespace ordo::app
