#include "schema/schema.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <sstream>
#include <utility>

#include "common/hash.h"

namespace td::schema {

namespace {

class SchemaCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "schema"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kIo:
        return "cannot read schema";
      case Errc::kSyntax:
        return "YAML syntax error";
      case Errc::kUnknownKey:
        return "unknown key";
      case Errc::kDuplicateId:
        return "duplicate step id";
      case Errc::kMissingField:
        return "missing field";
      case Errc::kBadValue:
        return "bad value";
      case Errc::kEmpty:
        return "empty schema";
      case Errc::kBadReference:
        return "bad step reference";
    }
    return "unknown schema error";
  }
};

constexpr std::size_t kMaxFileBytes = 16u << 20;
constexpr std::string_view kTaskPlaceholder = "{task}";

constexpr std::string_view kTopKeys[] = {"name",  "description", "defaults", "steps",
                                         "tasks", "command",     "universe"};
constexpr std::string_view kDefaultsKeys[] = {"timeout",  "max_attempts",        "backoff",
                                              "retry_on", "count_lost_attempts", "max_lost_attempts",
                                              "speculative"};
constexpr std::string_view kStepKeys[] = {"id",         "run",         "timeout",
                                          "max_attempts", "depends_on", "description",
                                          "backoff",    "retry_on",    "count_lost_attempts",
                                          "max_lost_attempts", "speculative"};
constexpr std::string_view kBackoffKeys[] = {"initial", "multiplier", "max", "jitter"};
constexpr std::string_view kTaskKeys[] = {"task"};

std::string join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view w : words) {
    if (!out.empty()) out += ", ";
    out += w;
  }
  return out;
}

std::string quote(std::string_view text) {
  // Error messages quote user text; cap it so a huge or binary value cannot flood a log line.
  constexpr std::size_t kMaxQuoted = 80;
  std::string out = "'";
  for (char c : text.substr(0, kMaxQuoted)) {
    if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (text.size() > kMaxQuoted) out += "...";
  return out + "'";
}

std::string typeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool isIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("._:/@+-").find(c) != std::string_view::npos;
}

bool isBlank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// One `key: value` entry of a YAML map, with the key already checked to be a string.
struct Field {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// The entries of one YAML map, in file order, with unknown and repeated keys rejected.
class Fields {
 public:
  explicit Fields(std::vector<Field> fields) : fields_(std::move(fields)) {}
  const Field* get(std::string_view key) const {
    for (const Field& f : fields_) {
      if (f.key == key) return &f;
    }
    return nullptr;
  }

 private:
  std::vector<Field> fields_;
};

// Records where each YAML document starts and ignores everything else.
class DocumentStarts final : public YAML::EventHandler {
 public:
  explicit DocumentStarts(std::vector<YAML::Mark>& starts) : starts_(starts) {}
  void OnDocumentStart(const YAML::Mark& mark) override { starts_.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  std::vector<YAML::Mark>& starts_;
};

// Parses one document into a Schema. Owns no YAML state beyond the call; every failure is
// returned as an Error whose context starts with the source name and, when known, the position.
class Parser {
 public:
  Parser(std::string_view source, const ParseOptions& options)
      : source_(source), options_(options) {}

  Result<Schema> parseText(std::string_view text) const {
    // yaml-cpp reports problems by throwing; this is the boundary where they become values.
    try {
      return parseDocuments(text);
    } catch (const YAML::ParserException& e) {
      return fail(Errc::kSyntax, e.mark, "YAML syntax error: " + e.msg);
    } catch (const YAML::Exception& e) {
      return fail(Errc::kBadValue, e.mark, "cannot read YAML value: " + e.msg);
    } catch (const std::exception& e) {
      return fail(Errc::kBadValue, YAML::Mark::null_mark(),
                  std::string("cannot read schema: ") + e.what());
    }
  }

 private:
  struct Defaults {
    std::chrono::milliseconds timeout = kDefaultTimeout;
    std::uint32_t max_attempts = kDefaultMaxAttempts;
    RetryPolicy retry;
    bool speculative = true;
  };
  // Where each step's id and depends_on entries were written, for reference errors.
  struct StepMarks {
    YAML::Mark id;
    std::vector<YAML::Mark> depends_on;
  };

  td::Unexpected<Error> fail(Errc code, const YAML::Mark& mark, std::string_view message) const {
    std::string context = source_;
    if (!mark.is_null() && mark.line >= 0 && mark.column >= 0) {
      context += ':' + std::to_string(mark.line + 1) + ':' + std::to_string(mark.column + 1);
    }
    context += ": ";
    context += message;
    return makeError(code, std::move(context));
  }

  // A null value's mark points at the next token, not at the gap; blame the key instead.
  static YAML::Mark valueMark(const Field& f) {
    return f.value.IsNull() ? f.key_node.Mark() : f.value.Mark();
  }

