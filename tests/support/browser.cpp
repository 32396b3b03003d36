// Chromium spawned with its DevTools protocol on fds 3 and 4, driven from the calling thread:
// each call writes its command and reads (poll() with the call's deadline) until its answer or
// event has come, keeping the page's errors it sees on the way.
#include "tests/support/browser.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

extern char** environ;

namespace ordo::testing {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kExitGrace{5000};        // for Browser.close before the SIGKILL
constexpr std::size_t kMaxQueuedEvents = 1000;  // events nobody waited for, oldest dropped
constexpr int kMaxScreenshotHeight = 16384;     // Chromium's largest texture

// The end of one call's waiting, and how long that was, for the message when it passes.
struct Deadline {
    Clock::time_point at;
    milliseconds budget;
};

Deadline within(milliseconds budget) {
    return {Clock::now() + budget, budget};
}

std::runtime_error timed_out(const std::string& what, const Deadline& deadline) {
    return std::runtime_error("Browser: " + what + " timed out after " +
                              std::to_string(deadline.budget.count()) + " ms");
}

std::runtime_error system_failure(const std::string& what) {
    return std::runtime_error("Browser: " + what + ": " + std::strerror(errno));
}

// An expression or URL as a message quotes it: long ones cut.
std::string quoted(const std::string& text) {
    constexpr std::size_t kMax = 200;
    return "`" + (text.size() <= kMax ? text : text.substr(0, kMax) + "...") + "`";
}

// A string as a JavaScript string literal (JSON's is one).
std::string js_string(const std::string& text) {
    return json(text).dump();
}

std::optional<std::string> chromium_binary() {
    const char* configured = std::getenv("ORDO_CHROMIUM");
    const std::string name = configured && *configured ? configured : "chromium";
    auto executable = [](const fs::path& p) {
        std::error_code ec;
        return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
    };
    if (name.find('/') != std::string::npos) {
        if (executable(name)) return name;
        return std::nullopt;
    }
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    for (std::size_t start = 0; start <= dirs.size();) {
        auto end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        const auto dir = dirs.substr(start, end - start);
        const auto candidate = fs::path(dir.empty() ? "." : dir) / name;
        if (executable(candidate)) return candidate.string();
        start = end + 1;
    }
    return std::nullopt;
}

// The last lines of Chromium's output, for a message on why it did not do what it was told.
// Its complaints that the machine has no D-Bus (every test machine) are left out: they would
// fill the tail and hide the reason.
std::string output_tail(const fs::path& path, std::size_t max_lines = 30) {
    std::ifstream in{path};
    if (!in) return "(no output: " + path.string() + " cannot be read)";
    std::deque<std::string> lines;
    std::size_t left_out = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find(":ERROR:dbus/") != std::string::npos) continue;
        lines.push_back(std::move(line));
        if (lines.size() > max_lines) {
            lines.pop_front();
            ++left_out;
        }
    }
    if (lines.empty()) return "(no output)";
    std::string tail = left_out ? "...\n" : "";
    for (const auto& line : lines) tail += line + "\n";
    return tail;
}

// wait_for in the page: checks `holds` on each DOM mutation and every 20 ms until it is truthy
// or `bound` ms have passed, so a wait costs one round trip. A throw counts as false (the
// element is not there yet) and is kept for the message.
constexpr const char* kWaitForScript = R"((holds, bound) => new Promise((resolve) => {
    const deadline = performance.now() + bound;
    let last = null, timer = 0, done = false;
    const observer = new MutationObserver(() => check());
    const finish = (ok) => {
        done = true;
        observer.disconnect();
        clearTimeout(timer);
        resolve({ok, last});
    };
    const check = () => {
        if (done) return;
        let ok = false;
        try {
            ok = !!holds();
        } catch (e) {
            last = String(e);
        }
        if (ok) finish(true);
        else if (performance.now() >= deadline) finish(false);
    };
    const tick = () => {
        check();
        if (!done) timer = setTimeout(tick, Math.max(0, Math.min(20, deadline - performance.now())));
    };
    observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
    tick();
}))";

