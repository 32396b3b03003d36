// The server on Beast and Asio: accepts within the connection budget, TLS handshakes, reads
// under limits and timeouts, the worker pool, parked requests, spans and lingering closes.
#include "platform/http/http_server.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "platform/core/connection_budget.hpp"
#include "platform/http/otlp.hpp"
#include "platform/http/tls.hpp"

namespace ordo::platform::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// After an error response the connection is closed, but only once the client has stopped
// sending (or these limits pass): closing with unread input makes the kernel send a reset,
// which can destroy our response before the client reads it.
constexpr std::chrono::milliseconds kLingerTimeout{2'000};
// Connections over the caps that are still being told so (they linger up to kLingerTimeout):
// beyond this many at once, a refused connection is closed at once without an answer, so a
// flood of refused connections holds a bounded number of descriptors.
constexpr std::size_t kMaxRefusing = 64;
constexpr std::size_t kLingerBytes = 4 << 20;
constexpr std::size_t kDrainChunk = 16 * 1024;
// Pause before accepting again after accept() fails (e.g. out of descriptors), so that the
// loop does not spin while the condition lasts.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};

// Span attributes copied from a request are cut to this length.
constexpr std::size_t kMaxSpanPathBytes = 1024;

constexpr std::array kRejectReasons{"connection_limit",
                                    "client_connection_limit",
                                    "refused_unanswered",
                                    "queue_full",
                                    "too_large",
                                    "header_too_large",
                                    "timeout",
                                    "bad_request"};

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Metric labels must stay bounded whatever clients send.
std::string method_label(std::string_view method) {
    for (std::string_view known : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}) {
        if (method == known) return std::string(known);
    }
    return "other";
}

std::string status_class(int status) {
    return std::to_string(status / 100) + "xx";
}

bool body_forbidden(int status) {
    return status / 100 == 1 || status == 204 || status == 304;
}

// The server span of a request, and the span it continues when the client sent a valid
// traceparent. A repeated traceparent is as good as none (the client's context is unclear);
// tracestate lines are joined, and an invalid list is dropped while the trace continues.
struct ServerSpan {
    TraceContext trace;
    std::optional<std::array<std::uint8_t, 8>> parent;
};

template <class Message>
ServerSpan server_span(const Message& msg) {
    std::optional<TraceContext> parent;
    std::vector<std::string_view> states;
    int traceparents = 0;
    for (const auto& field : msg) {
        auto name = lower(field.name_string());
        if (name == "traceparent") {
            ++traceparents;
            parent = TraceContext::parse(trim(field.value()));
        } else if (name == "tracestate") {
            states.push_back(field.value());
        }
    }
    if (traceparents != 1 || !parent) return {new_trace(), std::nullopt};
    if (auto state = TraceState::parse(states)) parent->tracestate = state->format();
    return {child_span(*parent), parent->span_id};
}

// A connection's byte stream: the TCP socket itself, or TLS over it. Beast reads and writes
// through it without knowing which, so that every limit, timeout and answer of the server is
// the same over both; only the start (the handshake) and the end (close_notify) differ.
class Transport {
   public:
    using executor_type = tcp::socket::executor_type;

    Transport(tcp::socket socket, std::shared_ptr<ssl::context> tls) : context_{std::move(tls)} {
        if (context_) {
            tls_.emplace(std::move(socket), *context_);
        } else {
            plain_.emplace(std::move(socket));
        }
    }

    bool secure() const { return tls_.has_value(); }
    tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }
    executor_type get_executor() { return socket().get_executor(); }

    template <class Buffers, class Handler>
    void async_read_some(const Buffers& buffers, Handler&& handler) {
        if (tls_) {
            tls_->async_read_some(buffers, std::forward<Handler>(handler));
        } else {
            plain_->async_read_some(buffers, std::forward<Handler>(handler));
        }
    }

    template <class Buffers, class Handler>
    void async_write_some(const Buffers& buffers, Handler&& handler) {
        if (tls_) {
            tls_->async_write_some(buffers, std::forward<Handler>(handler));
        } else {
            plain_->async_write_some(buffers, std::forward<Handler>(handler));
        }
    }

    template <class Handler>
    void async_handshake(Handler&& handler) {
        tls_->async_handshake(ssl::stream_base::server, std::forward<Handler>(handler));
    }

    // Sends close_notify and waits for the peer's (TLS only).
    template <class Handler>
    void async_shutdown(Handler&& handler) {
        tls_->async_shutdown(std::forward<Handler>(handler));
    }

    // The negotiated protocol ("TLSv1.3"), for logs.
    std::string protocol() { return tls_ ? SSL_get_version(tls_->native_handle()) : "none"; }

   private:
    std::shared_ptr<ssl::context> context_;  // outlives the stream that uses it
    std::optional<tcp::socket> plain_;
    std::optional<ssl::stream<tcp::socket>> tls_;
};

// A server context from the identity files, with the project's TLS policy.
std::shared_ptr<ssl::context> load_tls_context(const TlsFiles& files) {
    if (files.certificate_chain_file.empty() || files.private_key_file.empty()) {
        throw std::runtime_error("TLS needs both a certificate chain file and a private key file");
    }
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    tls::apply_policy(context->native_handle(), true);
    tls::load_identity(context->native_handle(), files.certificate_chain_file,
                       files.private_key_file);
    return context;
}

// Handlers run here rather than on the IO threads. The queue is bounded: a request that would
// wait behind more than `max_queued` others is refused at once rather than left to time out.
class WorkerPool {
   public:
    WorkerPool(std::size_t threads, std::size_t max_queued)
        : thread_count_{std::max<std::size_t>(threads, 1)}, max_queued_{max_queued} {}
    ~WorkerPool() { stop(); }

    void start() {
        for (std::size_t i = 0; i < thread_count_; ++i) threads_.emplace_back([this] { run(); });
    }

    // False when the queue is full; the job is then not run.
    bool try_submit(std::function<void()> job) { return submit(std::move(job), true); }