  Result<Schema> parseDocuments(std::string_view text) const {
    const std::string owned(text);
    // YAML::LoadAll is not used: in yaml-cpp 0.7 a stray token such as a leading ',' makes it
    // emit empty documents forever, allocating until the process dies (jbeder/yaml-cpp#1319).
    // Instead count at most two documents with a bounded event pass, then Load the first.
    std::vector<YAML::Mark> starts;
    {
      std::istringstream in(owned);
      YAML::Parser parser(in);
      DocumentStarts handler(starts);
      while (starts.size() < 2 && parser.HandleNextDocument(handler)) {
      }
    }
    if (starts.empty()) {
      return fail(Errc::kEmpty, YAML::Mark::null_mark(), "schema is empty (no YAML document)");
    }
    if (starts.size() > 1) {
      // A document that starts where the previous one did consumed nothing: a stray token.
      if (starts[1].pos == starts[0].pos) {
        return fail(Errc::kSyntax, starts[1], "YAML syntax error: unexpected token");
      }
      return fail(Errc::kSyntax, starts[1],
                  "expected one YAML document, found more (a '---' or a stray token here)");
    }
    const YAML::Node root = YAML::Load(owned);
    if (root.IsNull()) {
      return fail(Errc::kEmpty, YAML::Mark::null_mark(), "schema is empty (the document is null)");
    }
    if (!root.IsMap()) {
      return fail(Errc::kBadValue, root.Mark(),
                  "the top level must be a map with 'name' and 'steps', got " + typeName(root));
    }
    return parseRoot(root);
  }