// click's target: the centre of the element, scrolled into view, in viewport coordinates, or
// why a user could not click it there.
constexpr const char* kClickPointScript = R"((selector) => {
    const el = document.querySelector(selector);
    if (!el) return {error: 'no element matches'};
    el.scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'});
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return {error: 'it has no size (hidden?)'};
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    if (hit !== el && !el.contains(hit)) {
        const name = !hit ? 'nothing (outside the viewport)'
                          : hit.tagName.toLowerCase() + (hit.id ? '#' + hit.id : '');
        return {error: 'its centre is covered by ' + name};
    }
    return {x, y};
})";

// type's focus: the element focused with the caret at the end, as after a user's click past
// the text, or why not. Input types without a selection (email, number) keep their own caret.
constexpr const char* kFocusScript = R"((selector) => {
    const el = document.querySelector(selector);
    if (!el) return 'no element matches';
    el.focus();
    if (document.activeElement !== el) return 'it cannot take the focus';
    const selectable = el instanceof HTMLTextAreaElement ||
        (el instanceof HTMLInputElement && /^(text|search|url|tel|password)$/.test(el.type));
    if (selectable) {
        el.setSelectionRange(el.value.length, el.value.length);
    } else if (el.isContentEditable) {
        const range = document.createRange();
        range.selectNodeContents(el);
        range.collapse(false);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
    }
    return '';
})";

// open's navigation within the document: to `url` when it differs from the page's only in its
// #fragment, settled once the page's own hashchange listeners have run (Page.navigate answers
// before the hashchange event, and a router's view is built in it); true if it was one. The
// listener goes on before the navigation, in the same task, so the event cannot come first.
constexpr const char* kFragmentNavigationScript = R"((url) => {
    let there;
    try {
        there = new URL(url, location.href);
    } catch (e) {
        return false;  // not a URL here: Page.navigate reports why
    }
    if (!url.includes('#') || there.href.split('#')[0] !== location.href.split('#')[0]) return false;
    if (there.hash === location.hash) return true;  // already there: no event will come
    return new Promise((resolve) => {
        addEventListener('hashchange', () => resolve(true), {once: true});
        location.href = there.href;
    });
})";

std::string base64_decode(const std::string& text) {
    std::string out;
    out.reserve(text.size() / 4 * 3);
    std::uint32_t bits = 0;
    int count = 0;
    for (char c : text) {
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else if (c == '=')
            break;
        else
            throw std::runtime_error("Browser: a screenshot that is not base64");
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        if (++count == 4) {
            out.push_back(static_cast<char>(bits >> 16));
            out.push_back(static_cast<char>(bits >> 8));
            out.push_back(static_cast<char>(bits));
            bits = 0;
            count = 0;
        }
    }
    if (count == 3) {
        out.push_back(static_cast<char>(bits >> 10));
        out.push_back(static_cast<char>(bits >> 2));
    } else if (count == 2) {
        out.push_back(static_cast<char>(bits >> 4));
    }
    return out;
}

// A Runtime.RemoteObject as text: a string as itself, other values as JSON.
std::string remote_text(const json& object) {
    if (object.contains("value"))
        return object["value"].is_string() ? object["value"].get<std::string>()
                                           : object["value"].dump();
    if (object.contains("unserializableValue")) return object["unserializableValue"];
    if (object.contains("description")) return object["description"];
    return object.value("type", "?");
}

// Runtime.ExceptionDetails as text: "Uncaught Error: message" and its stack.
std::string exception_text(const json& details) {
    std::string text = details.value("text", "exception");
    if (details.contains("exception")) text += " " + remote_text(details["exception"]);
    return text;
}

// Emulation.setDeviceMetricsOverride's parameters: a phone below 600 CSS pixels wide.
json viewport(int width, int height) {
    return {
        {"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", width < 600}};
}