    // For work admitted earlier and bounded elsewhere (a parked request's answer: at most as
    // many as may be parked): queued even when the queue is full. False only when stopping.
    bool submit_admitted(std::function<void()> job) { return submit(std::move(job), false); }

    // Runs what is queued, then joins.
    void stop() {
        {
            std::lock_guard lock{mutex_};
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) {
            if (t.joinable()) t.join();
        }
        threads_.clear();
    }

   private:
    bool submit(std::function<void()> job, bool bounded) {
        {
            std::lock_guard lock{mutex_};
            // Jobs that idle workers are about to take do not count as waiting.
            if (stopping_ || (bounded && jobs_.size() >= max_queued_ + idle_)) return false;
            jobs_.push_back(std::move(job));
        }
        cv_.notify_one();
        return true;
    }

    void run() {
        std::unique_lock lock{mutex_};
        while (true) {
            ++idle_;
            cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;  // stopping and nothing left
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();          // jobs catch their own exceptions
            job = nullptr;  // what it held goes before the lock is taken again
            lock.lock();
        }
    }

    std::size_t thread_count_;
    std::size_t max_queued_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

class Connection;

// Everything the connections share. Member order matters: the io_context is destroyed before
// the registry of connections, because destroying it destroys the connections left in it.
struct ServerState {
    ServerState(ServerOptions options, Router router, Logger logger, metrics::Registry& registry)
        : options_{std::move(options)},
          router_{std::move(router)},
          logger_{std::move(logger)},
          registry_{registry},
          in_flight_{registry.gauge("ordo_http_requests_in_flight",
                                    "HTTP requests read and not yet answered",
                                    {{"component", options_.component}})},
          connections_gauge_{registry.gauge("ordo_http_connections", "Open HTTP connections",
                                            {{"component", options_.component}})},
          pool_{options_.worker_threads, options_.max_queued},
          tokens_required_{options_.tokens && !options_.tokens->empty()},
          tokens_{options_.tokens} {
        for (const char* reason : kRejectReasons) rejected(reason, 0);
    }

    void rejected(const std::string& reason, double by = 1) {
        registry_
            .counter("ordo_http_rejected_total", "HTTP requests and connections refused",
                     {{"component", options_.component}, {"reason", reason}})
            .inc(by);
    }

    metrics::Histogram& duration(const std::string& route, const std::string& method, int status) {
        std::string cls = status_class(status);
        std::string key = route + ' ' + method + ' ' + cls;
        std::lock_guard lock{histograms_mutex_};
        auto it = histograms_.find(key);
        if (it != histograms_.end()) return *it->second;
        auto& h = registry_.histogram(
            "ordo_http_request_duration_seconds",
            "Time from a request's first byte until its response is ready to send",
            {{"component", options_.component},
             {"method", method},
             {"route", route},
             {"status_class", cls}});
        histograms_.emplace(std::move(key), &h);
        return h;
    }

    void add_connection(Connection* c, const std::shared_ptr<Connection>& shared) {
        std::lock_guard lock{connections_mutex_};
        connections_.emplace(c, shared);
    }

    void remove_connection(Connection* c) {
        {
            std::lock_guard lock{connections_mutex_};
            connections_.erase(c);
        }
        connections_cv_.notify_all();
    }

    std::vector<std::shared_ptr<Connection>> live_connections() {
        std::lock_guard lock{connections_mutex_};
        std::vector<std::shared_ptr<Connection>> out;
        for (auto& [raw, weak] : connections_) {
            if (auto c = weak.lock()) out.push_back(std::move(c));
        }
        return out;
    }

    bool wait_for_no_connections(SteadyClock::time_point deadline) {
        std::unique_lock lock{connections_mutex_};
        return connections_cv_.wait_until(lock, deadline, [this] { return connections_.empty(); });
    }

    void do_accept();
    void on_accept(beast::error_code ec, tcp::socket socket);

    ServerOptions options_;
    Router router_;
    Logger logger_;
    metrics::Registry& registry_;
    metrics::Gauge& in_flight_;
    metrics::Gauge& connections_gauge_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> refusing_{0};  // connections over the caps being answered
    ConnectionBudget budget_{options_.max_connections, options_.max_connections_per_client};

    std::mutex histograms_mutex_;
    std::unordered_map<std::string, metrics::Histogram*> histograms_;

    std::mutex connections_mutex_;
    std::condition_variable connections_cv_;
    std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;

    // The TLS context new connections take; null for plain HTTP. Replaced by reload_tls().
    std::atomic<std::shared_ptr<ssl::context>> tls_context_;

    void tls_loaded(const std::shared_ptr<ssl::context>& context) {
        auto cert = tls::summary(context->native_handle());
        registry_
            .gauge("ordo_http_tls_certificate_expiry_timestamp_seconds",
                   "When the certificate the server presents expires (Unix time)",
                   {{"component", options_.component}})
            .set(static_cast<double>(
                std::chrono::duration_cast<std::chrono::seconds>(cert.not_after.time_since_epoch())
                    .count()));
        logger_.info("TLS certificate loaded", {{"file", options_.tls.certificate_chain_file},
                                                {"subject", cert.subject},
                                                {"serial", cert.serial}});
    }

    metrics::Counter& handshake_failures() {
        return registry_.counter("ordo_http_tls_handshake_failures_total",
                                 "TLS handshakes that failed or timed out",
                                 {{"component", options_.component}});
    }

    WorkerPool pool_;
    // Parked requests (Response::later) reach pool_ through this, and only while it is open:
    // stop() closes it before the pool and the connections go.
    struct ResumeGate {
        std::mutex mutex;
        bool open = true;
    };
    std::shared_ptr<ResumeGate> resume_gate_ = std::make_shared<ResumeGate>();
    // Fixed when the server is built: no later token set can turn authentication off.
    const bool tokens_required_;
    std::atomic<std::shared_ptr<const TokenSet>> tokens_;  // replaced by set_tokens()

