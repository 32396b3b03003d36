// A headless Chromium for tests of pages: open a URL, evaluate script, wait for a condition in
// the page, click and type as a user would, resize to a phone, take a screenshot, and read the
// errors the page raised.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ordo::testing {

// Whether the Chromium binary (ORDO_CHROMIUM, else `chromium` on PATH) is there and
// executable; tests GTEST_SKIP without it (deploy/install.sh installs it).
bool browser_available();

// A Browser's viewport and deadlines (Browser::Options; outside the class so that it can be
// the constructor's default argument). Chromium's start has its own, longer bound: on a busy
// machine it takes seconds, which a test's short timeout for its waits should not have to cover.
struct BrowserOptions {
    int width = 1280;  // CSS pixels
    int height = 900;
    std::chrono::milliseconds timeout{15000};          // every command and wait
    std::chrono::milliseconds startup_timeout{30000};  // Chromium up, its page attached
};

// One headless Chromium with one page, driven over the DevTools protocol on fds 3 and 4
// (--remote-debugging-pipe), with a fresh profile in a temporary directory. Every wait is for
// a condition and has a deadline: a page that never gets there fails the test with a
// std::runtime_error that names the command or condition and the time waited, never hangs it.
// Not thread-safe: one Browser belongs to one test thread. Its protocol reads happen only
// inside its calls (poll() with the call's deadline, no reader thread): nothing runs behind
// the test's back, no lock is needed, and an event is seen by the call that waits for it.
class Browser {
   public:
    using Options = BrowserOptions;

    // Starts Chromium and attaches to its page. Throws with the reason, and the tail of
    // Chromium's own output when it did not come up.
    explicit Browser(Options options = {});
    // Closes the browser (Browser.close, then SIGKILL to its process group if it has not
    // exited within 5 s), reaps it and removes the temporary profile.
    ~Browser();
    Browser(const Browser&) = delete;
    Browser& operator=(const Browser&) = delete;

    // Chromium's browser process, reaped by the destructor.
    pid_t pid() const;

    // Navigates and returns once that navigation's document has fired its load event. A URL
    // that differs from the page's only in its #fragment keeps the document, as a link would:
    // open returns once the page's hashchange listeners have run. Throws on a navigation error
    // (net::ERR_...).
    void open(const std::string& url);

    // The value of a JavaScript expression in the page, a promise awaited, as JSON (undefined
    // is null; NaN, Infinity, -0 and bigints come as their text). Throws with the exception's
    // description when the expression throws or its promise rejects.
    nlohmann::json evaluate(const std::string& expression);

    // Waits until the (synchronous) JavaScript expression is truthy in the page. It is checked in
    // the page on every DOM mutation and every 20 ms, so the test goes on the moment it holds; an
    // expression that throws counts as false (an element not there yet). Throws naming the
    // expression (and its last exception) after `timeout`, by default Options::timeout. A
    // navigation during the wait fails it: the page it was checking is gone.
    void wait_for(const std::string& predicate,
                  std::optional<std::chrono::milliseconds> timeout = {});

    // A real mouse click at the centre of the first element matching `css_selector`, scrolled
    // into view first: the page sees trusted mousedown, mouseup and click events. Throws when
    // no element matches, it has no size, or another element covers its centre.
    void click(const std::string& css_selector);

    // Focuses the element and inserts `text` at the end of its value, as an IME would: the
    // page sees beforeinput and input events, no key events. Throws when no element matches
    // or it cannot take the focus.
    void type(const std::string& css_selector, const std::string& text);

    // Emulates a viewport of `width` x `height` CSS pixels at a device scale factor of 1, as a
    // mobile device below 600 pixels wide. A mobile viewport lays the page out at 980 pixels
    // unless the page has <meta name="viewport" content="width=device-width">, as phones do.
    void resize(int width, int height);

    // Writes a PNG of the whole page (beyond the viewport, up to 16384 pixels high) to
    // `png_path`, creating its parent directories.
    void screenshot(const std::string& png_path);

    // The page's uncaught exceptions and console.error messages so far, oldest first. It
    // first asks the page a question, so everything the page raised before this call is in
    // the list: the page sends its events and answers in order.
    std::vector<std::string> page_errors();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::testing