  Result<Fields> readMap(const YAML::Node& map, std::string_view what,
                         std::span<const std::string_view> allowed) const {
    std::vector<Field> fields;
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        return fail(Errc::kBadValue, key.Mark(),
                    "keys in " + std::string(what) + " must be strings, got " + typeName(key));
      }
      const std::string& name = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        return fail(Errc::kUnknownKey, key.Mark(),
                    "unknown key " + quote(name) + " in " + std::string(what) +
                        "; allowed keys: " + join(allowed));
      }
      for (const Field& earlier : fields) {
        if (earlier.key == name) {
          return fail(Errc::kSyntax, key.Mark(),
                      "key " + quote(name) + " repeated in " + std::string(what) +
                          " (first at line " + std::to_string(earlier.key_node.Mark().line + 1) +
                          ")");
        }
      }
      fields.push_back(Field{name, key, entry.second});
    }
    return Fields(std::move(fields));
  }

  Result<std::string> readString(const Field& f) const {
    if (!f.value.IsScalar()) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " must be a non-empty string, got " + typeName(f.value));
    }
    if (isBlank(f.value.Scalar())) {
      return fail(Errc::kBadValue, valueMark(f), quote(f.key) + " must not be empty");
    }
    return f.value.Scalar();
  }

  // Names and ids: [A-Za-z0-9._:/@+-]{1,128}.
  Result<std::string> readIdentifier(const Field& f) const {
    auto text = readString(f);
    if (!text) return text;
    if (text->size() > kMaxIdLength) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " is longer than " + std::to_string(kMaxIdLength) +
                      " characters: " + quote(*text));
    }
    if (!std::all_of(text->begin(), text->end(), isIdChar)) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " " + quote(*text) + " has characters outside [A-Za-z0-9._:/@+-]");
    }
    return text;
  }

  Result<std::chrono::milliseconds> readDuration(const Field& f) const {
    if (!f.value.IsScalar()) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " must be a duration like 30m, got " + typeName(f.value));
    }
    auto duration = parseDuration(f.value.Scalar());
    if (!duration) {
      return fail(Errc::kBadValue, valueMark(f), quote(f.key) + ": " + duration.error().context());
    }
    return duration;
  }

  Result<std::uint32_t> readAttempts(const Field& f) const {
    const std::string range = "an integer in [1, " + std::to_string(kMaxAttemptsLimit) + "]";
    if (!f.value.IsScalar()) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " must be " + range + ", got " + typeName(f.value));
    }
    const std::string& text = f.value.Scalar();
    const bool digits =
        !text.empty() && text.size() <= 9 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    const unsigned long value = digits ? std::stoul(text) : 0;
    if (!digits || value < 1 || value > kMaxAttemptsLimit) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " must be " + range + ", got " + quote(text));
    }
    return static_cast<std::uint32_t>(value);
  }

  Result<Defaults> readDefaults(const Field* f) const {
    Defaults defaults;
    if (f == nullptr || f->value.IsNull()) return defaults;
    if (!f->value.IsMap()) {
      return fail(Errc::kBadValue, valueMark(*f),
                  "'defaults' must be a map like {timeout: 30m, max_attempts: 3}, got " +
                      typeName(f->value));
    }
    auto fields = readMap(f->value, "defaults", kDefaultsKeys);
    if (!fields) return td::unexpected(fields.error());
    if (const Field* t = fields->get("timeout")) {
      auto timeout = readDuration(*t);
      if (!timeout) return td::unexpected(timeout.error());
      defaults.timeout = *timeout;
    }
    if (const Field* a = fields->get("max_attempts")) {
      auto attempts = readAttempts(*a);
      if (!attempts) return td::unexpected(attempts.error());
      defaults.max_attempts = *attempts;
    }
    TD_RETURN_IF_ERROR(readRetry(*fields, defaults.retry));
    if (const Field* f = fields->get("speculative")) {
      auto v = readBool(*f);
      if (!v) return td::unexpected(v.error());
      defaults.speculative = *v;
    }
    return defaults;
  }

  // A duration that may also be zero ("0", "0s", "0ms"): backoff waits.
  Result<std::chrono::milliseconds> readWait(const Field& f) const {
    if (f.value.IsScalar()) {
      const std::string& text = f.value.Scalar();
      if (text == "0" || text == "0s" || text == "0ms") return std::chrono::milliseconds(0);
    }
    return readDuration(f);
  }

  Result<double> readNumber(const Field& f, double low, double high) const {
    const std::string range = "a number in [" + fmtNumber(low) + ", " + fmtNumber(high) + "]";
    if (!f.value.IsScalar()) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " must be " + range + ", got " + typeName(f.value));
    }
    const std::string& text = f.value.Scalar();
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(value >= low && value <= high)) {
      return fail(Errc::kBadValue, valueMark(f),
                  quote(f.key) + " must be " + range + ", got " + quote(text));
    }
    return value;
  }

  static std::string fmtNumber(double v) {
    std::string out = std::to_string(v);
    out.erase(out.find_last_not_of('0') + 1);
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
  }

  Result<bool> readBool(const Field& f) const {
    if (f.value.IsScalar() && (f.value.Scalar() == "true" || f.value.Scalar() == "false")) {
      return f.value.Scalar() == "true";
    }
    return fail(Errc::kBadValue, valueMark(f), quote(f.key) + " must be true or false");
  }

  // backoff, retry_on, count_lost_attempts, max_lost_attempts of `fields` over `retry`.
  Status readRetry(const Fields& fields, RetryPolicy& retry) const {
    if (const Field* b = fields.get("backoff")) {
      if (!b->value.IsMap()) {
        return fail(Errc::kBadValue, valueMark(*b),
                    "'backoff' must be a map like {initial: 1s, multiplier: 2, max: 1m, "
                    "jitter: 0.2}, got " + typeName(b->value));
      }
      auto backoff = readMap(b->value, "backoff", kBackoffKeys);
      if (!backoff) return td::unexpected(backoff.error());
      if (const Field* f = backoff->get("initial")) {
        auto v = readWait(*f);
        if (!v) return td::unexpected(v.error());
        retry.backoff_initial = *v;
      }
      if (const Field* f = backoff->get("multiplier")) {
        auto v = readNumber(*f, 1, 100);
        if (!v) return td::unexpected(v.error());
        retry.backoff_multiplier = *v;
      }
      if (const Field* f = backoff->get("max")) {
        auto v = readWait(*f);
        if (!v) return td::unexpected(v.error());
        retry.backoff_max = *v;
      }
      if (const Field* f = backoff->get("jitter")) {
        auto v = readNumber(*f, 0, 1);
        if (!v) return td::unexpected(v.error());
        retry.backoff_jitter = *v;
      }
      if (retry.backoff_max < retry.backoff_initial) {
        return fail(Errc::kBadValue, valueMark(*b),
                    "'backoff': 'max' must not be shorter than 'initial'");
      }
    }
    if (const Field* r = fields.get("retry_on")) {
      if (!r->value.IsSequence()) {
        return fail(Errc::kBadValue, valueMark(*r),
                    "'retry_on' must be a list of exit, timeout, lost or exit codes, got " +
                        typeName(r->value));
      }
      RetryPolicy parsed = retry;
      parsed.retry_on_any_exit = parsed.retry_on_timeout = parsed.retry_on_lost = false;
      parsed.retry_on_exit_codes.clear();
      for (const YAML::Node& item : r->value) {
        const std::string text = item.IsScalar() ? item.Scalar() : std::string();
        const bool digits = !text.empty() && text.size() <= 3 &&
                            std::all_of(text.begin(), text.end(),
                                        [](char c) { return c >= '0' && c <= '9'; });
        if (text == "exit") {
          parsed.retry_on_any_exit = true;
        } else if (text == "timeout") {
          parsed.retry_on_timeout = true;
        } else if (text == "lost") {
          parsed.retry_on_lost = true;
        } else if (digits && std::stoi(text) >= 1 && std::stoi(text) <= 255) {
          parsed.retry_on_exit_codes.push_back(std::stoi(text));
        } else {
          return fail(Errc::kBadValue, item.IsNull() ? r->key_node.Mark() : item.Mark(),
                      "'retry_on' entries are exit, timeout, lost or an exit code 1..255, got " +
                          quote(text.empty() ? typeName(item) : text));
        }
      }
      if (parsed.retry_on_any_exit && !parsed.retry_on_exit_codes.empty()) {
        return fail(Errc::kBadValue, valueMark(*r),
                    "'retry_on' has both 'exit' (any exit code) and specific exit codes");
      }
      std::sort(parsed.retry_on_exit_codes.begin(), parsed.retry_on_exit_codes.end());
      retry = parsed;
    }
    if (const Field* c = fields.get("count_lost_attempts")) {
      auto v = readBool(*c);
      if (!v) return td::unexpected(v.error());
      retry.count_lost_attempts = *v;
    }
    if (const Field* m = fields.get("max_lost_attempts")) {
      auto v = readAttempts(*m);
      if (!v) return td::unexpected(v.error());
      retry.max_lost_attempts = *v;
    }
    return {};
  }

  // The targets form with nothing else: the top level maps step ids to targets, every value
  // a string and no key one of the other forms' ("1": "//app/common/...").
  static bool isBareTargetMap(const YAML::Node& root) {
    if (!root.IsMap() || root.size() == 0) return false;
    for (const auto& entry : root) {
      if (!entry.first.IsScalar() || !entry.second.IsScalar()) return false;
      const std::string& key = entry.first.Scalar();
      if (std::find(std::begin(kTopKeys), std::end(kTopKeys), key) != std::end(kTopKeys)) {
        return false;
      }
    }
    return true;
  }

  // The schema's name: its 'name', else (targets form only) ParseOptions::default_name.
  Result<std::string> schemaName(const Field* name, bool targets, const YAML::Node& root) const {
    if (name != nullptr) return readIdentifier(*name);
    if (!targets) return fail(Errc::kMissingField, root.Mark(), "missing required key 'name'");
    const std::string& fallback = options_.default_name;
    if (fallback.empty()) {
      return fail(Errc::kMissingField, root.Mark(),
                  "missing 'name': a targets schema not read from a file needs one");
    }
    if (fallback.size() > kMaxIdLength || !std::all_of(fallback.begin(), fallback.end(), isIdChar)) {
      return fail(Errc::kBadValue, root.Mark(),
                  "the file name " + quote(fallback) +
                      " cannot be the schema's name (at most 128 of [A-Za-z0-9._:/@+-]); add "
                      "'name:'");
    }
    return fallback;
  }

  Result<Schema> parseRoot(const YAML::Node& root) const {
    Schema schema;
    schema.source = source_;
    if (isBareTargetMap(root)) {
      auto name = schemaName(nullptr, /*targets=*/true, root);
      if (!name) return td::unexpected(name.error());
      schema.name = std::move(*name);
      const Field all{"the top level", YAML::Node(), root};
      TD_RETURN_IF_ERROR(parseTargets(all, nullptr, Defaults{}, schema));
      schema.rebuildIndex();
      schema.digest = td::sha256Hex(canonicalForm(schema));
      return schema;
    }
    auto fields = readMap(root, "the top level", kTopKeys);
    if (!fields) return td::unexpected(fields.error());

    const Field* name = fields->get("name");
    const Field* steps_field = fields->get("steps");
    // A map under 'steps:' is a targets form, unless it is one native step written without
    // its list ("steps: {id: a, run: x}"), which gets the native form's error.
    const bool targets = steps_field != nullptr && steps_field->value.IsMap() &&
                         !steps_field->value["id"] && !steps_field->value["run"];
    auto name_value = schemaName(name, targets, root);
    if (!name_value) return td::unexpected(name_value.error());
    schema.name = std::move(*name_value);

    if (const Field* description = fields->get("description");
        description != nullptr && !description->value.IsNull() && !description->value.IsScalar()) {
      return fail(Errc::kBadValue, valueMark(*description),
                  "'description' must be a string, got " + typeName(description->value));
    }
    auto defaults = readDefaults(fields->get("defaults"));
    if (!defaults) return td::unexpected(defaults.error());

    const Field* steps = fields->get("steps");
    const Field* tasks = fields->get("tasks");
    const Field* command = fields->get("command");
    if (steps != nullptr && tasks != nullptr) {
      const Field* later = steps->key_node.Mark().pos > tasks->key_node.Mark().pos ? steps : tasks;
      return fail(Errc::kBadValue, later->key_node.Mark(),
                  "a schema has either 'steps' or 'tasks', not both");
    }
    if (steps == nullptr && tasks == nullptr) {
      return fail(Errc::kEmpty, root.Mark(), "schema has no steps; add a non-empty 'steps:' list");
    }
    Status body = targets            ? parseTargets(*steps, command, *defaults, schema)
                  : steps != nullptr ? parseSteps(*steps, command, *defaults, schema)
                                     : parseTasks(*tasks, command, *defaults, schema);
    if (!body) return td::unexpected(body.error());
    if (const Field* universe = fields->get("universe")) {
      auto value = readString(*universe);
      if (!value) return td::unexpected(value.error());
      if (steps != nullptr && !targets) {
        schema.universe = std::move(*value);   // native form: a command
      } else {
        // The tasks and targets forms: a target, through the same template as the steps.
        auto command_template = taskTemplate(command, root);
        if (!command_template) return td::unexpected(command_template.error());
        schema.universe = substitute(*command_template, *value);
      }
      schema.universe_timeout = defaults->timeout;
    }

    schema.rebuildIndex();
    schema.digest = td::sha256Hex(canonicalForm(schema));
    return schema;
  }

  // Checks that `list` is a non-empty sequence; `noun` is "steps" or "tasks".
  Status checkList(const Field& list) const {
    if (list.value.IsNull() || (list.value.IsSequence() && list.value.size() == 0)) {
      return fail(Errc::kEmpty, valueMark(list), quote(list.key) + " is empty");
    }
    if (!list.value.IsSequence()) {
      return fail(Errc::kBadValue, valueMark(list),
                  quote(list.key) + " must be a list, got " + typeName(list.value));
    }
    return {};
  }

  // A sequence item that is null has a mark at the following token; blame the list instead.
  static YAML::Mark itemMark(const YAML::Node& item, const Field& list) {
    return item.IsNull() ? list.key_node.Mark() : item.Mark();
  }

  Status parseSteps(const Field& list, const Field* command, const Defaults& defaults,
                    Schema& schema) const {
    if (command != nullptr) {
      return fail(Errc::kBadValue, command->key_node.Mark(),
                  "'command' is a template for the 'tasks' form; with 'steps' give each step "
                  "its own 'run'");
    }
    TD_RETURN_IF_ERROR(checkList(list));
    std::vector<StepMarks> marks;
    std::map<std::string, int, std::less<>> first_line;  // id -> 1-based line of its definition
    std::size_t index = 0;
    for (const YAML::Node& item : list.value) {
      if (!item.IsMap()) {
        return fail(Errc::kBadValue, itemMark(item, list),
                    "steps[" + std::to_string(index) + "] must be a map with 'id' and 'run', got " +
                        typeName(item));
      }
      auto fields = readMap(item, "a step", kStepKeys);
      if (!fields) return td::unexpected(fields.error());
      Step step;
      StepMarks step_marks;

      const Field* id = fields->get("id");
      if (id == nullptr) {
        return fail(Errc::kMissingField, item.Mark(),
                    "steps[" + std::to_string(index) + "] is missing required key 'id'");
      }
      auto id_value = readIdentifier(*id);
      if (!id_value) return td::unexpected(id_value.error());
      step.id = std::move(*id_value);
      step_marks.id = id->value.Mark();
      if (auto it = first_line.find(step.id); it != first_line.end()) {
        return fail(Errc::kDuplicateId, step_marks.id,
                    "duplicate step id " + quote(step.id) + " (first defined at line " +
                        std::to_string(it->second) + ")");
      }
      first_line.emplace(step.id, step_marks.id.line + 1);

      const Field* run = fields->get("run");
      if (run == nullptr) {
        return fail(Errc::kMissingField, item.Mark(),
                    "step " + quote(step.id) + " is missing required key 'run'");
      }
      auto run_value = readString(*run);
      if (!run_value) return td::unexpected(run_value.error());
      step.run = std::move(*run_value);

      step.timeout = defaults.timeout;
      if (const Field* t = fields->get("timeout")) {
        auto timeout = readDuration(*t);
        if (!timeout) return td::unexpected(timeout.error());
        step.timeout = *timeout;
      }
      step.max_attempts = defaults.max_attempts;
      if (const Field* a = fields->get("max_attempts")) {
        auto attempts = readAttempts(*a);
        if (!attempts) return td::unexpected(attempts.error());
        step.max_attempts = *attempts;
      }
      if (const Field* d = fields->get("depends_on")) {
        TD_RETURN_IF_ERROR(readDependsOn(*d, step, step_marks));
      }
      step.retry = defaults.retry;
      TD_RETURN_IF_ERROR(readRetry(*fields, step.retry));
      step.speculative = defaults.speculative;
      if (const Field* f = fields->get("speculative")) {
        auto v = readBool(*f);
        if (!v) return td::unexpected(v.error());
        step.speculative = *v;
      }
      if (const Field* description = fields->get("description"); description != nullptr &&
                                                                 !description->value.IsNull() &&
                                                                 !description->value.IsScalar()) {
        return fail(Errc::kBadValue, valueMark(*description),
                    "'description' must be a string, got " + typeName(description->value));
      }
      schema.steps.push_back(std::move(step));
      marks.push_back(std::move(step_marks));
      ++index;
    }
    return checkReferences(schema.steps, marks);
  }

  Status readDependsOn(const Field& f, Step& step, StepMarks& marks) const {
    if (f.value.IsNull()) return {};
    if (!f.value.IsSequence()) {
      return fail(
          Errc::kBadValue, valueMark(f),
          "'depends_on' must be a list of step ids like [common], got " + typeName(f.value));
    }
    for (const YAML::Node& entry : f.value) {
      Field as_field{"depends_on", f.key_node, entry};
      auto dep = readIdentifier(as_field);
      if (!dep) return td::unexpected(dep.error());
      if (std::find(step.depends_on.begin(), step.depends_on.end(), *dep) !=
          step.depends_on.end()) {
        return fail(Errc::kBadValue, valueMark(as_field),
                    "step " + quote(step.id) + " lists " + quote(*dep) + " in 'depends_on' twice");
      }
      step.depends_on.push_back(std::move(*dep));
      marks.depends_on.push_back(valueMark(as_field));
    }
    return {};
  }

  // Every depends_on entry names another step, and the graph has no cycle. Reports the first
  // problem in file order so the message is deterministic.
  Status checkReferences(const std::vector<Step>& steps,
                         const std::vector<StepMarks>& marks) const {
    std::map<std::string_view, std::size_t, std::less<>> position;
    for (std::size_t i = 0; i < steps.size(); ++i) position.emplace(steps[i].id, i);
    std::vector<std::vector<std::size_t>> edges(steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) {
      for (std::size_t j = 0; j < steps[i].depends_on.size(); ++j) {
        const std::string& dep = steps[i].depends_on[j];
        if (dep == steps[i].id) {
          return fail(Errc::kBadReference, marks[i].depends_on[j],
                      "step " + quote(dep) + " depends on itself");
        }
        auto it = position.find(dep);
        if (it == position.end()) {
          return fail(Errc::kBadReference, marks[i].depends_on[j],
                      "step " + quote(steps[i].id) + " depends on unknown step " + quote(dep));
        }
        edges[i].push_back(it->second);
      }
    }
    // Iterative depth-first search (long chains must not exhaust the stack).
    enum class Color { kWhite, kGray, kBlack };
    std::vector<Color> color(steps.size(), Color::kWhite);
    struct Frame {
      std::size_t node;
      std::size_t next_edge;
    };
    for (std::size_t start = 0; start < steps.size(); ++start) {
      if (color[start] != Color::kWhite) continue;
      std::vector<Frame> stack{{start, 0}};
      color[start] = Color::kGray;
      while (!stack.empty()) {
        Frame& top = stack.back();
        if (top.next_edge == edges[top.node].size()) {
          color[top.node] = Color::kBlack;
          stack.pop_back();
          continue;
        }
        const std::size_t edge = top.next_edge++;
        const std::size_t to = edges[top.node][edge];
        if (color[to] == Color::kWhite) {
          color[to] = Color::kGray;
          stack.push_back({to, 0});
        } else if (color[to] == Color::kGray) {
          std::string cycle;
          bool in_cycle = false;
          for (const Frame& frame : stack) {
            in_cycle = in_cycle || frame.node == to;
            if (in_cycle) cycle += steps[frame.node].id + " -> ";
          }
          cycle += steps[to].id;
          return fail(Errc::kBadReference, marks[top.node].depends_on[edge],
                      "dependency cycle: " + cycle);
        }
      }
    }
    return {};
  }

  // Returns the tasks-form command template: ParseOptions::task_command if set, else the file's.
  Result<std::string> taskTemplate(const Field* command, const YAML::Node& root_list) const {
    std::optional<std::string> from_file;
    if (command != nullptr) {
      auto text = readString(*command);
      if (!text) return text;
      from_file = std::move(*text);
    }
    if (options_.task_command.has_value()) {
      const std::string& cmd = *options_.task_command;
      if (isBlank(cmd) || cmd.find(kTaskPlaceholder) == std::string::npos) {
        return fail(Errc::kBadValue, YAML::Mark::null_mark(),
                    "the task command " + quote(cmd) + " must be non-empty and contain {task}");
      }
      return cmd;
    }
    if (!from_file.has_value()) {
      return fail(Errc::kMissingField, root_list.Mark(),
                  "the 'tasks' and targets forms need a command template: add 'command: "
                  "<template with {task}>' (with the targets under 'steps:') or pass a task "
                  "command (td-worker --task-command)");
    }
    if (from_file->find(kTaskPlaceholder) == std::string::npos) {
      return fail(Errc::kBadValue, valueMark(*command),
                  "'command' " + quote(*from_file) +
                      " must contain {task}, which each task's value replaces");
    }
    return std::move(*from_file);
  }

  Status parseTasks(const Field& list, const Field* command, const Defaults& defaults,
                    Schema& schema) const {
    TD_RETURN_IF_ERROR(checkList(list));
    auto command_template = taskTemplate(command, list.key_node);
    if (!command_template) return td::unexpected(command_template.error());
    std::size_t index = 0;
    for (const YAML::Node& item : list.value) {
      if (!item.IsMap()) {
        return fail(Errc::kBadValue, itemMark(item, list),
                    "tasks[" + std::to_string(index) +
                        "] must be a map like '- task: //:target', got " + typeName(item));
      }
      auto fields = readMap(item, "a task", kTaskKeys);
      if (!fields) return td::unexpected(fields.error());
      const Field* task = fields->get("task");
      if (task == nullptr) {
        return fail(Errc::kMissingField, item.Mark(),
                    "tasks[" + std::to_string(index) + "] is missing required key 'task'");
      }
      auto value = readString(*task);
      if (!value) return td::unexpected(value.error());

      Step step;
      step.id = std::to_string(index);
      step.run = substitute(*command_template, *value);
      step.timeout = defaults.timeout;
      step.max_attempts = defaults.max_attempts;
      step.retry = defaults.retry;
      step.speculative = defaults.speculative;
      schema.steps.push_back(std::move(step));
      ++index;
    }
    return {};
  }

  // The targets form (the seeds' own schemas): `list` maps step ids to targets, each run as
  // the command template with the target in place of {task}. Ids that are numbers come first,
  // in numeric order; the others follow in file order.
  Status parseTargets(const Field& map, const Field* command, const Defaults& defaults,
                      Schema& schema) const {
    if (map.value.size() == 0) {
      return fail(Errc::kEmpty, map.value.Mark(), "schema has no steps");
    }
    auto command_template = taskTemplate(command, map.value);
    if (!command_template) return td::unexpected(command_template.error());
    struct Entry {
      std::optional<std::uint64_t> number;
      std::size_t order;
      Step step;
    };
    std::vector<Entry> entries;
    std::map<std::string, int, std::less<>> first_line;
    for (const auto& item : map.value) {
      if (!item.first.IsScalar()) {
        return fail(Errc::kBadValue, item.first.Mark(),
                    "step ids must be strings, got " + typeName(item.first));
      }
      const Field entry{item.first.Scalar(), item.first, item.second};
      const Field id_field{"step id", item.first, item.first};
      auto id = readIdentifier(id_field);
      if (!id) return td::unexpected(id.error());
      auto [at, fresh] = first_line.try_emplace(*id, item.first.Mark().line + 1);
      if (!fresh) {
        return fail(Errc::kDuplicateId, item.first.Mark(),
                    "step id " + quote(*id) + " repeated (first at line " +
                        std::to_string(at->second) + ")");
      }
      auto target = readString(entry);
      if (!target) return td::unexpected(target.error());
      Entry e{.number = std::nullopt, .order = entries.size(), .step = {}};
      if (std::all_of(id->begin(), id->end(), [](char c) { return c >= '0' && c <= '9'; }) &&
          id->size() <= 18) {
        e.number = std::stoull(*id);
      }
      e.step.id = std::move(*id);
      e.step.run = substitute(*command_template, *target);
      e.step.timeout = defaults.timeout;
      e.step.max_attempts = defaults.max_attempts;
      e.step.retry = defaults.retry;
      e.step.speculative = defaults.speculative;
      entries.push_back(std::move(e));
    }
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      if (a.number.has_value() != b.number.has_value()) return a.number.has_value();
      if (a.number && b.number && *a.number != *b.number) return *a.number < *b.number;
      return a.order < b.order;
    });
    for (auto& e : entries) schema.steps.push_back(std::move(e.step));
    return {};
  }

  static std::string substitute(std::string_view tmpl, std::string_view value) {
    std::string out;
    std::size_t from = 0;
    for (std::size_t at = tmpl.find(kTaskPlaceholder); at != std::string_view::npos;
         at = tmpl.find(kTaskPlaceholder, from)) {
      out.append(tmpl.substr(from, at - from));
      out.append(value);
      from = at + kTaskPlaceholder.size();
    }
    out.append(tmpl.substr(from));
    return out;
  }

  std::string source_;
  const ParseOptions& options_;
};