    net::io_context ioc_{static_cast<int>(std::max<std::size_t>(options_.io_threads, 1))};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
    tcp::acceptor acceptor_{net::make_strand(ioc_)};
    net::steady_timer accept_retry_{acceptor_.get_executor()};
    std::vector<std::thread> io_threads_;
    std::uint16_t port_ = 0;
};

// One client connection. Every member function runs on the connection's strand (the executor
// of its socket), so the state below needs no lock; workers hand results back by posting.
class Connection : public std::enable_shared_from_this<Connection> {
   public:
    Connection(ServerState& server, tcp::socket socket, std::shared_ptr<ssl::context> tls,
               std::string client, ConnectionBudget::Verdict admission)
        : server_{server},
          stream_{std::move(socket), std::move(tls)},
          socket_{stream_.socket()},
          timer_{socket_.get_executor()},
          client_{std::move(client)},
          counted_{admission == ConnectionBudget::Verdict::admitted},
          admission_{admission} {
        beast::error_code ec;
        auto peer = socket_.remote_endpoint(ec);
        if (!ec) remote_ = peer.address().to_string() + ":" + std::to_string(peer.port());
    }

    ~Connection() {
        close();
        server_.remove_connection(this);
    }

    void start() {
        if (stream_.secure()) {
            handshake();
            return;
        }
        admit();
    }

    // The server is stopping: a connection waiting for its next request goes now; one that
    // is busy finishes the request and answers with "Connection: close".
    void on_server_stop() {
        if (state_ == State::idle) close();
        if (state_ == State::streaming) end_stream();
    }

    // The tokens changed: a stream was authorised by the old ones, so it ends and its client
    // comes back through the token check (a revoked token is refused then).
    void on_tokens_changed() {
        if (state_ == State::streaming) end_stream();
    }

    void force_close() { close(); }

    net::any_io_executor executor() { return socket_.get_executor(); }

    // From a worker, via post.
    void on_handled(Response response) {
        auto keep = std::move(parked_self_);  // a parked request is answered: let go
        if (closed_) {
            if (in_flight_) finish_request(response.status);  // not counted when it was cut
            return;
        }
        if (response.open_stream) {
            start_stream(std::move(response));
            return;
        }
        respond(std::move(response), false);
    }

    // On a worker thread: the handler answered Response::later. The connection keeps itself
    // alive while parked (the Resume holds it only weakly, so a server that stops can cut it),
    // and `park` gets the Resume. The self-reference is posted before `park` runs, so that it
    // is in place before any answer, which comes through the same strand.
    void park(std::function<void(Resume)> park, Request request) {
        auto self = shared_from_this();
        net::post(socket_.get_executor(), [self] {
            if (!self->closed_) {
                self->parked_self_ = self;
            } else if (self->in_flight_) {
                self->finish_request(503);  // cut while its handler ran: no answer will come
            }
        });
        // Strand state is not ours to read here: log from the request's own copy.
        const TraceContext trace = request.trace;
        const std::string route = request.route;
        auto resume = std::make_shared<ParkedRequest>(server_, self, std::move(request));
        try {
            park(std::move(resume));
        } catch (const std::exception& e) {
            // The Resume, dropped unresumed, answers 500.
            server_.logger_.log(LogLevel::error, "parking a request failed", trace,
                                {{"route", route}, {"error", e.what()}});
        } catch (...) {
            server_.logger_.log(LogLevel::error, "parking a request failed", trace,
                                {{"route", route}, {"error", "unknown exception"}});
        }
    }

    // Runs a parked request's answer on a worker, as run_handler runs a handler.
    Response run_answer(const std::function<Response()>& answer, Request& request) {
        Response response = run_handler([&](Request&) { return answer(); }, request);
        if (!response.park && !response.open_stream) return response;
        server_.logger_.log(LogLevel::error, "a resumed request asked to park or stream",
                            request.trace, {{"route", request.route}});
        return problem(500, "internal", "the server failed to handle the request");
    }

    // The Resume of one parked request.
    class ParkedRequest : public Resumer {
       public:
        ParkedRequest(ServerState& server, const std::shared_ptr<Connection>& connection,
                      Request request)
            : server_{server},
              gate_{server.resume_gate_},
              connection_{connection},
              request_{std::move(request)} {}

        ~ParkedRequest() override {
            if (resumed_) return;
            try {
                finish(problem(500, "internal", "the server failed to handle the request"));
            } catch (...) {
                // Nothing to answer with (out of memory): the connection is cut at stop.
            }
        }

        void resume(std::function<Response()> answer) override {
            std::lock_guard lock{gate_->mutex};
            if (resumed_.exchange(true) || !gate_->open) return;
            auto connection = connection_.lock();
            if (!connection) return;
            // Not bounded by the queue: it was admitted when it parked, and at most as many
            // as may park come back (a burst of them all passing one position must not be
            // refused, nor crowd out requests that never parked).
            server_.pool_.submit_admitted(
                [connection, answer = std::move(answer), request = std::move(request_)]() mutable {
                    Response response = connection->run_answer(answer, request);
                    net::post(connection->executor(),
                              [connection, response = std::move(response)]() mutable {
                                  connection->on_handled(std::move(response));
                              });
                });
        }

       private:
        void finish(Response response) {
            std::lock_guard lock{gate_->mutex};
            if (!gate_->open) return;
            auto connection = connection_.lock();
            if (!connection) return;
            net::post(connection->executor(),
                      [connection, response = std::move(response)]() mutable {
                          connection->on_handled(std::move(response));
                      });
        }

        ServerState& server_;  // used only while the gate is open
        std::shared_ptr<ServerState::ResumeGate> gate_;
        std::weak_ptr<Connection> connection_;
        Request request_;
        std::atomic<bool> resumed_{false};
    };

    // The StreamSink of a streamed response: queues onto the connection's strand.
    class Sink : public StreamSink {
       public:
        explicit Sink(const std::shared_ptr<Connection>& connection) : connection_{connection} {}

