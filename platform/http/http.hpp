// The plain HTTP types handlers see (requests, responses, problem documents, access scopes)
// and the Router that maps a method and a path, spelt one way only, to a handler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "platform/core/trace.hpp"

// Plain HTTP types and the router. No Beast here: handlers and their tests see only these.
namespace ordo::platform::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;
    std::string target;                        // as received, e.g. "/v1/orders?limit=10"
    std::string path;                          // the target's path, still percent-encoded
    std::map<std::string, std::string> query;  // decoded ('+' is a space); first value wins
    Headers headers;                           // names lower-cased, in arrival order
    std::string body;
    std::map<std::string, std::string> params;  // path parameters, percent-decoded
    std::string route;                          // the matched template, "/v1/orders/{order_id}"
    TraceContext trace;                         // the server span of this request
    std::string remote;                         // peer "address:port"
    // The name of the caller's token (TokenSet); "anonymous" when the server has no tokens.
    std::string caller;

    // Case-insensitive; the first occurrence when a header is repeated.
    std::optional<std::string> header(std::string_view name) const;
};

struct Response;

// Finishes a request whose handler answered Response::later. Call resume() once, from any
// thread, with the work that makes the real answer: it runs on a worker like a handler, and
// is queued even when the server's queue is full (parked requests are bounded already: one
// per connection at most). Later calls are ignored. A request never resumed is answered 500
// when the last reference goes; one resumed after the server stopped is not answered (the
// stop cut its connection).
class Resumer {
   public:
    virtual ~Resumer() = default;
    virtual void resume(std::function<Response()> answer) = 0;
};
using Resume = std::shared_ptr<Resumer>;

// The sending end of a response streamed in pieces (server-sent events), once its status line
// and headers are on their way. Pieces go out in the order sent and nothing else is written
// after them; the connection closes when the stream ends, so a streamed response is always
// the last on its connection. send() never blocks: the sender watches pending() and decides
// what a client that does not read gets (the server buffers whatever it is given). Safe from
// any thread.
class StreamSink {
   public:
    virtual ~StreamSink() = default;
    // Queues `bytes` after what is queued. False, and nothing queued, once the stream has
    // ended: the client went away, the server is stopping, or end() was called. A send that
    // races with an end the server makes (a stop, new tokens) may return true and still be
    // dropped: what a client received is what it read, never more.
    virtual bool send(std::string bytes) = 0;
    // Bytes queued and not yet written to the connection.
    virtual std::size_t pending() const = 0;
    // Bytes written to the connection so far: a reader that makes progress makes it grow.
    virtual std::uint64_t written() const = 0;
    // Writes what is queued (for a short linger at most: a client that reads nothing does not
    // hold the connection), then closes the connection. Idempotent.
    virtual void end() = 0;
    // Drops what is queued and not yet on its way, sends `last` instead, and ends: the last
    // word reaches a client that is far behind, which then knows exactly what it received.
    virtual void abort(std::string last) = 0;
    virtual bool ended() const = 0;
};
using Stream = std::shared_ptr<StreamSink>;

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    Headers headers;  // extra headers; Content-Type and Content-Length are set by the server
    // Set (by later()) when the answer must wait for something other than the handler's own
    // work: the server frees the worker at once and calls this with the request's Resume.
    std::function<void(Resume)> park;
    // Set (by streamed()) when the body is sent in pieces after the headers: the server writes
    // the status line and headers, then calls this, on the connection's own thread, with the
    // stream. It must be quick: hand the stream to whatever sends.
    std::function<void(Stream)> open_stream;

    static Response json(int status, const nlohmann::json& body);
    // An answer that comes later, without holding a worker meanwhile (see Resumer).
    static Response later(std::function<void(Resume)> park);
    // A 200 whose body follows as a stream (see StreamSink), with no Content-Length and
    // "Connection: close". Not from a resumed answer.
    static Response streamed(std::string content_type, std::function<void(Stream)> open);
};

// RFC 9457 problem documents. The title and usual status of every problem type live in one
// table in http.cpp, so that the same code always reads the same to clients.
struct FieldError {
    std::string field;
    std::string message;
};

