// The table of problem types, the router's patterns and most-specific matching with strict
// path decoding, the access decision, and the parsing of request targets.
#include "platform/http/http.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/url_view.hpp>
#include <nlohmann/json.hpp>

namespace ordo::platform::http {
namespace {

struct ProblemType {
    std::string_view type;
    int status;
    std::string_view title;
};

// The one table of problem codes: clients key on `type`, the status and title follow from it.
constexpr std::array kProblemTypes{
    ProblemType{"bad_request", 400, "Bad request"},
    ProblemType{"malformed_json", 400, "Malformed JSON"},
    ProblemType{"unauthorized", 401, "Unauthorized"},
    ProblemType{"forbidden", 403, "Forbidden"},
    ProblemType{"not_found", 404, "Not found"},
    ProblemType{"method_not_allowed", 405, "Method not allowed"},
    ProblemType{"request_timeout", 408, "Request timeout"},
    ProblemType{"conflict", 409, "Conflict"},
    ProblemType{"gone", 410, "Gone"},
    ProblemType{"version_mismatch", 412, "Version mismatch"},
    ProblemType{"payload_too_large", 413, "Payload too large"},
    ProblemType{"unsupported_media_type", 415, "Unsupported media type"},
    ProblemType{"validation_failed", 422, "Validation failed"},
    ProblemType{"idempotency_key_reused", 422, "Idempotency key reused"},
    ProblemType{"header_too_large", 431, "Request header fields too large"},
    ProblemType{"internal", 500, "Internal error"},
    ProblemType{"not_implemented", 501, "Not implemented"},
    ProblemType{"bad_gateway", 502, "Bad gateway"},
    ProblemType{"unavailable", 503, "Service unavailable"},
    ProblemType{"projection_lagging", 503, "Projection lagging"},
    ProblemType{"outcome_unknown", 503, "Outcome unknown"},
};

const ProblemType* find_problem_type(std::string_view type) {
    auto it = std::find_if(kProblemTypes.begin(), kProblemTypes.end(),
                           [&](const ProblemType& p) { return p.type == type; });
    return it == kProblemTypes.end() ? nullptr : &*it;
}

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

// Splits "/a/b/c" into {"a", "b", "c"}; "/" gives one empty segment, so it only matches "/".
std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> out;
    if (path.empty() || path.front() != '/') return out;
    path.remove_prefix(1);
    while (true) {
        auto slash = path.find('/');
        out.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return out;
}

}  // namespace

std::optional<std::string> Request::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) return value;
    }
    return std::nullopt;
}

Response Response::json(int status, const nlohmann::json& body) {
    Response r;
    r.status = status;
    r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
}

Response Response::later(std::function<void(Resume)> park) {
    Response r;
    r.park = std::move(park);
    return r;
}

Response Response::streamed(std::string content_type, std::function<void(Stream)> open) {
    Response r;
    r.content_type = std::move(content_type);
    r.open_stream = std::move(open);
    return r;
}

Response problem(int status, std::string type, std::string detail, std::vector<FieldError> errors) {
    const ProblemType* known = find_problem_type(type);
    nlohmann::json body = {{"type", type},
                           {"title", known ? known->title : std::string_view{"Error"}},
                           {"status", status},
                           {"detail", std::move(detail)}};
    if (!errors.empty()) {
        auto& list = body["errors"] = nlohmann::json::array();
        for (auto& e : errors) {
            list.push_back({{"field", std::move(e.field)}, {"message", std::move(e.message)}});
        }
    }
    Response r = Response::json(status, body);
    r.content_type = "application/problem+json";
    if (type == "unavailable" || type == "outcome_unknown") {
        r.headers.emplace_back("Retry-After", "1");
    }
    return r;
}

Response problem(std::string type, std::string detail, std::vector<FieldError> errors) {
    int status = problem_status(type).value_or(500);
    return problem(status, std::move(type), std::move(detail), std::move(errors));
}

std::optional<int> problem_status(std::string_view type) {
    const ProblemType* known = find_problem_type(type);
    if (known == nullptr) return std::nullopt;
    return known->status;
}