        bool send(std::string bytes) override {
            if (ended_.load()) return false;
            auto connection = connection_.lock();
            if (!connection) {
                ended_ = true;
                return false;
            }
            pending_.fetch_add(bytes.size());
            net::post(connection->executor(), [connection, bytes = std::move(bytes)]() mutable {
                connection->push(std::move(bytes));
            });
            return true;
        }
        std::size_t pending() const override { return pending_.load(); }
        std::uint64_t written() const override { return written_.load(); }
        void end() override {
            if (ended_.exchange(true)) return;
            if (auto connection = connection_.lock()) {
                net::post(connection->executor(), [connection] { connection->end_stream(); });
            }
        }
        void abort(std::string last) override {
            if (ended_.exchange(true)) return;
            if (auto connection = connection_.lock()) {
                pending_.fetch_add(last.size());
                net::post(connection->executor(), [connection, last = std::move(last)]() mutable {
                    connection->abort_stream(std::move(last));
                });
            }
        }
        bool ended() const override { return ended_.load(); }

       private:
        friend class Connection;
        std::weak_ptr<Connection> connection_;
        std::atomic<std::size_t> pending_{0};
        std::atomic<std::uint64_t> written_{0};
        std::atomic<bool> ended_{false};
    };

   private:
    enum class State { idle, reading, handling, writing, streaming, closing };

    // A streamed response: the status line and headers, then the sink's pieces in order. The
    // connection reads only to notice the client leaving, and closes when the stream ends,
    // the client leaves, or a write fails; no request follows on it.
    void start_stream(Response response) {
        // The stop's round of the connections may have passed this one while its handler ran:
        // no stream then. One that starts later comes round after this, and ends the stream.
        if (server_.stopping_) {
            respond(problem(503, "unavailable", "the server is stopping"), true);
            return;
        }
        std::string head = version_ == 10 ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.1 200 OK\r\n";
        for (const auto& [name, value] : response.headers) head += name + ": " + value + "\r\n";
        head += "Content-Type: " + response.content_type + "\r\n";
        head += "traceparent: " + trace_.traceparent() + "\r\n";
        if (!trace_.tracestate.empty()) head += "tracestate: " + trace_.tracestate + "\r\n";
        head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
        finish_request(200);
        state_ = State::streaming;
        disarm_timer();
        sink_ = std::make_shared<Sink>(shared_from_this());
        sink_->pending_.fetch_add(head.size());
        push(std::move(head));
        watch_peer();
        try {
            response.open_stream(sink_);
        } catch (const std::exception& e) {
            server_.logger_.log(LogLevel::error, "opening a stream failed", trace_,
                                {{"error", e.what()}});
            sink_->end();
        }
    }

    void push(std::string bytes) {
        if (closed_ || stream_ended_) {
            sink_->pending_.fetch_sub(bytes.size());
            return;
        }
        stream_queue_.push_back(std::move(bytes));
        write_next();
    }

    void write_next() {
        if (stream_writing_ || closed_) return;
        if (stream_queue_.empty()) {
            if (stream_ended_) finish_stream();
            return;
        }
        stream_writing_ = true;
        net::async_write(stream_, net::buffer(stream_queue_.front()),
                         [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                             self->stream_writing_ = false;
                             self->sink_->written_.fetch_add(n);
                             self->sink_->pending_.fetch_sub(self->stream_queue_.front().size());
                             self->stream_queue_.pop_front();
                             if (ec) {
                                 self->close();
                                 return;
                             }
                             self->write_next();
                         });
    }

    // What is queued but not on its way goes, `last` takes its place, and the stream ends.
    void abort_stream(std::string last) {
        if (closed_ || stream_ended_) {
            sink_->pending_.fetch_sub(last.size());
            return;
        }
        std::size_t dropped = 0;
        while (stream_queue_.size() > (stream_writing_ ? 1U : 0U)) {
            dropped += stream_queue_.back().size();
            stream_queue_.pop_back();
        }
        sink_->pending_.fetch_sub(dropped);
        stream_queue_.push_back(std::move(last));
        end_stream();
    }

    // What is queued still goes out, for kLingerTimeout at most.
    void end_stream() {
        if (closed_ || stream_ended_) return;
        sink_->ended_ = true;
        stream_ended_ = true;
        arm_timer(kLingerTimeout);
        write_next();
    }

    // Everything is written. Over TCP the client gets a FIN and the watch's read ends when it
    // closes its side (or the linger timer cuts it); over TLS the connection just closes, since
    // a close_notify exchange would read beside the watch's pending read.
    void finish_stream() {
        if (stream_.secure()) {
            close();
            return;
        }
        beast::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        if (ec) close();
    }

    // Reads and discards what the client sends while it is streamed to; its end (or an
    // error) closes the connection.
    void watch_peer() {
        buffer_.clear();
        stream_.async_read_some(buffer_.prepare(kDrainChunk),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    if (ec || n == 0) {
                                        self->close();
                                        return;
                                    }
                                    self->buffer_.clear();
                                    self->watch_peer();
                                });
    }

    // Bounded by the read timeout; a connection over the caps only gets the linger time to
    // complete it, as it would to read its 503. A failure is counted, logged at debug (scanners
    // and plain-HTTP clients make plenty) and closes the connection.
    void handshake() {
        state_ = State::idle;
        const bool admitted = admission_ == ConnectionBudget::Verdict::admitted;
        arm_timer(admitted ? server_.options_.read_timeout
                           : std::min(server_.options_.read_timeout, kLingerTimeout));
        stream_.async_handshake([self = shared_from_this()](beast::error_code ec) {
            self->disarm_timer();
            if (self->closed_) return;
            if (ec) {
                self->server_.handshake_failures().inc();
                if (self->server_.logger_.enabled(LogLevel::debug)) {
                    self->server_.logger_.log(
                        LogLevel::debug, "TLS handshake failed",
                        {{"remote", self->remote_},
                         {"error", self->timed_out_ ? std::string{"timed out"} : ec.message()}});
                }
                self->close();
                return;
            }
            self->admit();
        });
    }

