// The headless-Chromium driver on a real page written to a temporary directory: it clicks,
// types, waits, reads errors, resizes and takes screenshots as pages' tests need, fails with
// a message that names what did not happen, and leaves no process or profile behind.
#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/browser.hpp"

namespace ordo::testing {
namespace {

namespace fs = std::filesystem;

// A button that adds the input's text to a list 50 ms after a click (and records whether the
// click was a trusted, user-made one), a button whose handler throws, and a viewport tag so
// that a phone-sized viewport is laid out at its own width.
constexpr const char* kPage = R"(<!doctype html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ordo browser driver</title>
</head>
<body>
<input id="name" type="text">
<button id="add">Add</button>
<button id="fail">Fail</button>
<ul id="items"></ul>
<div style="height: 2000px"></div>
<button id="far">Far below</button>
<script>
document.getElementById('add').addEventListener('click', (event) => {
    const text = document.getElementById('name').value;
    const trusted = event.isTrusted;
    setTimeout(() => {
        const item = document.createElement('li');
        item.className = 'item';
        item.textContent = text;
        item.dataset.trusted = String(trusted);
        document.getElementById('items').append(item);
    }, 50);
});
document.getElementById('fail').addEventListener('click', () => {
    throw new Error('the fail button was pressed');
});
document.getElementById('far').addEventListener('click', () => { document.title = 'far'; });
addEventListener('hashchange', () => { document.body.dataset.route = location.hash; });
</script>
</body>
</html>
)";

// A directory of its own under the system's temporary directory, removed at the end.
class ScratchDir {
   public:
    ScratchDir() {
        std::string dir = (fs::temp_directory_path() / "ordo-browser-test-XXXXXX").string();
        if (!::mkdtemp(dir.data())) throw std::runtime_error("mkdtemp failed");
        path_ = dir;
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

   private:
    fs::path path_;
};

// The test page in `dir`, as a file:// URL.
std::string write_page(const fs::path& dir) {
    const auto file = dir / "page.html";
    std::ofstream{file} << kPage;
    return "file://" + file.string();
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// The message of what `fn` throws; fails the test when it does not throw.
template <class Fn>
std::string thrown_by(Fn&& fn) {
    try {
        fn();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    ADD_FAILURE() << "nothing was thrown";
    return {};
}

// A test of the browser is skipped, and says why, where Chromium is not installed.
#define SKIP_WITHOUT_CHROMIUM()                                                                \
    do {                                                                                       \
        if (!browser_available())                                                              \
            GTEST_SKIP() << "no Chromium: install the `chromium` package (deploy/install.sh) " \
                            "or set ORDO_CHROMIUM";                                            \
    } while (false)

TEST(Browser, ClicksTypesAndWaitsAsAUserWould) {
    SKIP_WITHOUT_CHROMIUM();
    ScratchDir dir;
    Browser browser;
    browser.open(write_page(dir.path()));
    EXPECT_EQ(browser.evaluate("document.title"), "Ordo browser driver");

    browser.type("#name", "Widget 7");
    EXPECT_EQ(browser.evaluate("document.getElementById('name').value"), "Widget 7");
    browser.type("#name", "!");  // appends, as a user typing on would
    EXPECT_EQ(browser.evaluate("document.getElementById('name').value"), "Widget 7!");

    browser.click("#add");
    browser.wait_for("document.querySelector('#items .item') !== null");
    EXPECT_EQ(browser.evaluate("document.querySelector('#items .item').textContent"), "Widget 7!");
    // A real mouse click, not element.click(): the page saw a trusted event.
    EXPECT_EQ(browser.evaluate("document.querySelector('#items .item').dataset.trusted"), "true");

    browser.click("#far");  // 2000 px below the viewport: scrolled to first
    EXPECT_EQ(browser.evaluate("document.title"), "far");
    EXPECT_GT(browser.evaluate("window.scrollY").get<double>(), 0);

    const auto missing = thrown_by([&] { browser.click("#nothing-here"); });
    EXPECT_TRUE(contains(missing, "#nothing-here")) << missing;
    EXPECT_TRUE(contains(missing, "no element matches")) << missing;
    const auto not_typed = thrown_by([&] { browser.type("#nothing-here", "x"); });
    EXPECT_TRUE(contains(not_typed, "no element matches")) << not_typed;
}

TEST(Browser, CollectsUncaughtExceptionsAndConsoleErrors) {
    SKIP_WITHOUT_CHROMIUM();
    ScratchDir dir;
    Browser browser;
    browser.open(write_page(dir.path()));
    EXPECT_TRUE(browser.page_errors().empty());

    browser.click("#fail");
    browser.evaluate("console.error('logged', 'failure', 42)");
    browser.evaluate("console.log('not an error')");
    const auto errors = browser.page_errors();
    ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
    EXPECT_TRUE(contains(errors[0], "the fail button was pressed")) << errors[0];
    EXPECT_EQ(errors[1], "console.error: logged failure 42");
}

TEST(Browser, EvaluateThrowsWhatThePageThrew) {
    SKIP_WITHOUT_CHROMIUM();
    Browser browser;
    EXPECT_EQ(browser.evaluate("Promise.resolve(6 * 7)"), 42);
    EXPECT_EQ(browser.evaluate("({a: [1, 'two']})"), (nlohmann::json{{"a", {1, "two"}}}));
    EXPECT_TRUE(browser.evaluate("undefined").is_null());

    const auto thrown =
        thrown_by([&] { browser.evaluate("(() => { throw new Error('on purpose'); })()"); });
    EXPECT_TRUE(contains(thrown, "Error: on purpose")) << thrown;
    const auto rejected =
        thrown_by([&] { browser.evaluate("Promise.reject(new Error('refused'))"); });
    EXPECT_TRUE(contains(rejected, "Error: refused")) << rejected;
    const auto syntax = thrown_by([&] { browser.evaluate("1 +"); });
    EXPECT_TRUE(contains(syntax, "SyntaxError")) << syntax;
}

TEST(Browser, WaitForNamesThePredicateThatNeverHeld) {
    SKIP_WITHOUT_CHROMIUM();
    Browser browser;
    const std::chrono::milliseconds bound{300};
    const auto started = std::chrono::steady_clock::now();
    const auto message = thrown_by([&] { browser.wait_for("window.neverSet === true", bound); });
    const auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_TRUE(contains(message, "window.neverSet === true")) << message;
    EXPECT_GE(waited, bound);
    // Not a bound on speed: the short timeout, not the 15 s default, ended the wait.
    EXPECT_LT(waited, std::chrono::seconds(10));

    // A predicate that throws is false until the deadline, and its exception is reported.
    const auto threw = thrown_by(
        [&] { browser.wait_for("document.querySelector('#absent').textContent === 'x'", bound); });
    EXPECT_TRUE(contains(threw, "TypeError")) << threw;
}

TEST(Browser, OpenFailsOnANavigationError) {
    SKIP_WITHOUT_CHROMIUM();
    ScratchDir dir;
    Browser browser;
    const auto url = "file://" + (dir.path() / "absent.html").string();
    const auto message = thrown_by([&] { browser.open(url); });
    EXPECT_TRUE(contains(message, "ERR_FILE_NOT_FOUND")) << message;
    EXPECT_TRUE(contains(message, url)) << message;
    browser.open(write_page(dir.path()));  // the page still works afterwards
    EXPECT_EQ(browser.evaluate("document.title"), "Ordo browser driver");
}

// A hash-routed page: a new #fragment keeps the document, and open returns once the page has
// handled its hashchange (Chromium answers the navigation before that event).
TEST(Browser, OpenOfANewFragmentWaitsForThePageToRoute) {
    SKIP_WITHOUT_CHROMIUM();
    ScratchDir dir;
    Browser browser;
    const auto page = write_page(dir.path());
    browser.open(page + "#/first");
    browser.evaluate("window.sameDocument = true");
    browser.open(page + "#/second");
    EXPECT_EQ(browser.evaluate("document.body.dataset.route"), "#/second");
    EXPECT_EQ(browser.evaluate("window.sameDocument"), true);
    browser.open(page + "#/second");  // already there: nothing to wait for
    EXPECT_EQ(browser.evaluate("location.hash"), "#/second");
    browser.open(page);  // no fragment: the document is loaded anew
    EXPECT_TRUE(browser.evaluate("window.sameDocument").is_null());
}

TEST(Browser, ResizesToAPhoneAndTakesAFullPageScreenshot) {
    SKIP_WITHOUT_CHROMIUM();
    ScratchDir dir;
    Browser browser;
    browser.open(write_page(dir.path()));
    EXPECT_EQ(browser.evaluate("window.innerWidth"), 1280);
    browser.resize(390, 844);
    EXPECT_EQ(browser.evaluate("window.innerWidth"), 390);
    EXPECT_EQ(browser.evaluate("window.innerHeight"), 844);

    const auto png = dir.path() / "shots" / "phone" / "page.png";
    browser.screenshot(png.string());
    std::ifstream in{png, std::ios::binary};
    const std::string bytes{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
    ASSERT_GT(bytes.size(), 24u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    // The IHDR chunk's width and height, big-endian: the phone's width, the page's height.
    auto be32 = [&](std::size_t at) {
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(bytes[at + i]);
        return v;
    };
    EXPECT_EQ(be32(16), 390u);
    EXPECT_GT(be32(20), 2000u);                             // beyond the viewport: the whole page
    EXPECT_EQ(browser.evaluate("window.innerWidth"), 390);  // the viewport is as it was
}

// The profile is made under TMPDIR: pointed at a directory of the test's own, it shows that
// the profile is there while the browser runs and gone after, with nothing else left there.
TEST(Browser, LeavesNoProcessOrFileBehind) {
    SKIP_WITHOUT_CHROMIUM();
    ScratchDir dir;
    const char* previous = std::getenv("TMPDIR");
    const std::optional<std::string> saved =
        previous ? std::optional<std::string>{previous} : std::nullopt;
    ::setenv("TMPDIR", dir.path().c_str(), 1);
    std::optional<Browser> browser{std::in_place};
    if (saved)
        ::setenv("TMPDIR", saved->c_str(), 1);
    else
        ::unsetenv("TMPDIR");
    const pid_t pid = browser->pid();
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, 0), 0);
    EXPECT_FALSE(fs::is_empty(dir.path()));
    browser.reset();
    EXPECT_EQ(::kill(pid, 0), -1);
    EXPECT_EQ(errno, ESRCH);
    for (const auto& left : fs::directory_iterator(dir.path())) ADD_FAILURE() << left.path();
}

// A binary that is no Chromium: the constructor says so with that program's own output.
TEST(Browser, StartupFailureCarriesChromiumsOutput) {
    ScratchDir dir;
    const auto fake = dir.path() / "chromium";
    std::ofstream{fake} << "#!/bin/sh\necho 'cannot open display: none here' >&2\nexit 1\n";
    fs::permissions(fake, fs::perms::owner_all);
    const char* previous = std::getenv("ORDO_CHROMIUM");
    const std::optional<std::string> saved =
        previous ? std::optional<std::string>{previous} : std::nullopt;
    ::setenv("ORDO_CHROMIUM", fake.c_str(), 1);
    const auto message = thrown_by([] { Browser browser; });
    if (saved)
        ::setenv("ORDO_CHROMIUM", saved->c_str(), 1);
    else
        ::unsetenv("ORDO_CHROMIUM");
    EXPECT_TRUE(contains(message, "cannot open display: none here")) << message;
}

}  // namespace
}  // namespace ordo::testing