void appendString(std::string& out, std::string_view text) {
  out += std::to_string(text.size());
  out += ':';
  out += text;
}

}  // namespace

const std::error_category& schemaCategory() {
  static const SchemaCategory category;
  return category;
}

const Step* Schema::find(std::string_view id) const {
  if (index_.size() == steps.size()) {
    auto it = index_.find(id);
    if (it == index_.end()) return nullptr;
    if (it->second < steps.size() && steps[it->second].id == id) return &steps[it->second];
  }
  // No index (hand-built) or an index that no longer matches: search directly.
  for (const Step& step : steps) {
    if (step.id == id) return &step;
  }
  return nullptr;
}

void Schema::rebuildIndex() {
  index_.clear();
  for (std::size_t i = 0; i < steps.size(); ++i) index_.emplace(steps[i].id, i);
}

td::Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return makeError(Errc::kBadValue, "bad duration " + quote(text) + ": " + std::string(why));
  };
  constexpr std::string_view kForm =
      "expected <integer><unit> parts with unit ms, s, m or h, like 500ms, 45s, 30m, 1h30m";
  if (text.empty()) return bad(kForm);
  const std::int64_t max_ms = kMaxTimeout.count();
  std::int64_t total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') return bad(kForm);
    std::int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      // Saturate: anything past max_ms is rejected below, whatever the unit.
      value = std::min<std::int64_t>(value * 10 + (text[i] - '0'), max_ms + 1);
      ++i;
    }
    std::int64_t unit_ms = 0;
    if (text.substr(i, 2) == "ms") {
      unit_ms = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit_ms = 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'm') {
      unit_ms = 60 * 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'h') {
      unit_ms = 60 * 60 * 1000;
      ++i;
    } else {
      return bad(i < text.size() ? kForm : "missing unit (ms, s, m or h)");
    }
    if (value > (max_ms - total_ms) / unit_ms) return bad("longer than 7 days");
    total_ms += value * unit_ms;
  }
  if (total_ms == 0) return bad("must be greater than zero");
  return std::chrono::milliseconds(total_ms);
}

