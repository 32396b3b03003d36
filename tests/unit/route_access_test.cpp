// The router and the access decision as a pair: whatever spelling a request's path takes, it
// either resolves to the same route (and so meets that route's access check) or is refused,
// and nothing but an open route is allowed without a token.

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "platform/http/http.hpp"

namespace ordo::platform::http {
namespace {

constexpr auto bit(Access a) {
    return static_cast<std::uint8_t>(a);
}

Router::Match found(Access access) {
    Router::Match m;
    m.kind = Router::Match::Kind::found;
    m.route = "/v1/r";
    m.access = access;
    return m;
}

Router::Match of_kind(Router::Match::Kind kind, Access access = Access::read) {
    Router::Match m;
    m.kind = kind;
    m.access = access;
    return m;
}

const Caller kReader{"reader", bit(Access::read)};
const Caller kWriter{"writer", bit(Access::commands)};
const Caller kAdmin{"admin", bit(Access::admin)};

TEST(DecideAccess, WithoutTokensConfiguredEverythingIsAllowed) {
    for (auto kind : {Router::Match::Kind::found, Router::Match::Kind::not_found,
                      Router::Match::Kind::malformed, Router::Match::Kind::method_not_allowed}) {
        EXPECT_EQ(decide_access(of_kind(kind, Access::admin), false, nullptr), Verdict::allowed);
    }
}

TEST(DecideAccess, AnOpenRouteNeedsNoToken) {
    EXPECT_EQ(decide_access(found(Access::open), true, nullptr), Verdict::allowed);
    // Its wrong method is told freely too.
    EXPECT_EQ(decide_access(of_kind(Router::Match::Kind::method_not_allowed, Access::open), true,
                            nullptr),
              Verdict::allowed);
}

TEST(DecideAccess, AScopedRouteNeedsATokenWithItsScope) {
    EXPECT_EQ(decide_access(found(Access::commands), true, nullptr), Verdict::unauthenticated);
    EXPECT_EQ(decide_access(found(Access::commands), true, &kReader), Verdict::forbidden);
    EXPECT_EQ(decide_access(found(Access::commands), true, &kAdmin), Verdict::forbidden);
    EXPECT_EQ(decide_access(found(Access::commands), true, &kWriter), Verdict::allowed);
    EXPECT_EQ(decide_access(found(Access::read), true, &kWriter), Verdict::forbidden);
    EXPECT_EQ(decide_access(found(Access::read), true, &kReader), Verdict::allowed);
    EXPECT_EQ(decide_access(found(Access::admin), true, &kReader), Verdict::forbidden);
    EXPECT_EQ(decide_access(found(Access::admin), true, &kAdmin), Verdict::allowed);
}

TEST(DecideAccess, WhatMatchesNoRouteIsToldOnlyToAKnownCaller) {
    for (auto kind : {Router::Match::Kind::not_found, Router::Match::Kind::malformed,
                      Router::Match::Kind::method_not_allowed}) {
        EXPECT_EQ(decide_access(of_kind(kind), true, nullptr), Verdict::unauthenticated);
        // Any valid token learns the 404, 400 or 405: it names no route it may not use.
        EXPECT_EQ(decide_access(of_kind(kind), true, &kWriter), Verdict::allowed);
    }
}

// --- generated spellings ----------------------------------------------------------------

struct Route {
    const char* method;
    const char* pattern;
    Access access;
    const char* example;  // a concrete path the pattern matches
};

// The shape of both services' tables: command writes, reads, admin routes and open ones.
const std::vector<Route> kRoutes{
    {"POST", "/v1/accounts/{account_id}/deposits", Access::commands,
     "/v1/accounts/acct-x/deposits"},
    {"POST", "/v1/inventory/{sku}/receipts", Access::commands, "/v1/inventory/sku-1/receipts"},
    {"POST", "/v1/orders", Access::commands, "/v1/orders"},
    {"POST", "/v1/orders/{order_id}/cancel", Access::commands, "/v1/orders/o-1/cancel"},
    {"GET", "/v1/orders/{order_id}", Access::read, "/v1/orders/o-1"},
    {"GET", "/v1/accounts/{account_id}", Access::read, "/v1/accounts/acct-x"},
    {"GET", "/v1/admin/dead-letters", Access::admin, "/v1/admin/dead-letters"},
    {"POST", "/v1/admin/dead-letters/{id}/retry", Access::admin, "/v1/admin/dead-letters/7/retry"},
    {"GET", "/healthz", Access::open, "/healthz"},
};

// What the table declares a route needs: the expectation comes from here, not from the match.
Access declared(const std::string& method, const std::string& pattern) {
    for (const auto& r : kRoutes) {
        if (method == r.method && pattern == r.pattern) return r.access;
    }
    ADD_FAILURE() << "the router found a route the table lacks: " << method << " " << pattern;
    return Access::admin;
}

// Whether a caller's scope bits include what a route declares (open needs none).
bool holds(const Caller* caller, Access needed) {
    return needed == Access::open || (caller != nullptr && (caller->scopes & bit(needed)) != 0);
}

Router route_table() {
    Router router;
    for (const auto& r : kRoutes) {
        router.add(r.method, r.pattern, r.access, [](Request&) { return Response{}; });
    }
    return router;
}

std::string pct(unsigned char c, bool upper) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    return std::string{'%', digits[c >> 4], digits[c & 15]};
}

// Every other way to write `path` that a client, proxy or attacker might try: each byte
// escaped (both hex cases), every byte escaped, each letter's case flipped, slashes doubled,
// escaped or turned to backslashes, dot segments in several spellings, and random
// combinations of all of those.
std::set<std::string> spellings(const std::string& path, std::mt19937& rng) {
    std::set<std::string> out;
    std::vector<std::size_t> slashes;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '/') slashes.push_back(i);
    }
    auto with = [&](std::size_t at, std::size_t len, const std::string& text) {
        return path.substr(0, at) + text + path.substr(at + len);
    };
    std::string all_escaped;
    for (std::size_t i = 0; i < path.size(); ++i) {
        auto c = static_cast<unsigned char>(path[i]);
        if (c == '/') {
            all_escaped += '/';
            continue;
        }
        all_escaped += pct(c, true);
        out.insert(with(i, 1, pct(c, true)));
        out.insert(with(i, 1, pct(c, false)));
        if (std::isalpha(c) != 0) {
            out.insert(with(i, 1, std::string(1, static_cast<char>(c ^ 0x20))));
        }
    }
    out.insert(all_escaped);
    for (std::size_t at : slashes) {
        for (const char* text : {"//", "/./", "/%2e/", "/%2E/", "/../", "/%2e%2e/", "/.%2E/",
                                 "/x/../", "/x/%2e%2e/", "%2F", "%2f", "\\", "%5C", "/%00/"}) {
            out.insert(with(at, 1, text));
        }
    }
    out.insert(path + "/");
    out.insert(path + "/.");
    out.insert(path + "/..");
    out.insert(path + "%2F");
    out.insert("/v1/.." + path);
    out.insert("/." + path);
    // Random stacks of small edits.
    const std::vector<std::string> pieces{"%", "%2",  "%2e", ".",  "..",
                                          "/", "%2F", "%00", "\\", "V"};
    for (int n = 0; n < 200; ++n) {
        std::string s = path;
        int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            std::size_t at = 1 + rng() % s.size();
            if (rng() % 2 == 0 && at < s.size() && s[at] != '/') {
                s = s.substr(0, at) + pct(static_cast<unsigned char>(s[at]), rng() % 2 == 0) +
                    s.substr(at + 1);
            } else {
                s.insert(at, pieces[rng() % pieces.size()]);
            }
        }
        out.insert(s);
    }
    out.erase(path);
    return out;
}

