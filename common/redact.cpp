#include "common/redact.h"

#include <array>
#include <cctype>

namespace td {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool mentionsSecret(const std::string& name) {
  static constexpr std::array<std::string_view, 8> kWords = {"password",
                                                             "secret",
                                                             "token",
                                                             "jaas",
                                                             "credential",
                                                             "private",
                                                             "oauthbearer.config",
                                                             "oauthbearer.extensions"};
  for (auto word : kWords) {
    if (name.find(word) != std::string::npos) return true;
  }
  return name.starts_with("ssl.key.") || name == "ssl_key";
}

}  // namespace

bool isSecretName(std::string_view name) {
  const std::string n = lower(name);
  if (n.ends_with(".location") || n.ends_with(".url")) return false;
  return mentionsSecret(n);
}

std::string redactValue(std::string_view name, std::string_view value) {
  return isSecretName(name) ? std::string(kRedacted) : std::string(value);
}

std::string redactKeyValue(std::string_view key_value) {
  const auto eq = key_value.find('=');
  if (eq == std::string_view::npos) {
    return mentionsSecret(lower(key_value)) ? std::string(kRedacted) : std::string(key_value);
  }
  const auto key = key_value.substr(0, eq);
  return std::string(key) + "=" + redactValue(key, key_value.substr(eq + 1));
}

}  // namespace td