// An fd moved to 10 or above, close-on-exec, so that the spawn's dup2 onto 0..4 cannot close
// it before it is copied (an fd already at its target would keep its close-on-exec).
int above_child_fds(int fd) {
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    ::close(fd);
    if (moved < 0) throw system_failure("fcntl(F_DUPFD_CLOEXEC)");
    return moved;
}

}  // namespace

bool browser_available() {
    return chromium_binary().has_value();
}

struct Browser::Impl {
    Options options;
    fs::path profile;  // the temporary profile; Chromium's output goes to chromium.log in it
    pid_t pid = -1;
    int pidfd = -1;           // readable once Chromium has exited; -1 where pidfd_open is missing
    int fd = -1;              // our end of the protocol socket
    std::string inbox;        // bytes read, not yet a whole message
    std::size_t scanned = 0;  // how much of inbox holds no NUL
    std::int64_t next_id = 1;
    std::int64_t awaited_id = 0;  // the one command whose answer is kept
    std::optional<json> answer;
    std::string session;
    std::deque<json> events;
    std::vector<std::string> errors;
    std::optional<std::string> page_gone;  // why commands to the page can no longer succeed
    bool started = false;                  // the constructor has returned

    explicit Impl(Options o) : options(o) {}
    ~Impl() { shutdown(); }

    fs::path log_path() const { return profile / "chromium.log"; }

    void start() {
        const auto binary = chromium_binary();
        if (!binary)
            throw std::runtime_error(
                "Browser: no Chromium: set ORDO_CHROMIUM or put `chromium` on PATH "
                "(deploy/install.sh installs it)");
        std::string dir = (fs::temp_directory_path() / "ordo-chromium-XXXXXX").string();
        if (!::mkdtemp(dir.data())) throw system_failure("mkdtemp " + dir);
        profile = dir;

        int log = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (log < 0) throw system_failure("open " + log_path().string());
        log = above_child_fds(log);
        // A socketpair, not pipe(2): send(MSG_NOSIGNAL) fails with EPIPE where a write to a
        // dead Chromium's pipe would kill the test with SIGPIPE. Chromium reads and writes it
        // as it does a pipe (Node's pipes, which Puppeteer gives it, are socketpairs too).
        int ends[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
            ::close(log);
            throw system_failure("socketpair");
        }
        fd = ends[0];
        int theirs = above_child_fds(ends[1]);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

        std::vector<std::string> argv{*binary,
                                      "--headless=new",
                                      "--no-sandbox",
                                      "--disable-gpu",
                                      "--remote-debugging-pipe",
                                      "--user-data-dir=" + profile.string(),
                                      "--no-first-run",
                                      "--no-default-browser-check",
                                      "--disable-extensions",
                                      "--disable-background-networking",
                                      "--disable-component-update",
                                      "--disable-sync",
                                      "--hide-scrollbars",
                                      "--mute-audio",
                                      "--disable-dev-shm-usage",
                                      "about:blank"};
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);

