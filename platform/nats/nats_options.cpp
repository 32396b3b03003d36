// NATS URLs taken apart (scheme, host, password redacted) and applied to cnats options: TLS
// for tls:// or a CA file, with the first URL's host as the name the certificate must carry.
#include "platform/nats/nats_options.hpp"

#include <stdexcept>
#include <string_view>
#include <vector>

#include "platform/core/comma_list.hpp"

namespace ordo::platform::nats {
namespace {

struct Parts {
    std::string_view scheme;  // empty when the URL has none
    std::string_view host;
};

// The scheme and host of one URL: [scheme://][user[:password]@]host[:port].
Parts parts_of(std::string_view url) {
    Parts out;
    if (auto at = url.find("://"); at != std::string_view::npos) {
        out.scheme = url.substr(0, at);
        url.remove_prefix(at + 3);
    }
    if (auto at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
    if (!url.empty() && url.front() == '[') {  // [::1]:4222
        auto close = url.find(']');
        out.host = url.substr(1, close == std::string_view::npos ? url.size() - 1 : close - 1);
    } else {
        out.host = url.substr(0, url.find_first_of(":/"));
    }
    return out;
}

}  // namespace

std::string redacted(const std::string& url) {
    std::string out;
    std::string_view rest{url};
    for (;;) {
        auto end = rest.find(',');
        auto one = rest.substr(0, end);
        auto scheme_end = one.find("://");
        auto userinfo_from = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
        auto at = one.rfind('@');
        auto colon = one.find(':', userinfo_from);
        if (at != std::string_view::npos && colon != std::string_view::npos && colon < at) {
            out.append(one.substr(0, colon)).append(":***").append(one.substr(at));
        } else {
            out.append(one);
        }
        if (end == std::string_view::npos) break;
        out.push_back(',');
        rest.remove_prefix(end + 1);
    }
    return out;
}

void apply(natsOptions* options, const ClientSettings& settings) {
    // natsOptions_SetURL takes one URL; a cluster's list goes in as the server pool, which
    // cnats connects and reconnects to in turn (each URL with its own credentials).
    const auto urls = comma_list(settings.url);
    if (urls.size() > 1) {
        std::vector<const char*> servers;
        for (const auto& url : urls) servers.push_back(url.c_str());
        natsOptions_SetServers(options, servers.data(), static_cast<int>(servers.size()));
    } else {
        natsOptions_SetURL(options, urls.empty() ? settings.url.c_str() : urls.front().c_str());
    }
    auto first = parts_of(urls.empty() ? std::string_view{} : std::string_view{urls.front()});
    // cnats reads no scheme: a tls:// URL has to ask for TLS itself.
    const bool secure = first.scheme == "tls" || !settings.ca_file.empty();
    if (!secure) return;
    if (first.host.empty()) {
        throw std::invalid_argument("NATS URL " + redacted(settings.url) + " names no host");
    }
    natsOptions_SetSecure(options, true);
    if (!settings.ca_file.empty()) {
        if (auto status = natsOptions_LoadCATrustedCertificates(options, settings.ca_file.c_str());
            status != NATS_OK) {
            throw std::invalid_argument("cannot load the NATS CA file " + settings.ca_file + ": " +
                                        natsStatus_GetText(status));
        }
    }
    // An IP literal is matched against the certificate's IP addresses (OpenSSL 3).
    natsOptions_SetExpectedHostname(options, std::string{first.host}.c_str());
}

}  // namespace ordo::platform::nats
