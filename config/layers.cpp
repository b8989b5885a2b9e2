#include "config/layers.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/json.h"
#include "common/redact.h"
#include "config/bounds.h"

extern char** environ;

namespace td::config {

namespace {

// Thrown inside this file only; parse() turns it into a message and exit code 2.
struct LayerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr std::string_view kKafkaKey = "kafka";
constexpr std::string_view kKafkaEnvPrefix = "TD_KAFKA_";

std::string upperSnake(std::string_view s) {
  std::string out;
  for (char c : s) {
    out +=
        c == '-' || c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string longName(const CLI::Option* option) {
  return option->get_lnames().empty() ? std::string() : option->get_lnames().front();
}

bool isFlag(const CLI::Option* option) { return option->get_expected_min() == 0; }

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// A YAML scalar that reads back as exactly `s`: plain when that is unambiguous, else quoted.
std::string yamlScalar(std::string_view s) {
  auto plain_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' ||
           c == '-' || c == '+' || c == ':' || c == '=' || c == '@';
  };
  bool plain = !s.empty() && std::all_of(s.begin(), s.end(), plain_char) &&
               (std::isalnum(static_cast<unsigned char>(s.front())) || s.front() == '_' ||
                s.front() == '.' || s.front() == '/') &&
               s.back() != ':';
  // A JSON string is a valid YAML double-quoted scalar.
  return plain ? std::string(s) : td::jsonQuoted(s);
}

std::string at(const std::string& path, const YAML::Mark& mark) {
  return path + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// "key=value" -> (key, value); nullopt without '=' or with an empty key.
std::optional<std::pair<std::string, std::string>> splitProperty(const std::string& entry) {
  const auto eq = entry.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::make_pair(entry.substr(0, eq), entry.substr(eq + 1));
}

}  // namespace

Environment processEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::string describe(const Origin& origin) {
  switch (origin.source) {
    case Source::kDefault:
      return "default";
    case Source::kFile:
      return "file " + origin.where;
    case Source::kEnvironment:
      return "env " + origin.where;
    case Source::kFlag:
      return "flag " + origin.where;
  }
  return "";
}

namespace {
// A value as --print-config shows it: hidden when its option is secret, and a KEY=VALUE entry
// (--admin-property sasl.password=..., --assign-topic-config ...) with its value hidden when
// KEY is.
std::string redactEntry(std::string_view option, std::string_view value) {
  if (isSecretName(option)) return std::string(kRedacted);
  return value.find('=') == std::string_view::npos ? std::string(value) : redactKeyValue(value);
}
}  // namespace

std::string envName(std::string_view long_name) { return "TD_" + upperSnake(long_name); }

std::string kafkaEnvName(std::string_view property) {
  return std::string(kKafkaEnvPrefix) + upperSnake(property);
}

Layers::Layers(CLI::App& app, std::string program) : app_(app), program_(std::move(program)) {
  kafka_option_ = app_.get_option_no_throw("-X");
  config_option_ = app_.add_option("--config", config_path_,
                                   "YAML configuration file (or TD_CONFIG); flags override "
                                   "TD_* environment variables, which override the file")
                       ->configurable(false);
  print_option_ = app_.add_flag("--print-config", print_config_,
                                "print the effective configuration and where each value came "
                                "from (secrets redacted), then exit")
                      ->configurable(false);
}

bool Layers::isLayered(const CLI::Option* option) const {
  return option != config_option_ && option != print_option_ && option != kafka_option_ &&
         option->get_configurable() && !longName(option).empty() && option != app_.get_help_ptr() &&
         option != app_.get_help_all_ptr();
}

CLI::Option* Layers::findOption(std::string_view name) const {
  std::string normalized(name);
  std::replace(normalized.begin(), normalized.end(), '_', '-');
  for (CLI::Option* option : app_.get_options()) {
    if (isLayered(option) && longName(option) == normalized) return option;
  }
  return nullptr;
}

std::string Layers::allowedKeys() const {
  std::string out;
  for (const CLI::Option* option : app_.get_options()) {
    if (!isLayered(option)) continue;
    out += (out.empty() ? "" : ", ") + longName(option);
  }
  if (kafka_option_ != nullptr) out += ", kafka";
  return out;
}

std::optional<int> Layers::parse(int argc, const char* const* argv, const Environment& env,
                                 std::ostream& out, std::ostream& err) {
  // Required options may come from any layer, so CLI11 must not insist on a flag; they are
  // checked once every layer is in.
  for (CLI::Option* option : app_.get_options()) {
    if (!isLayered(option)) continue;
    if (option->get_required()) {
      required_.push_back(option);
      option->required(false);
      option->description(option->get_description() + " (required)");
    }
    if (option->get_default_str().empty()) option->capture_default_str();
  }
  try {
    app_.parse(argc, argv);
  } catch (const CLI::ValidationError& e) {
    // One line: "--join-timeout -5: must be between 1 and 86400 (1 s to 24 h)".
    std::string what = e.what();
    if (const auto colon = what.find(": "); what.starts_with("--") &&
                                            what.find(kBoundsError) != std::string::npos &&
                                            colon != std::string::npos) {
      what.replace(colon, 2, " ");
    }
    err << program_ << ": " << what << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    return app_.exit(e, out, err) == 0 ? 0 : 2;
  }
  for (CLI::Option* option : app_.get_options()) {
    if (option->count() > 0 && isLayered(option)) {
      origins_[option] = {Source::kFlag, "--" + longName(option)};
    }
  }
  try {
    std::string path = config_path_;
    if (config_option_->count() > 0) {
      config_origin_ = Origin{Source::kFlag, "--config"};
    } else {
      for (const auto& [name, value] : env) {
        if (name == "TD_CONFIG" && !value.empty()) {
          path = value;
          config_origin_ = Origin{Source::kEnvironment, "TD_CONFIG"};
        }
      }
    }
    config_path_ = path;
    if (kafka_option_ != nullptr) {
      for (const auto& entry : kafka_option_->results()) {
        auto property = splitProperty(entry);
        if (!property) {
          throw LayerError("-X '" + redactKeyValue(entry) + "': expected key=value");
        }
        kafka_[property->first] = {property->second, Origin{Source::kFlag, "-X"}};
      }
    }
    applyEnvironment(env);
    if (!config_path_.empty()) {
      loadFile(config_path_);
      warnIfExposed(err);
    }
    mergeKafka();
  } catch (const LayerError& e) {
    err << program_ << ": " << e.what() << "\n";
    return 2;
  }
  std::string missing;
  for (const CLI::Option* option : required_) {
    if (option->count() > 0) continue;
    const std::string name = longName(option);
    missing += program_ + ": missing --" + name + " (flag, " + envName(name) +
               " in the environment, or '" + name + ":' in the config file)\n";
  }
  if (print_config_) out << printConfig();
  if (!missing.empty()) {
    err << missing;
    return 2;
  }
  for (const auto& check : checks_) {
    if (auto status = check(); !status) {
      err << program_ << ": " << status.error().message() << "\n";
      return 2;
    }
  }
  if (print_config_) return 0;
  return std::nullopt;
}

void Layers::apply(CLI::Option* option, const std::string& name, const Value& value) {
  // An option excluded by one set in a higher layer yields to it ("--repo-state" on the command
  // line beats "repository:" in the file); two that exclude each other in one layer are an error.
  for (const CLI::Option* other : option->get_excludes()) {
    if (other->count() == 0) continue;
    const auto it = origins_.find(other);
    const Source other_source = it == origins_.end() ? Source::kFlag : it->second.source;
    if (other_source > value.origin.source) return;
    throw LayerError(value.error_at + ": " + name + " excludes " + longName(other) + " (" +
                     describe(it->second) + ")");
  }
  try {
    if (isFlag(option)) {
      if (value.values.size() != 1)
        throw LayerError(value.error_at + ": " + name + " takes true or false");
      option->add_result(option->get_flag_value(longName(option), value.values.front()));
    } else {
      if (value.values.size() > 1 && option->get_items_expected_max() <= 1) {
        throw LayerError(value.error_at + ": " + name + " takes one value, not a list");
      }
      option->add_result(value.values);
    }
    option->run_callback();
  } catch (const CLI::Error& e) {
    // CLI11's messages name the flag ("--lease-ms: ..."); a secret's value must not be echoed.
    std::string what = isSecretName(name) ? "invalid value" : e.what();
    if (const auto bounds = what.find(kBoundsError); bounds != std::string::npos &&
                                                     !isSecretName(name)) {
      // "TD_LEASE_MS=10: must be between ..." or "FILE:3:11: lease-ms 10: must be between ...".
      const auto colon = what.find(": ");
      const std::string rest = colon == std::string::npos ? what : what.substr(colon + 2);
      throw LayerError(value.origin.source == Source::kEnvironment
                           ? value.error_at + "=" + rest
                           : value.error_at + ": " + name + " " + rest);
    }
    if (!what.starts_with("--")) what = name + ": " + what;
    throw LayerError(value.error_at + ": " + what);
  }
  origins_[option] = value.origin;
}

void Layers::applyEnvironment(const Environment& env) {
  std::map<std::string, std::string, std::less<>> vars;
  for (const auto& [name, value] : env) {
    if (name.starts_with("TD_") && !value.empty()) vars[name] = value;
  }
  for (CLI::Option* option : app_.get_options()) {
    if (!isLayered(option) || option->count() > 0) continue;
    const std::string name = longName(option);
    const std::string var = envName(name);
    const auto it = vars.find(var);
    if (it == vars.end()) continue;
    if (isSecretName(name)) secret_env_.push_back(var);
    std::vector<std::string> values = option->get_items_expected_max() > 1
                                          ? splitList(it->second)
                                          : std::vector<std::string>{it->second};
    apply(option, name, Value{std::move(values), Origin{Source::kEnvironment, var}, var});
  }
  if (kafka_option_ == nullptr) return;
  for (const auto& [var, value] : vars) {
    if (!var.starts_with(kKafkaEnvPrefix) || var.size() == kKafkaEnvPrefix.size()) continue;
    std::string property;
    for (char c : std::string_view(var).substr(kKafkaEnvPrefix.size())) {
      property += c == '_' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (isSecretName(property)) secret_env_.push_back(var);
    if (kafka_.contains(property)) continue;  // a flag set it
    kafka_[property] = {value, Origin{Source::kEnvironment, var}};
  }
}

void Layers::loadFile(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw LayerError(path + ": cannot read the config file" +
                     (config_origin_ ? " (from " + config_origin_->where + ")" : std::string()));
  } catch (const YAML::ParserException& e) {
    throw LayerError(at(path, e.mark) + ": YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    throw LayerError(path + ": " + e.what());
  }
  if (root.IsNull()) return;  // an empty file configures nothing
  if (!root.IsMap()) {
    throw LayerError(at(path, root.Mark()) + ": expected a map of option: value");
  }
  auto scalarValues = [&](const std::string& key, const YAML::Node& node) {
    std::vector<std::string> values;
    if (node.IsScalar()) {
      values.push_back(node.Scalar());
    } else if (node.IsSequence()) {
      for (const auto& item : node) {
        if (!item.IsScalar())
          throw LayerError(at(path, item.Mark()) + ": " + key + ": expected a plain value");
        values.push_back(item.Scalar());
      }
    } else if (node.IsNull()) {
      throw LayerError(at(path, node.Mark()) + ": " + key + " has no value");
    } else {
      throw LayerError(at(path, node.Mark()) + ": " + key + ": expected a value or a list");
    }
    return values;
  };
  std::map<std::string, int, std::less<>> seen;
  for (const auto& entry : root) {
    const YAML::Node& key_node = entry.first;
    const YAML::Node& value_node = entry.second;
    if (!key_node.IsScalar()) throw LayerError(at(path, key_node.Mark()) + ": expected a key");
    const std::string key = key_node.Scalar();
    if (auto [it, fresh] = seen.emplace(key, key_node.Mark().line + 1); !fresh) {
      throw LayerError(at(path, key_node.Mark()) + ": duplicate key '" + key + "' (first on line " +
                       std::to_string(it->second) + ")");
    }
    const std::string where = path + ":" + std::to_string(key_node.Mark().line + 1);
    if (key == kKafkaKey && kafka_option_ != nullptr) {
      if (value_node.IsNull()) continue;
      if (!value_node.IsMap()) {
        throw LayerError(at(path, value_node.Mark()) +
                         ": kafka: expected a map of librdkafka property: value");
      }
      std::map<std::string, int, std::less<>> seen_properties;
      for (const auto& property : value_node) {
        if (!property.first.IsScalar() || !property.second.IsScalar()) {
          throw LayerError(at(path, property.first.Mark()) +
                           ": kafka: expected property: value (a plain value)");
        }
        const std::string name = property.first.Scalar();
        const int line = property.first.Mark().line + 1;
        if (auto [it, fresh] = seen_properties.emplace(name, line); !fresh) {
          throw LayerError(at(path, property.first.Mark()) + ": kafka: duplicate property '" +
                           name + "' (first on line " + std::to_string(it->second) + ")");
        }
        if (isSecretName(name)) file_secrets_.push_back(name);
        if (kafka_.contains(name)) continue;  // a flag or the environment set it
        kafka_[name] = {
            property.second.Scalar(),
            Origin{Source::kFile, path + ":" + std::to_string(property.first.Mark().line + 1)}};
      }
      continue;
    }
    CLI::Option* option = findOption(key);
    if (option == nullptr) {
      throw LayerError(at(path, key_node.Mark()) + ": unknown key '" + key +
                       "' (allowed: " + allowedKeys() + ")");
    }
    auto values = scalarValues(key, value_node);
    if (isSecretName(key)) file_secrets_.push_back(key);
    if (option->count() > 0) continue;  // a flag or the environment set it
    apply(option, key,
          Value{std::move(values), Origin{Source::kFile, where}, at(path, value_node.Mark())});
  }
}

void Layers::warnIfExposed(std::ostream& err) const {
  struct stat st {};
  if (file_secrets_.empty() || ::stat(config_path_.c_str(), &st) != 0) return;
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  err << program_ << ": warning: " << config_path_ << " holds secrets (" << file_secrets_.front()
      << (file_secrets_.size() > 1 ? ", ..." : "") << ") and is accessible to other users (mode "
      << mode << "); chmod 600 it, or pass secrets as TD_KAFKA_* variables\n";
}

void Layers::mergeKafka() {
  if (kafka_option_ == nullptr) return;
  std::vector<std::string> merged;
  for (const auto& [key, entry] : kafka_) merged.push_back(key + "=" + entry.first);
  kafka_option_->clear();
  if (merged.empty()) return;
  kafka_option_->add_result(merged);
  kafka_option_->run_callback();
}

Origin Layers::origin(std::string_view long_name) const {
  for (const auto& [option, origin] : origins_) {
    if (longName(option) == long_name) return origin;
  }
  return {};
}

std::optional<Origin> Layers::kafkaOrigin(std::string_view property) const {
  const auto it = kafka_.find(property);
  if (it == kafka_.end()) return std::nullopt;
  return it->second.second;
}

std::string Layers::printConfig() const {
  std::ostringstream out;
  out << "# " << program_ << " configuration: effective values and where each came from\n"
      << "# (precedence: flag > environment > file > default; secrets shown as " << kRedacted
      << ")\n";
  if (!config_path_.empty()) {
    out << "# config file: " << config_path_ << " (" << describe(*config_origin_) << ")\n";
  }
  for (const CLI::Option* option : app_.get_options()) {
    if (!isLayered(option)) continue;
    const std::string name = longName(option);
    const auto it = origins_.find(option);
    const Origin origin = it == origins_.end() ? Origin{} : it->second;
    std::string value;
    if (isFlag(option)) {
      // Shown as the flag itself: "no-step-stats: true" when --no-step-stats is in effect.
      bool on = false;
      if (option->count() > 0) {
        const bool negated = option->get_flag_value(name, "true") == "false";
        const std::string& result = option->results().back();
        const bool stored =
            result == "true" || (result != "false" && result != "0" && result.front() != '-');
        on = negated ? !stored : stored;
      }
      value = on ? "true" : "false";
    } else if (option->count() > 0) {
      const auto& results = option->results();
      if (option->get_items_expected_max() > 1) {
        value = "[";
        for (std::size_t i = 0; i < results.size(); ++i) {
          value += (i == 0 ? "" : ", ") + yamlScalar(redactEntry(name, results[i]));
        }
        value += "]";
      } else {
        value = yamlScalar(redactEntry(name, results.back()));
      }
    } else if (!option->get_default_str().empty() && option->get_default_str() != "[]") {
      value = yamlScalar(redactValue(name, option->get_default_str()));
    } else {
      out << "# " << name << ": (not set)\n";
      continue;
    }
    out << name << ": " << value << "  # " << describe(origin) << "\n";
  }
  if (kafka_option_ != nullptr) {
    if (kafka_.empty()) {
      out << "# kafka: (no librdkafka properties set)\n";
    } else {
      out << "kafka:\n";
      for (const auto& [key, entry] : kafka_) {
        out << "  " << yamlScalar(key) << ": " << yamlScalar(redactValue(key, entry.first))
            << "  # " << describe(entry.second) << "\n";
      }
    }
  }
  return out.str();
}

}  // namespace td::config