        // posix_spawn rather than fork: nothing but the spawn's own steps runs in the child of
        // a process that may have threads (sanitizers, other fixtures).
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&actions, log, 1);
        posix_spawn_file_actions_adddup2(&actions, log, 2);
        posix_spawn_file_actions_adddup2(&actions, theirs, 3);
        posix_spawn_file_actions_adddup2(&actions, theirs, 4);
        posix_spawn_file_actions_addclosefrom_np(&actions, 5);
        // Its own process group, so that a SIGKILL reaches its renderers and helpers too.
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        posix_spawnattr_setpgroup(&attributes, 0);
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigmask(&attributes, &none);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
        const int rc = ::posix_spawn(&pid, args[0], &actions, &attributes, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attributes);
        ::close(theirs);
        ::close(log);
        if (rc != 0) {
            pid = -1;
            throw std::runtime_error("Browser: cannot start " + *binary + ": " + std::strerror(rc));
        }
        pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));

        const auto deadline = within(options.startup_timeout);
        std::string target;
        const auto targets = browser_command("Target.getTargets", {}, deadline);
        for (const auto& t : targets.value("targetInfos", json::array())) {
            if (t.value("type", "") != "page") continue;
            target = t.at("targetId");
            break;
        }
        if (target.empty()) {
            target = browser_command("Target.createTarget", {{"url", "about:blank"}}, deadline)
                         .at("targetId");
        }
        session = browser_command("Target.attachToTarget",
                                  {{"targetId", target}, {"flatten", true}}, deadline)
                      .at("sessionId");
        page_command("Page.enable", {}, deadline);
        page_command("Page.setLifecycleEventsEnabled", {{"enabled", true}}, deadline);
        page_command("Runtime.enable", {}, deadline);
        // Focus, :focus and focus events behave as in a focused window, which headless has not.
        page_command("Emulation.setFocusEmulationEnabled", {{"enabled", true}}, deadline);
        page_command("Emulation.setDeviceMetricsOverride", viewport(options.width, options.height),
                     deadline);
    }

    // Browser.close, then SIGKILL to the whole group if Chromium has not gone within 5 s; the
    // group is killed while the browser process is unreaped, so its id cannot be another's.
    void shutdown() noexcept {
        if (pid > 0) {
            if (fd >= 0) {
                const std::string close_command =
                    json{{"id", next_id++}, {"method", "Browser.close"}}.dump() + '\0';
                // Best effort: if it cannot be sent, the socket's closing below ends Chromium
                // all the same. EPIPE and ECONNRESET: it has gone already.
                const auto sent = ::send(fd, close_command.data(), close_command.size(),
                                         MSG_NOSIGNAL | MSG_DONTWAIT);
                if (sent < 0 && errno != EPIPE && errno != ECONNRESET)
                    std::cerr << "Browser: Browser.close not sent (" << std::strerror(errno)
                              << "); closing the pipe instead\n";
            }
        }
        // Closed at once: Chromium's answers must not fill a socket nobody reads while it
        // shuts down, and on end of file it quits all the same.
        if (fd >= 0) ::close(fd);
        fd = -1;
        if (pid > 0) {
            if (!exited_within(kExitGrace)) {
                std::cerr << "Browser: Chromium " << pid << " still running " << kExitGrace.count()
                          << " ms after Browser.close; SIGKILL\n";
                ::kill(-pid, SIGKILL);
                ::kill(pid, SIGKILL);
            }
            ::kill(-pid, SIGKILL);  // renderers and helpers left in its group
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            pid = -1;
        }
        if (pidfd >= 0) ::close(pidfd);
        pidfd = -1;
        if (!profile.empty()) {
            std::error_code ec;
            fs::remove_all(profile, ec);
            if (ec)
                std::cerr << "Browser: cannot remove the profile " << profile << ": "
                          << ec.message() << "\n";
        }
    }

    // Whether Chromium has exited (a zombie still: not reaped) within `bound`.
    bool exited_within(milliseconds bound) {
        const auto deadline = Clock::now() + bound;
        for (;;) {
            if (pidfd >= 0) {
                pollfd p{pidfd, POLLIN, 0};
                const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
                const int rc = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left)));
                if (rc > 0) return true;
                if (rc == 0) return false;
                if (errno != EINTR) return false;
                continue;
            }
            siginfo_t info{};
            if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                info.si_pid == pid)
                return true;
            if (Clock::now() >= deadline) return false;
            std::this_thread::sleep_for(milliseconds(10));  // no pidfd: poll the child's state
        }
    }

    [[noreturn]] void pipe_closed(const std::string& what) {
        auto message = "Browser: " + what + ": Chromium closed the DevTools pipe (it exited)";
        // Until it has started, the constructor adds Chromium's output itself.
        if (started) message += "; its output ends with:\n" + output_tail(log_path());
        throw std::runtime_error(message);
    }

    // Reads what Chromium has sent, waiting until the deadline for something to come.
    void pump(const Deadline& deadline, const std::string& what) {
        if (page_gone && !session.empty())
            throw std::runtime_error("Browser: " + what + ": " + *page_gone);
        const auto left = std::chrono::ceil<milliseconds>(deadline.at - Clock::now()).count();
        if (left <= 0) throw timed_out(what, deadline);
        pollfd p{fd, POLLIN, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) return;
        if (rc < 0) throw system_failure("poll");
        if (rc == 0) throw timed_out(what, deadline);
        receive(what);
    }

    void receive(const std::string& what) {
        char buffer[65536];
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n == 0) pipe_closed(what);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) return;
            if (errno == ECONNRESET) pipe_closed(what);
            throw system_failure("read");
        }
        inbox.append(buffer, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (auto end = inbox.find('\0', scanned); end != std::string::npos;
             end = inbox.find('\0', start)) {
            auto message =
                json::parse(inbox.begin() + static_cast<std::ptrdiff_t>(start),
                            inbox.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
            if (message.is_discarded())
                throw std::runtime_error("Browser: Chromium sent a message that is not JSON");
            dispatch(std::move(message));
            start = end + 1;
        }
        inbox.erase(0, start);
        scanned = inbox.size();
    }

    void dispatch(json message) {
        if (message.contains("id")) {
            if (message["id"] == awaited_id) answer = std::move(message);
            return;  // the answer to a command given up on
        }
        const std::string method = message.value("method", "");
        auto& params = message["params"];
        if (method == "Runtime.exceptionThrown") {
            errors.push_back(exception_text(params["exceptionDetails"]));
        } else if (method == "Runtime.consoleAPICalled") {
            if (params.value("type", "") != "error") return;
            std::string text = "console.error:";
            for (const auto& arg : params["args"]) text += " " + remote_text(arg);
            errors.push_back(std::move(text));
        } else if (method == "Inspector.targetCrashed") {
            page_gone = "the page crashed";
        } else if (method == "Target.detachedFromTarget" &&
                   params.value("sessionId", "") == session) {
            page_gone = "the page was closed";
        } else {
            events.push_back(std::move(message));
            if (events.size() > kMaxQueuedEvents) events.pop_front();
        }
    }

    void send_all(const std::string& bytes, const Deadline& deadline, const std::string& what) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            const auto n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            if (n >= 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (errno == EINTR) continue;
            if (errno == EPIPE || errno == ECONNRESET) pipe_closed(what);
            if (errno != EAGAIN) throw system_failure("send");
            // Chromium is not reading: it may be waiting for us to read what it sends.
            const auto left = std::chrono::ceil<milliseconds>(deadline.at - Clock::now()).count();
            if (left <= 0) throw timed_out(what, deadline);
            pollfd p{fd, POLLIN | POLLOUT, 0};
            const int rc = ::poll(&p, 1, static_cast<int>(left));
            if (rc < 0 && errno != EINTR) throw system_failure("poll");
            if (rc == 0) throw timed_out(what, deadline);
            if (rc > 0 && (p.revents & POLLIN)) receive(what);
        }
    }

    json command(const std::string& method, const json& params, const Deadline& deadline,
                 const std::string& for_what, bool to_page) {
        const auto what = method + (for_what.empty() ? "" : " for " + for_what);
        json message{{"id", next_id++}, {"method", method}, {"params", params}};
        if (to_page) message["sessionId"] = session;
        awaited_id = message["id"];
        answer.reset();
        send_all(message.dump() + '\0', deadline, what);
        while (!answer) pump(deadline, what);
        json reply = std::move(*answer);
        answer.reset();
        if (reply.contains("error"))
            throw std::runtime_error("Browser: " + what + " failed: " +
                                     reply["error"].value("message", reply["error"].dump()));
        return reply.value("result", json::object());
    }

    json browser_command(const std::string& method, const json& params, const Deadline& deadline) {
        return command(method, params, deadline, "", false);
    }

    json page_command(const std::string& method, const json& params, const Deadline& deadline,
                      const std::string& for_what = "") {
        return command(method, params, deadline, for_what, true);
    }

    // Waits for an event that `matches`, taking it out of the queue.
    json await_event(const std::function<bool(const json&)>& matches, const Deadline& deadline,
                     const std::string& what) {
        for (;;) {
            for (auto it = events.begin(); it != events.end(); ++it) {
                if (matches(*it)) {
                    json event = std::move(*it);
                    events.erase(it);
                    return event;
                }
            }
            pump(deadline, what);
        }
    }

    // Runtime.evaluate, a promise awaited, its value by value; throws when it throws.
    json evaluate(const std::string& expression, const Deadline& deadline,
                  const std::string& for_what) {
        const auto reply = page_command("Runtime.evaluate",
                                        {{"expression", expression},
                                         {"awaitPromise", true},
                                         {"returnByValue", true},
                                         {"userGesture", true}},
                                        deadline, for_what);
        if (reply.contains("exceptionDetails"))
            throw std::runtime_error("Browser: " + for_what +
                                     " threw: " + exception_text(reply["exceptionDetails"]));
        const auto result = reply.value("result", json::object());
        if (result.contains("value")) return result.at("value");
        if (result.contains("unserializableValue")) return result.at("unserializableValue");
        return nullptr;
    }
};