    void admit() {
        if (admission_ == ConnectionBudget::Verdict::over_total) {
            started_at_ = SteadyClock::now();
            trace_ = new_trace();
            reject("connection_limit", problem(503, "unavailable", "too many connections"));
            return;
        }
        if (admission_ == ConnectionBudget::Verdict::over_client) {
            started_at_ = SteadyClock::now();
            trace_ = new_trace();
            reject("client_connection_limit",
                   problem(503, "unavailable", "too many connections from this address"));
            return;
        }
        wait_for_request();
    }

    void wait_for_request() {
        state_ = State::idle;
        if (server_.stopping_) {
            close();
            return;
        }
        // Pipelined bytes may already be buffered.
        if (buffer_.size() > 0) {
            read_header();
            return;
        }
        // A new connection gets read_timeout to start talking; a kept-alive one idle_timeout.
        arm_timer(first_request_ ? server_.options_.read_timeout : server_.options_.idle_timeout);
        auto on_input = [self = shared_from_this()](beast::error_code ec) {
            self->disarm_timer();
            if (ec) {
                self->close();  // idle timeout, shutdown, or socket error
                return;
            }
            self->read_header();
        };
        if (!stream_.secure()) {
            socket_.async_wait(tcp::socket::wait_read, std::move(on_input));
            return;
        }
        // Over TLS, bytes on the socket need not be a request (and a request may already sit
        // decrypted inside the TLS layer), so wait by reading what comes.
        stream_.async_read_some(buffer_.prepare(kDrainChunk),
                                [self = shared_from_this(), on_input = std::move(on_input)](
                                    beast::error_code ec, std::size_t n) mutable {
                                    self->buffer_.commit(n);
                                    if (!ec && n == 0) ec = net::error::eof;
                                    on_input(ec);
                                });
    }