std::string canonicalForm(const Schema& schema) {
  // Every string is length-prefixed, so no choice of ids or commands can make two different
  // schemas print the same text. Changing this format changes every digest.
  std::string out = "td.schema.v1\nname ";
  appendString(out, schema.name);
  out += '\n';
  if (schema.universe) {   // only when there is one: schemas without keep their digests
    out += "universe ";
    appendString(out, *schema.universe);
    out += "\nuniverse_timeout_ms " + std::to_string(schema.universe_timeout.count()) + '\n';
  }
  for (const Step& step : schema.steps) {
    out += "step ";
    appendString(out, step.id);
    out += "\nrun ";
    appendString(out, step.run);
    out += "\ntimeout_ms " + std::to_string(step.timeout.count());
    out += "\nmax_attempts " + std::to_string(step.max_attempts);
    std::vector<std::string_view> deps(step.depends_on.begin(), step.depends_on.end());
    std::sort(deps.begin(), deps.end());
    out += "\ndepends_on " + std::to_string(deps.size());
    for (std::string_view dep : deps) {
      out += ' ';
      appendString(out, dep);
    }
    const RetryPolicy& r = step.retry;
    out += "\nbackoff " + std::to_string(r.backoff_initial.count()) + ' ' +
           std::to_string(r.backoff_multiplier) + ' ' + std::to_string(r.backoff_max.count()) +
           ' ' + std::to_string(r.backoff_jitter);
    out += "\nretry_on";
    if (r.retry_on_any_exit) out += " exit";
    if (r.retry_on_timeout) out += " timeout";
    if (r.retry_on_lost) out += " lost";
    for (int code : r.retry_on_exit_codes) out += ' ' + std::to_string(code);
    out += "\nlost " + std::string(r.count_lost_attempts ? "counted" : "uncounted") + ' ' +
           std::to_string(r.max_lost_attempts);
    // Only when off: schemas that do not say keep their digests.
    if (!step.speculative) out += "\nspeculative off";
    out += '\n';
  }
  return out;
}

td::Result<Schema> parse(std::string_view yaml_text, std::string_view source_name,
                         const ParseOptions& options) {
  return Parser(source_name, options).parseText(yaml_text);
}

td::Result<Schema> loadFile(const std::filesystem::path& path, const ParseOptions& options) {
  const std::string name = path.string();
  auto io_error = [&](int err) {
    return makeError(Errc::kIo, name + ": cannot read schema: " + std::strerror(err));
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(name.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) return io_error(errno);
  std::string text;
  char buffer[64 * 1024];
  errno = 0;
  while (true) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    text.append(buffer, n);
    if (text.size() > kMaxFileBytes) {
      return makeError(Errc::kIo, name + ": cannot read schema: larger than 16 MiB");
    }
    if (n < sizeof buffer) break;
  }
  if (std::ferror(file.get())) return io_error(errno != 0 ? errno : EIO);
  ParseOptions with_name = options;
  if (with_name.default_name.empty()) with_name.default_name = path.stem().string();
  return parse(text, name, with_name);
}

}  // namespace td::schema