Browser::Browser(Options options) : impl_(std::make_unique<Impl>(options)) {
    try {
        impl_->start();
        impl_->started = true;
    } catch (const std::exception& e) {
        std::string reason = e.what();
        if (reason.starts_with("Browser: ")) reason.erase(0, std::strlen("Browser: "));
        if (impl_->pid > 0)
            reason += "\nChromium's output ends with:\n" + output_tail(impl_->log_path());
        impl_.reset();  // Chromium stopped, its profile removed
        throw std::runtime_error("Browser: Chromium did not come up: " + reason);
    }
}

Browser::~Browser() = default;

pid_t Browser::pid() const {
    return impl_->pid;
}

void Browser::open(const std::string& url) {
    const auto deadline = within(impl_->options.timeout);
    const auto what = "open(" + quoted(url) + ")";
    if (url.find('#') != std::string::npos) {
        const auto script =
            "(" + std::string{kFragmentNavigationScript} + ")(" + js_string(url) + ")";
        if (impl_->evaluate(script, deadline, what) == true) return;
    }
    const auto reply = impl_->page_command("Page.navigate", {{"url", url}}, deadline, what);
    if (const auto error = reply.value("errorText", std::string{}); !error.empty())
        throw std::runtime_error("Browser: " + what + " failed: " + error);
    if (!reply.contains("loaderId")) return;  // within the document, no load event to wait for
    const std::string frame = reply.at("frameId");
    const std::string loader = reply.at("loaderId");
    impl_->await_event(
        [&](const json& event) {
            if (event.value("method", "") != "Page.lifecycleEvent") return false;
            const auto& p = event.at("params");
            return p.value("name", "") == "load" && p.value("frameId", "") == frame &&
                   p.value("loaderId", "") == loader;
        },
        deadline, "the load event of " + what);
}

