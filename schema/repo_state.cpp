#include "schema/repo_state.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "schema/schema.h"

namespace td::schema {

namespace {

td::Unexpected<Error> fail(Errc code, std::string_view source, const YAML::Mark& mark,
                            const std::string& message) {
  std::string context(source);
  if (!mark.is_null() && mark.line >= 0) {
    context += ':' + std::to_string(mark.line + 1) + ':' + std::to_string(mark.column + 1);
  }
  return makeError(code, context + ": " + message);
}

td::Result<std::string> scalar(std::string_view source, const YAML::Node& node,
                               const std::string& what) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return fail(Errc::kBadValue, source, node.Mark(), what + " must be a non-empty string");
  }
  return node.Scalar();
}

}  // namespace

td::Result<std::vector<RepoEntry>> parseRepoState(std::string_view yaml_text,
                                                  std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail(Errc::kSyntax, source, e.mark, "YAML syntax error: " + e.msg);
  }
  if (!root.IsMap() || root.size() == 0) {
    return fail(Errc::kEmpty, source, root.Mark(),
                "expected a map of repository -> {base_ref, change_ref, builds_on}");
  }
  std::vector<RepoEntry> entries;
  try {
    for (const auto& kv : root) {
      RepoEntry entry;
      auto repository = scalar(source, kv.first, "a repository");
      if (!repository) return td::unexpected(repository.error());
      entry.repository = *repository;
      const YAML::Node& body = kv.second;
      if (!body.IsMap()) {
        return fail(Errc::kBadValue, source, body.Mark(),
                    entry.repository + ": expected {base_ref, change_ref, builds_on}");
      }
      for (const auto& field : body) {
        const std::string key = field.first.as<std::string>();
        if (key == "base_ref" || key == "change_ref") {
          auto value = scalar(source, field.second, key);
          if (!value) return td::unexpected(value.error());
          (key == "base_ref" ? entry.base_ref : entry.change_ref) = *value;
        } else if (key == "builds_on") {
          if (!field.second.IsSequence()) {
            return fail(Errc::kBadValue, source, field.second.Mark(),
                        "builds_on must be a list of change refs");
          }
          for (const auto& ref : field.second) {
            auto value = scalar(source, ref, "a builds_on ref");
            if (!value) return td::unexpected(value.error());
            entry.builds_on.push_back(*value);
          }
        } else {
          return fail(Errc::kUnknownKey, source, field.first.Mark(),
                      "unknown key '" + key + "' (allowed: base_ref, change_ref, builds_on)");
        }
      }
      for (const char* required : {"base_ref", "change_ref"}) {
        const std::string& value =
            std::string(required) == "base_ref" ? entry.base_ref : entry.change_ref;
        if (value.empty()) {
          return fail(Errc::kMissingField, source, kv.first.Mark(),
                      entry.repository + ": missing " + required);
        }
      }
      entries.push_back(std::move(entry));
    }
  } catch (const YAML::Exception& e) {
    return fail(Errc::kBadValue, source, e.mark, "cannot read YAML value: " + e.msg);
  }
  return entries;
}

td::Result<std::vector<RepoEntry>> loadRepoState(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return makeError(Errc::kIo, path.string() + ": cannot read: " + std::strerror(errno));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parseRepoState(buffer.str(), path.string());
}

}  // namespace td::schema
