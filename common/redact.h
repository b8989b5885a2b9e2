// Which configuration values are secrets, and how they are shown instead: one rule for every
// log line, error message and `--print-config` output that could carry a librdkafka property.
//
// The rule (docs/configuration.md, "Secrets"): a property or option name is secret when,
// compared case-insensitively, it contains `password`, `secret`, `token`, `jaas`,
// `credential`, `private`, `oauthbearer.config` or `oauthbearer.extensions`, or it starts with
// `ssl.key.` or is `ssl_key`; except names ending in `.location` or `.url`, which hold file paths
// and addresses (`ssl.key.location`, `sasl.oauthbearer.token.endpoint.url`) and are shown.
// The rule errs towards hiding: an unknown property that merely mentions "token" is hidden too.
#pragma once

#include <string>
#include <string_view>

namespace td {

// What a secret value is replaced with.
inline constexpr std::string_view kRedacted = "[redacted]";

// True if a value stored under `name` (a librdkafka property or a long option name) is a secret.
bool isSecretName(std::string_view name);

// `value`, or kRedacted when `name` is secret.
std::string redactValue(std::string_view name, std::string_view value);

// "key=value" with the value redacted when `key` is secret. An entry with no '=' is returned
// whole unless it mentions a secret name anywhere (then "[redacted]"), since a mistyped
// separator ("sasl.password:hunter2") must not echo the secret either.
std::string redactKeyValue(std::string_view key_value);

}  // namespace td