    void read_header() {
        state_ = State::reading;
        first_request_ = false;
        started_at_ = SteadyClock::now();
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(server_.options_.max_header_bytes));
        parser_->body_limit(server_.options_.max_body_bytes);
        arm_timer(server_.options_.read_timeout);
        bhttp::async_read_header(stream_, buffer_, *parser_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     self->on_header(ec);
                                 });
    }

    void on_header(beast::error_code ec) {
        if (!ec && timed_out_) ec = net::error::timed_out;
        if (ec) {
            on_read_error(ec);
            return;
        }
        const auto& msg = parser_->get();
        // Clients that wait for "100 Continue" before sending a body would otherwise stall
        // for a second or so before sending it anyway.
        if (!parser_->is_done() && msg.version() >= 11 &&
            lower(msg[bhttp::field::expect]) == "100-continue") {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                             [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                 if (ec) {
                                     self->close();
                                     return;
                                 }
                                 self->read_body();
                             });
            return;
        }
        read_body();
    }

    void read_body() {
        if (parser_->is_done()) {
            on_body({});
            return;
        }
        bhttp::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
    }

    void on_body(beast::error_code ec) {
        disarm_timer();
        if (ec) {
            on_read_error(ec);
            return;
        }
        dispatch();
    }

    void on_read_error(beast::error_code ec) {
        disarm_timer();
        if (parser_ && parser_->got_some()) {
            // The header may be (partly) parsed; continue the client's trace if it sent one.
            const auto& msg = parser_->get();
            auto span = server_span(msg);
            trace_ = span.trace;
            parent_span_ = span.parent;
            version_ = msg.version() == 10 ? 10 : 11;
            method_label_ = method_label(msg.method_string());
        } else {
            trace_ = new_trace();
            parent_span_.reset();
        }
        if (timed_out_) {
            reject("timeout",
                   problem(408, "request_timeout", "the request was not received in time"));
        } else if (ec == bhttp::error::header_limit) {
            reject("header_too_large",
                   problem(431, "header_too_large",
                           "request header exceeds " +
                               std::to_string(server_.options_.max_header_bytes) + " bytes"));
        } else if (ec == bhttp::error::body_limit) {
            reject("too_large",
                   problem(413, "payload_too_large",
                           "request body exceeds " +
                               std::to_string(server_.options_.max_body_bytes) + " bytes"));
        } else if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
            close();  // the client went away, before or in the middle of a request
        } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) {
            reject("bad_request",
                   problem(400, "bad_request", "malformed HTTP request: " + ec.message()));
        } else {
            close();  // a socket error: nobody to answer
        }
    }

    void dispatch() {
        state_ = State::handling;
        auto& msg = parser_->get();
        version_ = msg.version() == 10 ? 10 : 11;
        keep_alive_ = msg.keep_alive();

        Request request;
        request.method = std::string(msg.method_string());
        request.target = std::string(msg.target());
        request.headers.reserve(static_cast<std::size_t>(std::distance(msg.begin(), msg.end())));
        for (const auto& field : msg) {
            request.headers.emplace_back(lower(field.name_string()), std::string(field.value()));
        }
        request.body = std::move(msg.body());
        request.remote = remote_;
        auto span = server_span(msg);
        request.trace = trace_ = span.trace;
        parent_span_ = span.parent;
        path_ = request.target.substr(0, request.target.find('?')).substr(0, kMaxSpanPathBytes);
        user_agent_ = std::string(msg[bhttp::field::user_agent]).substr(0, kMaxSpanPathBytes);
        method_label_ = method_label(request.method);
        route_label_ = "unmatched";
        in_flight_ = true;
        server_.in_flight_.add(1);

        auto target = parse_target(request.target);
        if (!target) {
            respond(problem(400, "bad_request", "invalid request target"), false);
            return;
        }
        request.path = std::move(target->path);
        request.query = std::move(target->query);

        Router::Match match = server_.router_.match(request.method, request.path);
        if (match.kind == Router::Match::Kind::found) {
            route_label_ = match.route;
            untraced_ = match.access == Access::telemetry;
        }

        // The one access check: after routing, on the route the decoded path resolved to.
        const std::shared_ptr<const TokenSet> tokens = server_.tokens_.load();
        const bool tokens_required = server_.tokens_required_;
        std::optional<Caller> caller;
        if (tokens_required) caller = tokens->authenticate(request.header("authorization"));
        request.caller = caller ? caller->name : tokens_required ? "" : "anonymous";
        caller_ = request.caller;
        switch (decide_access(match, tokens_required, caller ? &*caller : nullptr)) {
            case Verdict::allowed:
                break;
            case Verdict::unauthenticated: {
                Response r = problem(401, "unauthorized", "a valid bearer token is required");
                r.headers.emplace_back("WWW-Authenticate", "Bearer");
                respond(std::move(r), false);
                return;
            }
            case Verdict::forbidden: {
                Response r = problem(403, "forbidden",
                                     "this token may not " + request.method + " " + match.route);
                r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"insufficient_scope\"");
                respond(std::move(r), false);
                return;
            }
        }
        if (match.kind == Router::Match::Kind::malformed) {
            respond(problem(400, "bad_request", match.malformed), false);
            return;
        }
        if (match.kind == Router::Match::Kind::not_found) {
            respond(problem(404, "not_found", "no route for " + request.path), false);
            return;
        }
        if (match.kind == Router::Match::Kind::method_not_allowed) {
            std::string allow;
            for (const auto& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
            Response r = problem(405, "method_not_allowed",
                                 request.method + " is not allowed on " + request.path);
            r.headers.emplace_back("Allow", std::move(allow));
            respond(std::move(r), false);
            return;
        }

        request.params = std::move(match.params);
        request.route = std::move(match.route);
        bool queued = server_.pool_.try_submit(
            [self = shared_from_this(), strand = socket_.get_executor(), handler = match.handler,
             request = std::move(request)]() mutable {
                Response response = self->run_handler(*handler, request);
                if (response.park) {
                    self->park(std::move(response.park), std::move(request));
                    return;
                }
                net::post(strand, [self, response = std::move(response)]() mutable {
                    self->on_handled(std::move(response));
                });
            });
        if (!queued) {
            server_.rejected("queue_full");
            respond(problem(503, "unavailable", "the server is busy"), false);
        }
    }

    // On a worker thread: touches nothing of the connection but the logger and metrics.
    Response run_handler(const Handler& handler, Request& request) {
        try {
            return handler(request);
        } catch (const std::exception& e) {
            server_.logger_.log(
                LogLevel::error, "handler failed", request.trace,
                {{"method", request.method}, {"route", request.route}, {"error", e.what()}});
        } catch (...) {
            server_.logger_.log(LogLevel::error, "handler failed", request.trace,
                                {{"method", request.method},
                                 {"route", request.route},
                                 {"error", "unknown exception"}});
        }
        return problem(500, "internal", "the server failed to handle the request");
    }

    // An answer after which the connection closes: the request cannot be trusted to have
    // ended where the parser stopped.
    void reject(const std::string& reason, Response response) {
        server_.rejected(reason);
        respond(std::move(response), true);
    }

    void respond(Response response, bool close_after) {
        bool keep_alive = keep_alive_ && !close_after && !server_.stopping_;
        int status = response.status;
        try {
            response_ = build(std::move(response), keep_alive);
        } catch (const std::exception& e) {
            // A handler produced something HTTP cannot carry (a bad status, a body on a 204).
            server_.logger_.log(LogLevel::error, "invalid response", trace_,
                                {{"route", route_label_}, {"error", e.what()}});
            status = 500;
            response_ = build(problem(500, "internal", "the server produced an invalid response"),
                              keep_alive);
        }
        // Recorded before the write, so that a client that has its answer also finds it
        // counted; the time to write it out is not included.
        finish_request(status);
        state_ = State::writing;
        arm_timer(server_.options_.idle_timeout);
        bhttp::async_write(
            stream_, *response_,
            [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                self->on_write(ec, keep_alive);
            });
    }

    std::unique_ptr<bhttp::response<bhttp::string_body>> build(Response r, bool keep_alive) {
        if (r.status < 200 || r.status > 599) {
            throw std::invalid_argument("status out of range: " + std::to_string(r.status));
        }
        auto msg = std::make_unique<bhttp::response<bhttp::string_body>>(
            static_cast<bhttp::status>(r.status), version_);
        for (auto& [name, value] : r.headers) msg->insert(name, value);
        msg->set("traceparent", trace_.traceparent());
        if (!trace_.tracestate.empty()) msg->set("tracestate", trace_.tracestate);
        msg->keep_alive(keep_alive);
        if (body_forbidden(r.status)) {
            if (!r.body.empty())
                throw std::invalid_argument("a body on a " + std::to_string(r.status));
            return msg;
        }
        if (!r.content_type.empty()) msg->set(bhttp::field::content_type, r.content_type);
        msg->body() = std::move(r.body);
        msg->prepare_payload();
        return msg;
    }

    void on_write(beast::error_code ec, bool keep_alive) {
        disarm_timer();
        response_.reset();
        if (ec) {
            close();
            return;
        }
        if (!keep_alive) {
            linger();
            return;
        }
        parser_.reset();
        wait_for_request();
    }

    void finish_request(int status) {
        double seconds = std::chrono::duration<double>(SteadyClock::now() - started_at_).count();
        server_.duration(route_label_, method_label_, status).observe(seconds);
        if (in_flight_) {
            in_flight_ = false;
            server_.in_flight_.add(-1);
        }
        const Logger& log = server_.logger_;
        LogLevel level = status >= 500 ? LogLevel::warn : LogLevel::debug;
        if (log.enabled(level)) {
            log.log(level, "request", trace_,
                    {{"method", method_label_},
                     {"route", route_label_},
                     {"status", status},
                     {"duration_ms", seconds * 1000.0},
                     {"remote", remote_},
                     {"caller", caller_}});
        }
        record_span(status);
        untraced_ = false;
        route_label_ = "unmatched";
        method_label_ = "other";
        caller_.clear();
        path_.clear();
        user_agent_.clear();
    }

    // Names and attributes follow the HTTP server span conventions: "{method} {route}", or
    // the method alone when no route matched (the raw path would make names unbounded).
    void record_span(int status) {
        otlp::Exporter* exporter = server_.options_.spans;
        // The telemetry routes take spans: a span of each would feed itself forever.
        if (!exporter || untraced_) return;
        otlp::Span span;
        span.context = trace_;
        span.parent_span_id = parent_span_;
        bool routed = route_label_ != "unmatched";
        std::string method = method_label_ == "other" ? "_OTHER" : method_label_;
        span.name = method == "_OTHER" ? "HTTP" : method;
        if (routed) span.name += " " + route_label_;
        span.kind = otlp::SpanKind::server;
        span.end = exporter->now();
        span.start = span.end - std::chrono::duration_cast<Clock::time_point::duration>(
                                    SteadyClock::now() - started_at_);
        span.attributes = {
            {"http.request.method", method},
            {"http.response.status_code", std::int64_t{status}},
            {"url.scheme", std::string(stream_.secure() ? "https" : "http")},
            {"server.address", server_.options_.address},
            {"server.port", std::int64_t{server_.port_}},
            {"network.protocol.version", std::string(version_ == 10 ? "1.0" : "1.1")},
            {"service.component", server_.options_.component}};
        if (routed) span.attributes.emplace_back("http.route", route_label_);
        if (!path_.empty()) span.attributes.emplace_back("url.path", path_);
        if (!user_agent_.empty()) span.attributes.emplace_back("user_agent.original", user_agent_);
        auto colon = remote_.rfind(':');
        if (colon != std::string::npos) {
            span.attributes.emplace_back("client.address", remote_.substr(0, colon));
        }
        if (status >= 500) {
            span.error = true;
            span.attributes.emplace_back("error.type", std::to_string(status));
        }
        exporter->record(std::move(span));
    }

    // Stop sending, then read and discard until the client closes (see kLingerTimeout).
    void linger() {
        state_ = State::closing;
        if (stream_.secure()) {
            // close_notify, then the client's: TLS reads and discards what comes meanwhile.
            arm_timer(kLingerTimeout);
            stream_.async_shutdown(
                [self = shared_from_this()](beast::error_code) { self->close(); });
            return;
        }
        beast::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        if (ec) {
            close();
            return;
        }
        buffer_.clear();
        arm_timer(kLingerTimeout);
        drain();
    }

    void drain() {
        socket_.async_read_some(buffer_.prepare(kDrainChunk),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    self->lingered_ += n;
                                    if (ec || self->lingered_ > kLingerBytes) {
                                        self->close();
                                        return;
                                    }
                                    self->drain();
                                });
    }

    void close() {
        // A parked request cut by a stopping server: this may be the last reference.
        auto keep = std::move(parked_self_);
        if (keep) finish_request(503);
        if (closed_) return;
        closed_ = true;
        state_ = State::closing;
        if (sink_) sink_->ended_ = true;
        disarm_timer();
        beast::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        if (counted_) {
            server_.budget_.release(client_);
            server_.connections_gauge_.add(-1);
        } else {
            server_.refusing_.fetch_sub(1);
        }
    }

    // The timer cancels the socket's pending operation; the generation tells a stale expiry
    // (one that raced with the operation completing) from a real one.
    void arm_timer(std::chrono::milliseconds after) {
        timed_out_ = false;
        unsigned generation = ++timer_generation_;
        timer_.expires_after(after);
        timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
            if (ec || generation != self->timer_generation_) return;
            self->timed_out_ = true;
            beast::error_code ignored;
            self->socket_.cancel(ignored);
        });
    }

    void disarm_timer() {
        ++timer_generation_;
        timer_.cancel();
    }

    ServerState& server_;
    Transport stream_;
    tcp::socket& socket_;  // the stream's TCP socket
    net::steady_timer timer_;
    const std::string client_;  // the peer's address, without the port
    const bool counted_;        // admitted: holds a place in the connection budget
    const ConnectionBudget::Verdict admission_;
    std::string remote_;
    std::string caller_;  // the request's token name, for the request log line

    State state_ = State::idle;
    bool first_request_ = true;
    bool closed_ = false;
    std::shared_ptr<Connection> parked_self_;  // set while a request is parked
    // A streamed response: its sink, the pieces not yet written, and how far its end got.
    std::shared_ptr<Sink> sink_;
    std::deque<std::string> stream_queue_;
    bool stream_writing_ = false;
    bool stream_ended_ = false;  // end() came: what is queued is the last
    bool timed_out_ = false;
    unsigned timer_generation_ = 0;
    std::size_t lingered_ = 0;

    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::unique_ptr<bhttp::response<bhttp::string_body>> response_;

    // The request being served.
    SteadyClock::time_point started_at_{};
    TraceContext trace_;
    unsigned version_ = 11;
    bool keep_alive_ = false;
    bool in_flight_ = false;
    std::string route_label_ = "unmatched";
    bool untraced_ = false;  // the matched route is a telemetry route: no span of its own
    std::string method_label_ = "other";
    std::optional<std::array<std::uint8_t, 8>> parent_span_;
    std::string path_;
    std::string user_agent_;
};