void Router::add(std::string method, std::string pattern, Access access, Handler handler) {
    if (method.empty()) throw std::invalid_argument("route method must not be empty");
    if (pattern.empty() || pattern.front() != '/') {
        throw std::invalid_argument("route pattern must start with '/': " + pattern);
    }
    Route route{std::move(method), pattern, {}, access, std::move(handler)};
    for (std::string_view segment : split_path(pattern)) {
        bool opens = segment.find('{') != std::string_view::npos;
        bool closes = segment.find('}') != std::string_view::npos;
        if (opens || closes) {
            if (segment.size() < 3 || segment.front() != '{' || segment.back() != '}' ||
                segment.substr(1, segment.size() - 2).find_first_of("{}") !=
                    std::string_view::npos) {
                throw std::invalid_argument("a route parameter must be a whole segment: " +
                                            pattern);
            }
            route.segments.push_back({std::string(segment.substr(1, segment.size() - 2)), true});
        } else {
            route.segments.push_back({std::string(segment), false});
        }
    }
    for (const auto& existing : routes_) {
        if (existing.method == route.method && existing.pattern == route.pattern) {
            throw std::invalid_argument("route registered twice: " + route.method + " " + pattern);
        }
    }
    routes_.push_back(std::move(route));
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
    auto refuse = [](std::string why) {
        Match m;
        m.kind = Match::Kind::malformed;
        m.malformed = std::move(why);
        return m;
    };
    if (path.empty() || path.front() != '/') return refuse("the path must start with '/'");
    std::vector<std::string_view> raw = split_path(path);
    std::vector<std::string> decoded;
    decoded.reserve(raw.size());
    for (std::string_view segment : raw) {
        if (segment.empty()) {
            if (path == "/") break;  // the root: one empty segment, matched like any other
            return refuse("the path has an empty segment");
        }
        auto d = decode_segment(segment);
        if (!d) return refuse("the path has a malformed percent-escape");
        if (*d == "." || *d == "..") return refuse("the path has a dot segment");
        for (char c : *d) {
            auto u = static_cast<unsigned char>(c);
            if (c == '/' || c == '\\' || u < 0x20 || u == 0x7f) {
                return refuse("a path segment decodes to a '/', a '\\' or a control character");
            }
        }
        decoded.push_back(std::move(*d));
    }
    if (path == "/") decoded.emplace_back();

    // Specificity: a literal beats a parameter at the first position where two patterns differ.
    auto more_specific = [](const Route& a, const Route& b) {
        for (std::size_t i = 0; i < a.segments.size(); ++i) {
            if (a.segments[i].parameter != b.segments[i].parameter) return !a.segments[i].parameter;
        }
        return false;
    };
    const Route* best = nullptr;
    std::vector<std::string> allowed;
    std::optional<Access> other_access;  // open if any other method is, else the first
    for (const auto& route : routes_) {
        if (route.segments.size() != decoded.size()) continue;
        bool fits = true;
        for (std::size_t i = 0; i < decoded.size() && fits; ++i) {
            const Segment& s = route.segments[i];
            fits = s.parameter ? !decoded[i].empty() : s.text == decoded[i];
        }
        if (!fits) continue;
        if (route.method == method) {
            if (best == nullptr || more_specific(route, *best)) best = &route;
        } else {
            if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
                allowed.push_back(route.method);
            }
            if (!other_access || route.access == Access::open) other_access = route.access;
        }
    }

    Match m;
    if (best != nullptr) {
        m.kind = Match::Kind::found;
        m.handler = &best->handler;
        m.route = best->pattern;
        m.access = best->access;
        for (std::size_t i = 0; i < decoded.size(); ++i) {
            if (best->segments[i].parameter) m.params[best->segments[i].text] = decoded[i];
        }
    } else if (!allowed.empty()) {
        m.kind = Match::Kind::method_not_allowed;
        m.access = other_access.value_or(Access::open);
        std::sort(allowed.begin(), allowed.end());
        m.allowed = std::move(allowed);
    }
    return m;
}

std::vector<Router::Listed> Router::routes() const {
    std::vector<Listed> out;
    out.reserve(routes_.size());
    for (const auto& r : routes_) out.push_back({r.method, r.pattern, r.access});
    return out;
}

std::string_view access_name(Access access) {
    switch (access) {
        case Access::open:
            return "open";
        case Access::commands:
            return "commands";
        case Access::read:
            return "read";
        case Access::admin:
            return "admin";
        case Access::telemetry:
            return "telemetry";
    }
    return "unknown";
}

Verdict decide_access(const Router::Match& match, bool tokens_required, const Caller* caller) {
    if (!tokens_required) return Verdict::allowed;
    bool open =
        match.access == Access::open && (match.kind == Router::Match::Kind::found ||
                                         match.kind == Router::Match::Kind::method_not_allowed);
    if (open) return Verdict::allowed;
    if (caller == nullptr) return Verdict::unauthenticated;
    if (match.kind == Router::Match::Kind::found && !caller->may(match.access)) {
        return Verdict::forbidden;
    }
    return Verdict::allowed;
}

std::optional<Target> parse_target(std::string_view target) {
    Target out;
    if (!target.empty() && target.front() == '/') {
        // The path is left encoded and unchecked: the router decodes it segment by segment,
        // and a path it cannot decode is simply not found.
        auto question = target.find('?');
        out.path = std::string(target.substr(0, question));
        if (question == std::string_view::npos) return out;
        auto query = boost::urls::parse_query(target.substr(question + 1));
        if (!query) return std::nullopt;
        boost::urls::encoding_opts plus_is_space{true};
        for (auto param : *query) {
            out.query.emplace(param.key.decode(plus_is_space), param.value.decode(plus_is_space));
        }
        return out;
    }
    auto absolute = boost::urls::parse_absolute_uri(target);
    if (!absolute) return std::nullopt;
    out.path = absolute->encoded_path();
    if (out.path.empty()) out.path = "/";
    for (auto param : absolute->params(boost::urls::encoding_opts{true})) {
        out.query.emplace(std::string(param.key), std::string(param.value));
    }
    return out;
}

std::optional<std::string> decode_segment(std::string_view segment) {
    auto pct = boost::urls::make_pct_string_view(segment);
    if (!pct) return std::nullopt;
    return pct->decode();
}

}  // namespace ordo::platform::http