TEST(RouteAccess, NoSpellingOfAPathReachesARouteItsCallerMayNotUse) {
    const Router router = route_table();
    std::mt19937 rng{20261203};
    const std::vector<const Caller*> callers{nullptr, &kReader, &kWriter, &kAdmin};
    std::size_t tried = 0;
    std::size_t resolved = 0;
    for (const auto& r : kRoutes) {
        const auto canonical = router.match(r.method, r.example);
        ASSERT_EQ(canonical.kind, Router::Match::Kind::found) << r.example;
        for (const auto& path : spellings(r.example, rng)) {
            SCOPED_TRACE(std::string(r.method) + " " + path);
            auto m = router.match(r.method, path);
            ++tried;
            if (m.kind == Router::Match::Kind::found && m.route == canonical.route &&
                m.params == canonical.params) {
                ++resolved;
            }
            for (const Caller* caller : callers) {
                Verdict v = decide_access(m, true, caller);
                if (m.kind == Router::Match::Kind::found) {
                    // A spelling that reaches a handler meets the check the table declares for
                    // that handler, whatever the match reports.
                    EXPECT_EQ(v == Verdict::allowed, holds(caller, declared(r.method, m.route)));
                    EXPECT_EQ(m.access, declared(r.method, m.route));
                } else if (caller == nullptr) {
                    // Past no check unless it is only the wrong method on an open path.
                    EXPECT_TRUE(v != Verdict::allowed || m.access == Access::open);
                }
            }
            // Without a token, only the open route is ever allowed, in any spelling.
            if (r.access != Access::open && m.kind == Router::Match::Kind::found &&
                m.route == canonical.route) {
                EXPECT_EQ(decide_access(m, true, nullptr), Verdict::unauthenticated);
            }
        }
    }
    // The generator produced many spellings, and the equivalent ones (%76 for 'v') resolved.
    EXPECT_GT(tried, 2000U);
    EXPECT_GT(resolved, 100U);
}

}  // namespace
}  // namespace ordo::platform::http
