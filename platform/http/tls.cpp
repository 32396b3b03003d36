// The TLS policy on OpenSSL (protocol floor, cipher list, no compression or renegotiation),
// identities loaded without passphrase prompts, certificate summaries and error text.
#include "platform/http/tls.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <stdexcept>

namespace ordo::platform::tls {
namespace {

// TLS 1.2 suites with forward secrecy and authenticated encryption only (Mozilla's
// "intermediate" list without finite-field DHE). TLS 1.3 suites are all of that kind.
constexpr const char* kServerCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Never ask a terminal for a key's passphrase: a service has none to give, and the prompt
// would hang the process (at start, or worse on a reload).
int no_passphrase(char*, int, int, void*) {
    return 0;
}

}  // namespace

std::string drain_errors(const std::string& fallback) {
    std::string out;
    while (unsigned long code = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? fallback : out;
}

void apply_policy(ssl_ctx_st* ctx, bool server) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        throw std::runtime_error("cannot set the TLS protocol floor: " + drain_errors());
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (server) {
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        if (SSL_CTX_set_cipher_list(ctx, kServerCiphers) != 1) {
            throw std::runtime_error("cannot set the TLS cipher list: " + drain_errors());
        }
    }
}

void load_identity(ssl_ctx_st* ctx, const std::string& chain_file, const std::string& key_file) {
    ERR_clear_error();
    SSL_CTX_set_default_passwd_cb(ctx, &no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, chain_file.c_str()) != 1) {
        throw std::runtime_error("cannot load the TLS certificate chain " + chain_file + ": " +
                                 drain_errors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw std::runtime_error("cannot load the TLS private key " + key_file + ": " +
                                 drain_errors());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        throw std::runtime_error("the TLS private key " + key_file +
                                 " does not belong to the certificate " + chain_file + ": " +
                                 drain_errors());
    }
}

CertificateSummary summary(ssl_ctx_st* ctx) {
    CertificateSummary out;
    X509* cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) return out;
    char subject[512] = {};
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject - 1);
    out.subject = subject;
    std::unique_ptr<BIGNUM, decltype(&BN_free)> serial{
        ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr), &BN_free};
    if (serial) {
        std::unique_ptr<char, void (*)(char*)> hex{BN_bn2hex(serial.get()),
                                                   [](char* p) { OPENSSL_free(p); }};
        if (hex) out.serial = hex.get();
    }
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
        out.not_after = std::chrono::system_clock::from_time_t(timegm(&tm));
    }
    return out;
}

}  // namespace ordo::platform::tls