void ServerState::do_accept() {
    acceptor_.async_accept(
        net::make_strand(ioc_),
        [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void ServerState::on_accept(beast::error_code ec, tcp::socket socket) {
    if (stopping_ || !acceptor_.is_open()) return;
    if (ec) {
        logger_.warn("accept failed", {{"error", ec.message()}});
        accept_retry_.expires_after(kAcceptRetryDelay);
        accept_retry_.async_wait([this](beast::error_code wait_ec) {
            if (!wait_ec && !stopping_) do_accept();
        });
        return;
    }
    beast::error_code peer_ec;
    auto peer = socket.remote_endpoint(peer_ec);
    std::string client = peer_ec ? std::string{"unknown"} : peer.address().to_string();
    auto admission = budget_.admit(client);
    if (admission == ConnectionBudget::Verdict::admitted) {
        connections_gauge_.add(1);
    } else if (refusing_.fetch_add(1) >= kMaxRefusing) {
        // Too many refusals in their linger already: this one gets no answer.
        refusing_.fetch_sub(1);
        rejected("refused_unanswered");
        beast::error_code ignored;
        socket.close(ignored);
        do_accept();
        return;
    }
    auto connection = std::make_shared<Connection>(*this, std::move(socket), tls_context_.load(),
                                                   std::move(client), admission);
    add_connection(connection.get(), connection);
    net::dispatch(connection->executor(), [connection] { connection->start(); });
    do_accept();
}

}  // namespace

struct Server::Impl : ServerState {
    using ServerState::ServerState;
    std::mutex lifecycle_mutex_;
    bool started_ = false;
    bool stopped_ = false;
};

Server::Server(ServerOptions options, Router router, Logger logger, metrics::Registry& registry)
    : impl_{std::make_unique<Impl>(std::move(options), std::move(router), std::move(logger),
                                   registry)} {}

Server::~Server() {
    stop();
}

void Server::start() {
    Impl& s = *impl_;
    std::lock_guard lock{s.lifecycle_mutex_};
    if (s.started_) throw std::logic_error("http server started twice");
    if (s.stopped_) throw std::logic_error("http server restarted after stop");
    std::string where = s.options_.address + ":" + std::to_string(s.options_.port);
    if (s.options_.tls.enabled()) {
        auto context = load_tls_context(s.options_.tls);
        s.tls_context_.store(context);
        s.tls_loaded(context);
        s.handshake_failures();  // present at 0 from the start
    }

    beast::error_code ec;
    auto address = net::ip::make_address(s.options_.address, ec);
    if (ec) throw std::runtime_error("invalid HTTP listen address " + where + ": " + ec.message());
    tcp::endpoint endpoint{address, s.options_.port};
    s.acceptor_.open(endpoint.protocol(), ec);
    if (!ec) s.acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) s.acceptor_.bind(endpoint, ec);
    if (!ec) s.acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        beast::error_code ignored;
        s.acceptor_.close(ignored);
        throw std::runtime_error("cannot listen for HTTP on " + where + ": " + ec.message());
    }
    s.port_ = s.acceptor_.local_endpoint().port();
    s.started_ = true;

    s.work_.emplace(s.ioc_.get_executor());
    s.pool_.start();
    net::post(s.acceptor_.get_executor(), [&s] { s.do_accept(); });
    for (std::size_t i = 0; i < std::max<std::size_t>(s.options_.io_threads, 1); ++i) {
        s.io_threads_.emplace_back([&s] {
            while (true) {
                try {
                    s.ioc_.run();
                    return;
                } catch (const std::exception& e) {
                    s.logger_.error("http io thread caught an exception", {{"error", e.what()}});
                }
            }
        });
    }
    s.logger_.info(
        "http server listening",
        {{"address", s.options_.address},
         {"port", s.port_},
         {"tls", s.options_.tls.enabled()},
         {"auth", s.options_.tokens && !s.options_.tokens->empty() ? "bearer" : "none"}});
}