nlohmann::json Browser::evaluate(const std::string& expression) {
    return impl_->evaluate(expression, within(impl_->options.timeout),
                           "evaluate(" + quoted(expression) + ")");
}

void Browser::wait_for(const std::string& predicate,
                       std::optional<std::chrono::milliseconds> timeout) {
    const auto bound = timeout.value_or(impl_->options.timeout);
    // The predicate sits on lines of its own, so a trailing // comment cannot swallow the rest.
    const auto script = "(" + std::string{kWaitForScript} + ")(() => (\n" + predicate + "\n), " +
                        std::to_string(bound.count()) + ")";
    const auto what = "wait_for(" + quoted(predicate) + ")";
    // The page keeps the bound; ours adds a command's time for the answer to come back.
    const auto result = impl_->evaluate(script, within(bound + impl_->options.timeout), what);
    if (result.value("ok", false)) return;
    auto message =
        "Browser: " + what + " still false after " + std::to_string(bound.count()) + " ms";
    if (result.contains("last") && result["last"].is_string())
        message += "; its last check threw " + result["last"].get<std::string>();
    throw std::runtime_error(message);
}

void Browser::click(const std::string& css_selector) {
    const auto deadline = within(impl_->options.timeout);
    const auto what = "click(" + quoted(css_selector) + ")";
    const auto script = "(" + std::string{kClickPointScript} + ")(" + js_string(css_selector) + ")";
    const auto point = impl_->evaluate(script, deadline, what);
    if (point.contains("error"))
        throw std::runtime_error("Browser: " + what + ": " + point.at("error").get<std::string>());
    const double x = point.at("x"), y = point.at("y");
    impl_->page_command("Input.dispatchMouseEvent", {{"type", "mouseMoved"}, {"x", x}, {"y", y}},
                        deadline, what);
    for (const char* type : {"mousePressed", "mouseReleased"}) {
        impl_->page_command("Input.dispatchMouseEvent",
                            {{"type", type},
                             {"x", x},
                             {"y", y},
                             {"button", "left"},
                             {"buttons", std::string{type} == "mousePressed" ? 1 : 0},
                             {"clickCount", 1}},
                            deadline, what);
    }
}