Response problem(int status, std::string type, std::string detail,
                 std::vector<FieldError> errors = {});
// The status comes from the table; an unknown type is a 500.
Response problem(std::string type, std::string detail, std::vector<FieldError> errors = {});
std::optional<int> problem_status(std::string_view type);

using Handler = std::function<Response(Request&)>;

// What a route asks of its caller: nothing (health, metrics), or a token holding one scope.
// Every route names its access when it is added; there is no default, so a route cannot be
// left open by omission.
// telemetry: may send spans to the query service's built-in collector (POST /v1/traces),
// and nothing else, so that every service can hold it without reading any data.
enum class Access : std::uint8_t { open = 0, commands = 1, read = 2, admin = 4, telemetry = 8 };

// The scope's name as tokens and the OpenAPI document spell it ("commands", "read",
// "admin", "telemetry"); "open" for Access::open.
std::string_view access_name(Access access);

// Who sent a request, as the server's token check found it.
struct Caller {
    std::string name;
    std::uint8_t scopes = 0;  // a set of Access bits
    bool may(Access access) const {
        return access == Access::open || (scopes & static_cast<std::uint8_t>(access)) != 0;
    }
};

// Maps (method, path) to a handler. Patterns are literal segments and whole-segment
// parameters: "/v1/inventory/{sku}/receipts". Where several patterns match a path, the one
// with a literal earlier wins ("/v1/orders/summary" over "/v1/orders/{order_id}").
// Built once before the server starts; match() is const and safe from any thread.
//
// A path has one spelling: match() decodes each segment once and refuses (Kind::malformed)
// a path with an empty segment ("//v1", a trailing '/'), a dot segment in any spelling ("."
// "..", "%2e"), a malformed escape, or a segment that decodes to a '/', a '\\' or a control
// character. Everything else that reaches a handler went through exactly one route, so the
// route's access is the whole truth about what the request needs.
class Router {
   public:
    // Throws std::invalid_argument for a malformed pattern or a duplicate (method, pattern).
    void add(std::string method, std::string pattern, Access access, Handler handler);

    struct Match {
        enum class Kind { found, not_found, method_not_allowed, malformed };
        Kind kind = Kind::not_found;
        const Handler* handler = nullptr;           // set when found; owned by the router
        std::string route;                          // set when found
        std::map<std::string, std::string> params;  // set when found
        std::vector<std::string> allowed;           // set when method_not_allowed, sorted
        // found: the route's; method_not_allowed: open when some method on the path is open,
        // else the access of one of them.
        Access access = Access::open;
        std::string malformed;  // set when malformed: what is wrong with the path
    };
    // `path` is percent-encoded, as in Request::path.
    Match match(std::string_view method, std::string_view path) const;

    // Every route in registration order, for checking the OpenAPI description.
    struct Listed {
        std::string method;
        std::string pattern;
        Access access;
        bool operator==(const Listed&) const = default;
    };
    std::vector<Listed> routes() const;

   private:
    struct Segment {
        std::string text;  // the literal, or the parameter's name
        bool parameter = false;
    };
    struct Route {
        std::string method;
        std::string pattern;
        std::vector<Segment> segments;
        Access access;
        Handler handler;
    };
    std::vector<Route> routes_;
};

// The server's access decision, made once per request after routing, on the decoded route.
// `tokens_required`: the server was given tokens; `caller`: whom the request's token names,
// null when it carried none or an unknown one. A path that matches no route (or is malformed)
// needs some valid token, so that routes are not revealed to strangers; a 405 is told freely
// only on a path with an open route.
enum class Verdict { allowed, unauthenticated, forbidden };
Verdict decide_access(const Router::Match& match, bool tokens_required, const Caller* caller);

// Splits a request target into its path (still encoded) and decoded query. nullopt when the
// query or an absolute-form target is malformed.
struct Target {
    std::string path;
    std::map<std::string, std::string> query;
};
std::optional<Target> parse_target(std::string_view target);

// Percent-decodes one path segment; nullopt for a malformed escape.
std::optional<std::string> decode_segment(std::string_view segment);

}  // namespace ordo::platform::http