std::uint16_t Server::port() const {
    return impl_->port_;
}

bool Server::tls() const {
    return impl_->options_.tls.enabled();
}

void Server::reload_tls() {
    Impl& s = *impl_;
    if (!s.options_.tls.enabled()) throw std::logic_error("this server does not serve TLS");
    auto context = load_tls_context(s.options_.tls);
    s.tls_context_.store(context);
    s.tls_loaded(context);
}

void Server::set_tokens(std::shared_ptr<const TokenSet> tokens) {
    if (!impl_->tokens_required_) {
        throw std::logic_error("a server started without tokens cannot be given tokens later");
    }
    if (!tokens || tokens->empty()) {
        throw std::invalid_argument("an empty token set would refuse every caller");
    }
    impl_->tokens_.store(std::move(tokens));
    for (auto& c : impl_->live_connections()) {
        net::post(c->executor(), [c] { c->on_tokens_changed(); });
    }
}

void Server::stop(std::chrono::milliseconds drain) {
    Impl& s = *impl_;
    std::lock_guard lock{s.lifecycle_mutex_};
    if (s.stopped_) return;
    s.stopped_ = true;
    if (!s.started_) return;

    auto deadline = SteadyClock::now() + drain;
    s.stopping_ = true;
    net::post(s.acceptor_.get_executor(), [&s] {
        beast::error_code ignored;
        s.acceptor_.close(ignored);
        s.accept_retry_.cancel();
    });
    // Connections accepted after this snapshot see stopping_ when they start.
    for (auto& c : s.live_connections()) {
        net::post(c->executor(), [c] { c->on_server_stop(); });
    }
    if (!s.wait_for_no_connections(deadline)) {
        auto left = s.live_connections();
        s.logger_.warn("http server cutting connections still busy after the drain period",
                       {{"connections", left.size()}});
        for (auto& c : left) net::post(c->executor(), [c] { c->force_close(); });
    }
    // Parked requests resumed from now on are not answered: the pool and the connections go.
    {
        std::lock_guard gate{s.resume_gate_->mutex};
        s.resume_gate_->open = false;
    }
    // Handlers still running finish here; their responses go nowhere if cut above. Every
    // socket is closed by now, so the io_context runs out of work and its threads return.
    s.pool_.stop();
    s.work_.reset();
    for (auto& t : s.io_threads_) {
        if (t.joinable()) t.join();
    }
    s.io_threads_.clear();
    s.logger_.info("http server stopped", {{"port", s.port_}});
}

}  // namespace ordo::platform::http