void Browser::type(const std::string& css_selector, const std::string& text) {
    const auto deadline = within(impl_->options.timeout);
    const auto what = "type(" + quoted(css_selector) + ")";
    const auto script = "(" + std::string{kFocusScript} + ")(" + js_string(css_selector) + ")";
    const auto refusal = impl_->evaluate(script, deadline, what);
    if (refusal.is_string() && !refusal.get<std::string>().empty())
        throw std::runtime_error("Browser: " + what + ": " + refusal.get<std::string>());
    impl_->page_command("Input.insertText", {{"text", text}}, deadline, what);
}

void Browser::resize(int width, int height) {
    impl_->page_command("Emulation.setDeviceMetricsOverride", viewport(width, height),
                        within(impl_->options.timeout),
                        "resize(" + std::to_string(width) + ", " + std::to_string(height) + ")");
}

void Browser::screenshot(const std::string& png_path) {
    const auto deadline = within(impl_->options.timeout);
    const auto what = "screenshot(" + quoted(png_path) + ")";
    const auto metrics = impl_->page_command("Page.getLayoutMetrics", {}, deadline, what);
    const auto& size = metrics.contains("cssContentSize") ? metrics.at("cssContentSize")
                                                          : metrics.at("contentSize");
    const double width = std::ceil(size.value("width", 0.0));
    const double height =
        std::min<double>(std::ceil(size.value("height", 0.0)), kMaxScreenshotHeight);
    const auto shot = impl_->page_command(
        "Page.captureScreenshot",
        {{"format", "png"},
         {"captureBeyondViewport", true},
         {"clip", {{"x", 0}, {"y", 0}, {"width", width}, {"height", height}, {"scale", 1}}}},
        deadline, what);
    const auto png = base64_decode(shot.value("data", std::string{}));
    const fs::path path{png_path};
    if (path.has_parent_path()) fs::create_directories(path.parent_path());
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(png.data(), static_cast<std::streamsize>(png.size()));
    out.close();
    if (!out) throw std::runtime_error("Browser: " + what + ": cannot write " + png_path);
}

std::vector<std::string> Browser::page_errors() {
    // A question to the page: its answer comes after every event it sent before.
    impl_->evaluate("0", within(impl_->options.timeout), "page_errors()");
    return impl_->errors;
}

}  // namespace ordo::testing
