// Tests for td::schema: both file forms, defaults, digests, every kind of rejected input with
// its exact position, and a bounded randomized robustness check.
#include "schema/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>

#include "common/hash.h"

namespace td::schema {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kTestData = TD_SCHEMA_TESTDATA;

// Passes when `result` failed with `code` and a message starting "<where>: " and containing
// `detail`.
template <typename T>
::testing::AssertionResult failsWith(const Result<T>& result, Errc code, const std::string& where,
                                     const std::string& detail = "") {
  if (result.has_value()) return ::testing::AssertionFailure() << "parsed without error";
  const std::string message = result.error().message();
  if (result.error().code() != make_error_code(code)) {
    return ::testing::AssertionFailure()
           << "code " << result.error().code().message()
           << " != " << make_error_code(code).message() << "; message: " << message;
  }
  if (message.rfind(where + ": ", 0) != 0) {
    return ::testing::AssertionFailure()
           << "message does not start with '" << where << ": ': " << message;
  }
  if (message.find(detail) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << detail << "': " << message;
  }
  return ::testing::AssertionSuccess() << message;
}

Result<Schema> parseText(const std::string& text, const ParseOptions& options = {}) {
  return parse(text, "s.yaml", options);
}

// ---- Good input ------------------------------------------------------------------------------

TEST(SchemaLoad, NativeFormWithDefaultsAndOverrides) {
  auto schema = loadFile(kTestData + "/native.yaml");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->name, "adp_fastbuild");
  EXPECT_EQ(schema->source, kTestData + "/native.yaml");
  ASSERT_EQ(schema->steps.size(), 3u);

  const Step& common = schema->steps[0];
  EXPECT_EQ(common.id, "common");
  EXPECT_EQ(common.run, "bazel build //application/adp/common/...");
  EXPECT_EQ(common.timeout, minutes(30));  // from defaults:
  EXPECT_EQ(common.max_attempts, 3u);
  EXPECT_TRUE(common.depends_on.empty());

  const Step& ui = schema->steps[1];
  EXPECT_EQ(ui.id, "ui");
  EXPECT_EQ(ui.timeout, minutes(45));  // step overrides
  EXPECT_EQ(ui.max_attempts, 2u);
  EXPECT_EQ(ui.depends_on, std::vector<std::string>{"common"});

  const Step& package = schema->steps[2];
  EXPECT_EQ(package.timeout, minutes(90));
  EXPECT_EQ(package.max_attempts, 3u);
  EXPECT_EQ(package.depends_on, (std::vector<std::string>{"ui", "common"}));

  EXPECT_EQ(schema->digest, sha256Hex(canonicalForm(*schema)));
  EXPECT_EQ(schema->digest.size(), 64u);
  ASSERT_NE(schema->find("ui"), nullptr);
  EXPECT_EQ(schema->find("ui"), &schema->steps[1]);
  EXPECT_EQ(schema->find("nope"), nullptr);
}

TEST(SchemaLoad, BuiltInDefaultsWhenNoneGiven) {
  auto schema = parseText("name: n\nsteps:\n  - id: a\n    run: 'true'\n");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->steps[0].timeout, hours(1));
  EXPECT_EQ(schema->steps[0].max_attempts, 2u);
  EXPECT_EQ(schema->source, "s.yaml");
}

TEST(SchemaLoad, PartialDefaultsKeepOtherBuiltIns) {
  auto schema = parseText(
      "name: n\ndefaults:\n  timeout: 90s\nsteps:\n  - id: a\n    run: make\n"
      "  - {id: b, run: make, max_attempts: 7, timeout: 500ms}\n");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->steps[0].timeout, seconds(90));
  EXPECT_EQ(schema->steps[0].max_attempts, 2u);
  EXPECT_EQ(schema->steps[1].timeout, milliseconds(500));
  EXPECT_EQ(schema->steps[1].max_attempts, 7u);
}

TEST(SchemaLoad, PlainScalarsAreStrings) {
  // `run: true` and `id: 1` are a bool and an int to YAML, but commands and ids are text.
  auto schema = parseText("name: 42\nsteps:\n  - id: 1\n    run: true\n");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->name, "42");
  EXPECT_EQ(schema->steps[0].id, "1");
  EXPECT_EQ(schema->steps[0].run, "true");
}

TEST(SchemaLoad, TasksForm) {
  auto schema = loadFile(kTestData + "/tasks.yaml");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->name, "bazel");
  ASSERT_EQ(schema->steps.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const Step& step = schema->steps[i];
    EXPECT_EQ(step.id, std::to_string(i));
    EXPECT_EQ(step.run, "bazel test //:test_my_script_" + std::to_string(i + 1));
    EXPECT_EQ(step.timeout, hours(1));
    EXPECT_EQ(step.max_attempts, 2u);
    EXPECT_TRUE(step.depends_on.empty());
  }
  EXPECT_EQ(schema->find("2"), &schema->steps[2]);
}

// The Task Director README's schema: a JSON map from step id to target, named by its file.
TEST(SchemaLoad, TargetsFormAsTheSeedWroteItIsNamedByItsFile) {
  ParseOptions options;
  options.task_command = "bazel build {task}";
  auto schema = loadFile(kTestData + "/adp_fastbuild.json", options);
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->name, "adp_fastbuild");
  ASSERT_EQ(schema->steps.size(), 4u);
  // Ids that are numbers in numeric order ("10" after "3"), the target in place of {task}.
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"1", "bazel build //application/adp/common/..."},
      {"2", "bazel build //application/adp/planning/..."},
      {"3", "bazel build //application/adp/perception/..."},
      {"10", "bazel build //application/adp/control/..."}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(schema->steps[i].id, expected[i].first);
    EXPECT_EQ(schema->steps[i].run, expected[i].second);
    EXPECT_EQ(schema->steps[i].timeout, kDefaultTimeout);
  }
  EXPECT_EQ(schema->find("10"), &schema->steps[3]);
  // The template is required: from the option or the file.
  EXPECT_TRUE(failsWith(loadFile(kTestData + "/adp_fastbuild.json"), Errc::kMissingField,
                        kTestData + "/adp_fastbuild.json:1:1", "command template"));
}

TEST(SchemaLoad, TargetsUnderStepsTakeTheFilesNameCommandAndDefaults) {
  auto schema = loadFile(kTestData + "/targets_steps.json");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->name, "universe_steps");
  ASSERT_EQ(schema->steps.size(), 3u);
  EXPECT_EQ(schema->steps[0].id, "1");
  EXPECT_EQ(schema->steps[0].run, "bazel build //my_universe/common/...");
  EXPECT_EQ(schema->steps[1].id, "2");
  EXPECT_EQ(schema->steps[2].id, "lint");   // not a number: after the numbers, in file order
  EXPECT_EQ(schema->steps[2].run, "bazel build //my_universe:lint");

  // The same shapes in YAML; defaults apply; the name defaults to ParseOptions::default_name.
  ParseOptions named;
  named.default_name = "from_file";
  auto yaml = parseText(
      "command: make {task}\ndefaults: {timeout: 5m}\nsteps:\n  b: one\n  a: two\n", named);
  ASSERT_TRUE(yaml.has_value()) << yaml.error().message();
  EXPECT_EQ(yaml->name, "from_file");
  ASSERT_EQ(yaml->steps.size(), 2u);
  EXPECT_EQ(yaml->steps[0].id, "b");   // file order
  EXPECT_EQ(yaml->steps[0].run, "make one");
  EXPECT_EQ(yaml->steps[0].timeout, minutes(5));
  ParseOptions bare_options;
  bare_options.task_command = "echo {task}";
  bare_options.default_name = "bare";
  auto bare = parseText("\"2\": //b\n\"1\": //a\n", bare_options);
  ASSERT_TRUE(bare.has_value()) << bare.error().message();
  EXPECT_EQ(bare->steps[0].run, "echo //a");
  // A different target is a different schema.
  auto other = parseText("\"2\": //b\n\"1\": //c\n", bare_options);
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(bare->digest, other->digest);
}

// The seeds' universe: a target through the template (targets and tasks forms), a command in
// the native form; part of the digest only when present.
TEST(SchemaLoad, UniverseIsATargetThroughTheTemplateOrANativeCommand) {
  ParseOptions named;
  named.default_name = "u";
  auto targets = parseText(
      "universe: //my_universe/...\ncommand: bazel build {task}\ndefaults: {timeout: 20m}\n"
      "steps: {\"1\": //my_universe/common/...}\n",
      named);
  ASSERT_TRUE(targets.has_value()) << targets.error().message();
  ASSERT_TRUE(targets->universe.has_value());
  EXPECT_EQ(*targets->universe, "bazel build //my_universe/...");
  EXPECT_EQ(targets->universe_timeout, minutes(20));
  auto without = parseText("command: bazel build {task}\ndefaults: {timeout: 20m}\n"
                           "steps: {\"1\": //my_universe/common/...}\n",
                           named);
  ASSERT_TRUE(without.has_value());
  EXPECT_FALSE(without->universe.has_value());
  EXPECT_NE(targets->digest, without->digest);

  auto native = parseText("name: n\nuniverse: make all\nsteps:\n  - id: a\n    run: make a\n");
  ASSERT_TRUE(native.has_value()) << native.error().message();
  EXPECT_EQ(native->universe, "make all");
  EXPECT_EQ(native->universe_timeout, kDefaultTimeout);
  auto tasks = parseText("name: t\ncommand: run {task}\nuniverse: all\ntasks:\n  - task: x\n");
  ASSERT_TRUE(tasks.has_value()) << tasks.error().message();
  EXPECT_EQ(tasks->universe, "run all");
  EXPECT_TRUE(failsWith(parseText("name: n\nuniverse: ''\nsteps:\n  - id: a\n    run: x\n"),
                        Errc::kBadValue, "s.yaml:2:11", "must not be empty"));
}

TEST(SchemaReject, BadTargetsForms) {
  ParseOptions options;
  options.task_command = "make {task}";
  // No file, no name.
  EXPECT_TRUE(failsWith(parseText("\"1\": //a\n", options), Errc::kMissingField, "s.yaml:1:1",
                        "needs one"));
  options.default_name = "t";
  EXPECT_TRUE(failsWith(parseText("\"1\": //a\n\"1\": //b\n", options), Errc::kDuplicateId,
                        "s.yaml:2:1", "first at line 1"));
  EXPECT_TRUE(failsWith(parseText("\"a b\": //a\n", options), Errc::kBadValue, "s.yaml:1:1",
                        "outside [A-Za-z0-9._:/@+-]"));
  EXPECT_TRUE(failsWith(parseText("steps: {\"1\": \"\"}\n", options), Errc::kBadValue,
                        "s.yaml:1:14", "must not be empty"));
  EXPECT_TRUE(failsWith(parseText("steps: {\"1\": [x]}\n", options), Errc::kBadValue,
                        "s.yaml:1:14", "must be a non-empty string"));
  EXPECT_TRUE(failsWith(parseText("steps: {}\n", options), Errc::kEmpty, "s.yaml:1:8"));
  // A file name that cannot be a name.
  options.default_name = "has space";
  EXPECT_TRUE(failsWith(parseText("\"1\": //a\n", options), Errc::kBadValue, "s.yaml:1:1",
                        "add 'name:'"));
}

TEST(SchemaLoad, TasksFormAcceptsDefaults) {
  auto schema = parseText(
      "name: t\ncommand: run {task}\ndefaults: {timeout: 5m, max_attempts: 4}\n"
      "tasks:\n  - task: x\n");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->steps[0].timeout, minutes(5));
  EXPECT_EQ(schema->steps[0].max_attempts, 4u);
}

TEST(SchemaLoad, TaskCommandOptionOverridesFileAndReplacesEveryPlaceholder) {
  ParseOptions options;
  options.task_command = "echo {task} && test -e {task}";
  auto schema = loadFile(kTestData + "/tasks.yaml", options);
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->steps[0].run, "echo //:test_my_script_1 && test -e //:test_my_script_1");

  // The option also stands in for a missing `command:`.
  auto no_command = parseText("name: t\ntasks:\n  - task: a\n", options);
  ASSERT_TRUE(no_command.has_value()) << no_command.error().message();
  EXPECT_EQ(no_command->steps[0].run, "echo a && test -e a");
}

TEST(SchemaLoad, TaskCommandOptionIsIgnoredByNativeForm) {
  ParseOptions options;
  options.task_command = "other {task}";
  auto with = loadFile(kTestData + "/native.yaml", options);
  auto without = loadFile(kTestData + "/native.yaml");
  ASSERT_TRUE(with.has_value() && without.has_value());
  EXPECT_EQ(with->digest, without->digest);
}

TEST(SchemaDigest, StableAcrossCommentsLayoutAndDescriptions) {
  auto a = loadFile(kTestData + "/native.yaml");
  auto b = loadFile(kTestData + "/native_reformatted.yaml");
  ASSERT_TRUE(a.has_value()) << a.error().message();
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(a->digest, b->digest);
  EXPECT_EQ(canonicalForm(*a), canonicalForm(*b));

  // Parsing is deterministic, and the source name is not part of the digest.
  const std::string text = "name: n\nsteps:\n  - id: a\n    run: make a\n";
  auto first = parse(text, "one.yaml");
  auto second = parse(text, "two.yaml");
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->digest, second->digest);
}

// The digest travels in every registration and is part of the compatibility key: workers of two
// versions that read one schema file must agree on it. Golden: the canonical form and its hash.
TEST(SchemaDigest, GoldenValue) {
  auto schema = parse("name: n\nsteps:\n  - id: a\n    run: make a\n"
                      "  - {id: b, run: make b, depends_on: [a], max_attempts: 2, timeout: 90s}\n",
                      "golden.yaml");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->digest, "794f3b4cc76b6ec24a11647af1b0a42a384b7b2f8dc2e8cc77e248e61c908dd6");
}

TEST(SchemaDigest, ChangesWithAnythingThatAffectsExecution) {
  const auto digestOf = [](const std::string& text) {
    auto schema = parseText(text);
    EXPECT_TRUE(schema.has_value()) << schema.error().message();
    return schema.has_value() ? schema->digest : std::string();
  };
  const std::string base =
      digestOf("name: n\nsteps:\n  - {id: a, run: make a}\n  - {id: b, run: make b}\n");
  EXPECT_NE(base,
            digestOf("name: n\nsteps:\n  - {id: a, run: make A}\n  - {id: b, run: make b}\n"));
  EXPECT_NE(base,
            digestOf("name: m\nsteps:\n  - {id: a, run: make a}\n  - {id: b, run: make b}\n"));
  EXPECT_NE(base,
            digestOf("name: n\nsteps:\n  - {id: b, run: make b}\n  - {id: a, run: make a}\n"));
  EXPECT_NE(base, digestOf("name: n\nsteps:\n  - {id: a, run: make a, timeout: 2h}\n"
                           "  - {id: b, run: make b}\n"));
  EXPECT_NE(base, digestOf("name: n\nsteps:\n  - {id: a, run: make a, max_attempts: 3}\n"
                           "  - {id: b, run: make b}\n"));
  EXPECT_NE(base, digestOf("name: n\nsteps:\n  - {id: a, run: make a}\n"
                           "  - {id: b, run: make b, depends_on: [a]}\n"));
  // An explicit value equal to the built-in default is the same schema.
  EXPECT_EQ(base, digestOf("name: n\nsteps:\n  - {id: a, run: make a, timeout: 60m}\n"
                           "  - {id: b, run: make b}\n"));

  ParseOptions options;
  options.task_command = "bazel build {task}";
  auto overridden = loadFile(kTestData + "/tasks.yaml", options);
  auto original = loadFile(kTestData + "/tasks.yaml");
  ASSERT_TRUE(overridden.has_value() && original.has_value());
  EXPECT_NE(overridden->digest, original->digest);
}

TEST(SchemaFind, CopiesAndMovesKeepTheIndexValid) {
  Schema copy;
  {
    auto parsed = loadFile(kTestData + "/native.yaml");
    ASSERT_TRUE(parsed.has_value());
    copy = *parsed;
    Schema moved = std::move(*parsed);
    ASSERT_NE(moved.find("package"), nullptr);
    EXPECT_EQ(moved.find("package"), &moved.steps[2]);
  }
  ASSERT_NE(copy.find("common"), nullptr);
  EXPECT_EQ(copy.find("common"), &copy.steps[0]);
  EXPECT_EQ(copy.find("package")->timeout, minutes(90));
}

TEST(SchemaFind, HandBuiltAndEditedSchemas) {
  Schema schema;
  schema.steps.push_back(Step{"x", "true", seconds(1), 1, {}});
  schema.steps.push_back(Step{"y", "true", seconds(1), 1, {}});
  EXPECT_EQ(schema.find("y"), &schema.steps[1]);  // no index yet: linear scan
  schema.rebuildIndex();
  EXPECT_EQ(schema.find("x"), &schema.steps[0]);
  schema.steps.push_back(Step{"z", "true", seconds(1), 1, {}});
  EXPECT_EQ(schema.find("z"), &schema.steps[2]);  // index size no longer matches: linear scan
}

TEST(SchemaDuration, AcceptsUnitsAndSums) {
  const std::pair<const char*, milliseconds> good[] = {
      {"500ms", milliseconds(500)}, {"45s", seconds(45)},
      {"30m", minutes(30)},         {"1h", hours(1)},
      {"1h30m", minutes(90)},       {"1m30s250ms", milliseconds(90250)},
      {"168h", hours(168)},         {"0h1ms", milliseconds(1)},
  };
  for (const auto& [text, expected] : good) {
    auto duration = parseDuration(text);
    ASSERT_TRUE(duration.has_value()) << text << ": " << duration.error().message();
    EXPECT_EQ(*duration, expected) << text;
  }
}

TEST(SchemaDuration, RejectsEverythingElseNamingTheText) {
  for (const char* text :
       {"", "30", "-5m", "+5m", "5 m", " 5m", "5m ", "1d", "1.5h", "h", "0s", "0h0m", "169h", "7d",
        "99999999999999999999h", "5M", "1mm", "ms", "30m10"}) {
    auto duration = parseDuration(text);
    ASSERT_FALSE(duration.has_value()) << "'" << text << "' was accepted";
    EXPECT_EQ(duration.error().code(), make_error_code(Errc::kBadValue));
    EXPECT_THAT(duration.error().message(), HasSubstr("'" + std::string(text) + "'"));
  }
}

TEST(SchemaErrors, CategoryAndCodes) {
  std::error_code code = Errc::kDuplicateId;
  EXPECT_STREQ(code.category().name(), "schema");
  EXPECT_EQ(code, make_error_code(Errc::kDuplicateId));
  EXPECT_EQ(code.value(), 4);
  EXPECT_EQ(make_error_code(Errc::kIo).message(), "cannot read schema");
}

// ---- Bad input: one test per kind, each checking the Errc and the exact line:column -----------

TEST(SchemaReject, IoMissingFileAndDirectory) {
  auto missing = loadFile(kTestData + "/does_not_exist.yaml");
  EXPECT_TRUE(failsWith(missing, Errc::kIo, kTestData + "/does_not_exist.yaml",
                        "No such file or directory"));
  auto directory = loadFile(kTestData);
  EXPECT_TRUE(failsWith(directory, Errc::kIo, kTestData, "Is a directory"));
}

TEST(SchemaReject, Syntax) {
  EXPECT_TRUE(failsWith(parseText("name: x\nsteps: [a, b\n"), Errc::kSyntax, "s.yaml:3:1",
                        "YAML syntax error"));
  EXPECT_TRUE(failsWith(parseText("name: x\n  bad: indent\n"), Errc::kSyntax, "s.yaml:2:6"));
  EXPECT_TRUE(failsWith(parseText("name: x\nsteps: {a: 1]\n"), Errc::kSyntax, "s.yaml:2:13"));
  EXPECT_TRUE(failsWith(parseText("name: &a x\nother: *b\n"), Errc::kSyntax, "s.yaml:2:8",
                        "anchor is not defined"));
  // yaml-cpp 0.7's LoadAll loops forever on a stray ',' (jbeder/yaml-cpp#1319); we must not.
  EXPECT_TRUE(failsWith(parseText(",name: x\nsteps: [{id: a, run: b}]\n"), Errc::kSyntax,
                        "s.yaml:1:1", "unexpected token"));
}

TEST(SchemaReject, SyntaxMultipleDocumentsAndRepeatedKeys) {
  EXPECT_TRUE(failsWith(parseText("name: a\n---\nname: b\n"), Errc::kSyntax, "s.yaml:2:1",
                        "one YAML document"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: x\n    run: y\n"),
                        Errc::kSyntax, "s.yaml:5:5", "'run' repeated in a step (first at line 4)"));
}

TEST(SchemaReject, UnknownKeys) {
  EXPECT_TRUE(failsWith(parseText("name: a\nstep:\n  - {id: a, run: x}\n"), Errc::kUnknownKey,
                        "s.yaml:2:1",
                        "unknown key 'step' in the top level; allowed keys: name, description, "
                        "defaults, steps, tasks, command"));
  EXPECT_TRUE(failsWith(parseText("name: a\ndefaults: {timeout: 1m, retries: 3}\nsteps: [{id: a, "
                                  "run: x}]\n"),
                        Errc::kUnknownKey, "s.yaml:2:25",
                        "unknown key 'retries' in defaults; allowed keys: timeout, max_attempts"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: x\n    tiemout: 5m\n"),
                        Errc::kUnknownKey, "s.yaml:5:5",
                        "unknown key 'tiemout' in a step; allowed keys: id, run, timeout, "
                        "max_attempts, depends_on, description"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: t {task}\ntasks:\n  - task: x\n    id: 3\n"),
                        Errc::kUnknownKey, "s.yaml:5:5",
                        "unknown key 'id' in a task; allowed keys: task"));
}

TEST(SchemaReject, DuplicateId) {
  EXPECT_TRUE(failsWith(
      parseText("name: a\nsteps:\n  - id: build\n    run: x\n  - id: test\n    run: y\n"
                "  - id: build\n    run: z\n"),
      Errc::kDuplicateId, "s.yaml:7:9", "duplicate step id 'build' (first defined at line 3)"));
}

TEST(SchemaReject, MissingFields) {
  EXPECT_TRUE(failsWith(parseText("description: x\nsteps: [{id: a, run: b}]\n"),
                        Errc::kMissingField, "s.yaml:1:1", "missing required key 'name'"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: x\n  - run: y\n"),
                        Errc::kMissingField, "s.yaml:5:5",
                        "steps[1] is missing required key 'id'"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    timeout: 1m\n"),
                        Errc::kMissingField, "s.yaml:3:5",
                        "step 'a' is missing required key 'run'"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: t {task}\ntasks:\n  - {}\n"),
                        Errc::kMissingField, "s.yaml:4:5",
                        "tasks[0] is missing required key 'task'"));
  EXPECT_TRUE(failsWith(parseText("name: a\ntasks:\n  - task: x\n"), Errc::kMissingField,
                        "s.yaml:2:1",
                        "add 'command: <template with {task}>'"));
}

TEST(SchemaReject, WrongTypes) {
  EXPECT_TRUE(failsWith(parseText("- a\n- b\n"), Errc::kBadValue, "s.yaml:1:1",
                        "the top level must be a map"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps: {id: a, run: x}\n"), Errc::kBadValue,
                        "s.yaml:2:8", "'steps' must be a list, got a map"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: [make, all]\n"),
                        Errc::kBadValue, "s.yaml:4:10",
                        "'run' must be a non-empty string, got a list"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - just a string\n"), Errc::kBadValue,
                        "s.yaml:3:5", "steps[0] must be a map"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: b\n    run: x\n    depends_on: a\n"),
                        Errc::kBadValue, "s.yaml:5:17", "'depends_on' must be a list"));
  EXPECT_TRUE(failsWith(parseText("name: a\ndefaults: 5m\nsteps: [{id: a, run: x}]\n"),
                        Errc::kBadValue, "s.yaml:2:11", "'defaults' must be a map"));
  EXPECT_TRUE(failsWith(parseText("name: {x: 1}\nsteps: [{id: a, run: x}]\n"), Errc::kBadValue,
                        "s.yaml:1:7", "'name' must be a non-empty string, got a map"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: t {task}\ntasks:\n  - //:x\n"),
                        Errc::kBadValue, "s.yaml:4:5", "tasks[0] must be a map like '- task:"));
}

TEST(SchemaReject, EmptyStrings) {
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: ''\n"), Errc::kBadValue,
                        "s.yaml:4:10", "'run' must not be empty"));
  // A key with no value is blamed at the key.
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id:\n    run: x\n"), Errc::kBadValue,
                        "s.yaml:3:5", "'id' must be a non-empty string, got nothing"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: t {task}\ntasks:\n  - task: \"  \"\n"),
                        Errc::kBadValue, "s.yaml:4:11", "'task' must not be empty"));
}

TEST(SchemaReject, BadIdentifiers) {
  EXPECT_TRUE(failsWith(parseText("name: my build\nsteps: [{id: a, run: x}]\n"), Errc::kBadValue,
                        "s.yaml:1:7",
                        "'name' 'my build' has characters outside [A-Za-z0-9._:/@+-]"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a;b\n    run: x\n"), Errc::kBadValue,
                        "s.yaml:3:9", "has characters outside"));
  const std::string long_id(129, 'x');
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: " + long_id + "\n    run: x\n"),
                        Errc::kBadValue, "s.yaml:3:9", "longer than 128 characters"));
  EXPECT_TRUE(parseText("name: a\nsteps:\n  - id: " + std::string(128, 'x') + "\n    run: x\n")
                  .has_value());
  EXPECT_TRUE(parseText("name: a-b_c.d:e/f@g+h\nsteps: [{id: A9.x, run: x}]\n").has_value());
}

TEST(SchemaReject, BadDurations) {
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: x\n    timeout: 30\n"),
                        Errc::kBadValue, "s.yaml:5:14", "'timeout': bad duration '30'"));
  EXPECT_TRUE(failsWith(parseText("name: a\ndefaults:\n  timeout: 8d\nsteps: [{id: a, run: x}]\n"),
                        Errc::kBadValue, "s.yaml:3:12", "bad duration '8d'"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - {id: a, run: x, timeout: 200h}\n"),
                        Errc::kBadValue, "s.yaml:3:30", "longer than 7 days"));
}

TEST(SchemaReject, BadMaxAttempts) {
  for (const char* value : {"0", "101", "3.5", "-1", "many", "[2]"}) {
    const std::string text =
        std::string("name: a\nsteps:\n  - id: a\n    run: x\n    max_attempts: ") + value + "\n";
    EXPECT_TRUE(failsWith(parseText(text), Errc::kBadValue, "s.yaml:5:19",
                          "'max_attempts' must be an integer in [1, 100]"))
        << value;
  }
  EXPECT_TRUE(parseText("name: a\nsteps: [{id: a, run: x, max_attempts: 100}]\n").has_value());
}

TEST(SchemaReject, FormConflicts) {
  EXPECT_TRUE(failsWith(
      parseText("name: a\nsteps: [{id: a, run: x}]\ncommand: t {task}\ntasks: [{task: b}]\n"),
      Errc::kBadValue, "s.yaml:4:1", "either 'steps' or 'tasks', not both"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: t {task}\nsteps: [{id: a, run: x}]\n"),
                        Errc::kBadValue, "s.yaml:2:1",
                        "'command' is a template for the 'tasks' form"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: bazel test\ntasks: [{task: b}]\n"),
                        Errc::kBadValue, "s.yaml:2:10", "must contain {task}"));
  ParseOptions options;
  options.task_command = "bazel test";
  EXPECT_TRUE(failsWith(parseText("name: a\ntasks: [{task: b}]\n", options), Errc::kBadValue,
                        "s.yaml",
                        "the task command 'bazel test' must be non-empty and contain {task}"));
}

TEST(SchemaReject, Empty) {
  EXPECT_TRUE(failsWith(parseText(""), Errc::kEmpty, "s.yaml", "schema is empty"));
  EXPECT_TRUE(failsWith(parseText("# only a comment\n\n"), Errc::kEmpty, "s.yaml"));
  EXPECT_TRUE(
      failsWith(parseText("name: a\nsteps: []\n"), Errc::kEmpty, "s.yaml:2:8", "'steps' is empty"));
  EXPECT_TRUE(
      failsWith(parseText("name: a\nsteps:\n"), Errc::kEmpty, "s.yaml:2:1", "'steps' is empty"));
  EXPECT_TRUE(failsWith(parseText("name: a\ncommand: t {task}\ntasks: []\n"), Errc::kEmpty,
                        "s.yaml:3:8", "'tasks' is empty"));
  EXPECT_TRUE(failsWith(parseText("name: a\ndescription: nothing to do\n"), Errc::kEmpty,
                        "s.yaml:1:1", "schema has no steps"));
}

TEST(SchemaReject, BadReferences) {
  EXPECT_TRUE(
      failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: x\n    depends_on: [b, zz]\n"
                          "  - {id: b, run: y}\n"),
                Errc::kBadReference, "s.yaml:5:21", "step 'a' depends on unknown step 'zz'"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - id: a\n    run: x\n    depends_on:\n"
                                  "      - a\n"),
                        Errc::kBadReference, "s.yaml:6:9", "step 'a' depends on itself"));
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n"
                                  "  - {id: a, run: x, depends_on: [b]}\n"
                                  "  - {id: b, run: x, depends_on: [c]}\n"
                                  "  - {id: c, run: x, depends_on: [a]}\n"
                                  "  - {id: d, run: x, depends_on: [a]}\n"),
                        Errc::kBadReference, "s.yaml:5:34", "dependency cycle: a -> b -> c -> a"));
}

TEST(SchemaReject, DuplicateDependency) {
  EXPECT_TRUE(failsWith(parseText("name: a\nsteps:\n  - {id: a, run: x}\n"
                                  "  - {id: b, run: x, depends_on: [a, a]}\n"),
                        Errc::kBadValue, "s.yaml:4:37", "lists 'a' in 'depends_on' twice"));
}

TEST(SchemaLoad, LongDependencyChainDoesNotRecurse) {
  std::string text = "name: chain\nsteps:\n  - {id: s0, run: x}\n";
  for (int i = 1; i < 5000; ++i) {
    text += "  - {id: s" + std::to_string(i) + ", run: x, depends_on: [s" + std::to_string(i - 1) +
            "]}\n";
  }
  auto schema = parseText(text);
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->steps.size(), 5000u);
  EXPECT_EQ(schema->find("s4999"), &schema->steps[4999]);
}

// ---- Robustness ------------------------------------------------------------------------------

// 2000 random mutations of a valid schema never crash or throw, and every failure says why.
// std::mt19937's output sequence is fixed by the standard, and only raw outputs are used, so
// the inputs are the same on every platform.
TEST(SchemaRobustness, RandomMutationsParseOrFailCleanly) {
  const std::string valid =
      "name: adp\ndefaults: {timeout: 30m, max_attempts: 3}\nsteps:\n"
      "  - id: common\n    run: bazel build //common/...\n"
      "  - id: ui\n    run: \"bazel build //ui/...\"\n    timeout: 1h30m\n"
      "    depends_on: [common]\n"
      "  - {id: pkg, run: 'tar czf a.tgz .', depends_on: [ui, common], max_attempts: 5}\n";
  const std::string interesting = ":-[]{}#&*!|>'\"%@`,? \n\t\\0123456789abchmsx~";
  std::mt19937 rng(20240601u);
  const auto below = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

  int parsed = 0;
  int rejected = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string text = valid;
    const std::size_t mutations = 1 + below(4);
    for (std::size_t m = 0; m < mutations && !text.empty(); ++m) {
      switch (below(4)) {
        case 0:  // replace a byte with any byte
          text[below(text.size())] = static_cast<char>(rng() & 0xff);
          break;
        case 1:  // replace a byte with a YAML-significant one
          text[below(text.size())] = interesting[below(interesting.size())];
          break;
        case 2:  // truncate
          text.resize(below(text.size()));
          break;
        default:  // insert a short run of significant bytes
          text.insert(below(text.size() + 1), below(3) + 1, interesting[below(interesting.size())]);
          break;
      }
    }
    auto schema = parse(text, "fuzz.yaml");
    if (schema.has_value()) {
      ++parsed;
      EXPECT_FALSE(schema->steps.empty());
      EXPECT_EQ(schema->digest, sha256Hex(canonicalForm(*schema)));
    } else {
      ++rejected;
      EXPECT_EQ(schema.error().code().category(), schemaCategory());
      EXPECT_THAT(schema.error().message(), StartsWith("fuzz.yaml"));
      EXPECT_GT(schema.error().message().size(), std::string("fuzz.yaml: ").size())
          << "round " << round;
    }
  }
  // Both outcomes occur, so the test exercises the accept and the reject paths.
  EXPECT_GT(parsed, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace td::schema

namespace td::schema {
namespace {

// ---- Retry policy ------------------------------------------------------------------------------

TEST(SchemaRetry, BuiltInPolicy) {
  auto schema = parse("name: a\nsteps: [{id: a, run: x}]\n", "s.yaml");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_EQ(schema->steps[0].retry, RetryPolicy{});
  EXPECT_TRUE(schema->steps[0].retry.retry_on_any_exit);
  EXPECT_FALSE(schema->steps[0].retry.count_lost_attempts);
}

TEST(SchemaRetry, DefaultsAndStepOverridesMerge) {
  auto schema = parse(R"(name: a
defaults:
  backoff: {initial: 2s, multiplier: 3, max: 1m, jitter: 0}
  retry_on: [timeout, lost, 137]
  count_lost_attempts: true
steps:
  - id: compile
    run: make
    retry_on: [lost]
    backoff: {initial: 0s}
  - id: test
    run: make test
    max_lost_attempts: 7
)",
                      "s.yaml");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  const RetryPolicy& compile = schema->steps[0].retry;
  EXPECT_EQ(compile.backoff_initial, std::chrono::milliseconds(0));
  EXPECT_EQ(compile.backoff_multiplier, 3.0);
  EXPECT_FALSE(compile.retry_on_any_exit);
  EXPECT_TRUE(compile.retry_on_exit_codes.empty());
  EXPECT_FALSE(compile.retry_on_timeout);
  EXPECT_TRUE(compile.retry_on_lost);
  EXPECT_TRUE(compile.count_lost_attempts);
  const RetryPolicy& test = schema->steps[1].retry;
  EXPECT_EQ(test.backoff_initial, std::chrono::seconds(2));
  EXPECT_EQ(test.retry_on_exit_codes, std::vector<int>{137});
  EXPECT_TRUE(test.retry_on_timeout);
  EXPECT_EQ(test.max_lost_attempts, 7u);
}

TEST(SchemaRetry, PolicyIsPartOfTheDigest) {
  auto plain = parse("name: a\nsteps: [{id: a, run: x}]\n", "s.yaml");
  auto strict = parse("name: a\nsteps: [{id: a, run: x, retry_on: [lost]}]\n", "s.yaml");
  ASSERT_TRUE(plain && strict);
  EXPECT_NE(plain->digest, strict->digest);
}

TEST(SchemaRetry, RejectsBadPolicies) {
  struct Case {
    const char* yaml;
    Errc code;
    const char* where;
    const char* detail;
  };
  const Case cases[] = {
      {"name: a\nsteps: [{id: a, run: x, retry_on: [sometimes]}]\n", Errc::kBadValue,
       "s.yaml:2:36", "'retry_on' entries are exit, timeout, lost or an exit code"},
      {"name: a\nsteps: [{id: a, run: x, retry_on: [exit, 2]}]\n", Errc::kBadValue,
       "s.yaml:2:35", "both 'exit'"},
      {"name: a\nsteps: [{id: a, run: x, retry_on: [256]}]\n", Errc::kBadValue, "s.yaml:2:36",
       "exit code 1..255"},
      {"name: a\nsteps: [{id: a, run: x, retry_on: lost}]\n", Errc::kBadValue, "s.yaml:2:35",
       "must be a list"},
      {"name: a\ndefaults: {backoff: {initial: 1m, max: 1s}}\nsteps: [{id: a, run: x}]\n",
       Errc::kBadValue, "s.yaml:2:21", "'max' must not be shorter"},
      {"name: a\ndefaults: {backoff: {multiplier: 0.5}}\nsteps: [{id: a, run: x}]\n",
       Errc::kBadValue, "s.yaml:2:34", "'multiplier' must be a number in [1, 100]"},
      {"name: a\ndefaults: {backoff: {jitter: 2}}\nsteps: [{id: a, run: x}]\n", Errc::kBadValue,
       "s.yaml:2:30", "'jitter' must be a number in [0, 1]"},
      {"name: a\ndefaults: {backoff: {wait: 1s}}\nsteps: [{id: a, run: x}]\n", Errc::kUnknownKey,
       "s.yaml:2:22", "unknown key 'wait' in backoff"},
      {"name: a\ndefaults: {count_lost_attempts: maybe}\nsteps: [{id: a, run: x}]\n",
       Errc::kBadValue, "s.yaml:2:33", "must be true or false"},
      {"name: a\nsteps: [{id: a, run: x, max_lost_attempts: 0}]\n", Errc::kBadValue,
       "s.yaml:2:44", "'max_lost_attempts' must be an integer in [1, 100]"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(failsWith(parse(c.yaml, "s.yaml"), c.code, c.where, c.detail)) << c.yaml;
  }
}

// ---- Speculative attempts -----------------------------------------------------------------------

TEST(SchemaSpeculative, OnByDefaultOffPerStepOrInDefaults) {
  auto schema = parse(R"(name: a
defaults: {speculative: false}
steps:
  - id: deploy
    run: ./deploy
  - id: build
    run: make
    speculative: true
)",
                      "s.yaml");
  ASSERT_TRUE(schema.has_value()) << schema.error().message();
  EXPECT_FALSE(schema->steps[0].speculative);
  EXPECT_TRUE(schema->steps[1].speculative);
  auto plain = parse("name: a\nsteps: [{id: a, run: x}, {id: b, run: y, speculative: false}]\n",
                     "s.yaml");
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_TRUE(plain->steps[0].speculative);
  EXPECT_FALSE(plain->steps[1].speculative);
  // The other forms take it from defaults.
  auto tasks = parse("name: t\ncommand: run {task}\ndefaults: {speculative: false}\n"
                     "tasks: [{task: x}]\n",
                     "t.yaml");
  ASSERT_TRUE(tasks.has_value()) << tasks.error().message();
  EXPECT_FALSE(tasks->steps[0].speculative);
}

TEST(SchemaSpeculative, OnlyFalseChangesTheDigest) {
  auto plain = parse("name: a\nsteps: [{id: a, run: x}]\n", "s.yaml");
  auto on = parse("name: a\nsteps: [{id: a, run: x, speculative: true}]\n", "s.yaml");
  auto off = parse("name: a\nsteps: [{id: a, run: x, speculative: false}]\n", "s.yaml");
  ASSERT_TRUE(plain && on && off);
  EXPECT_EQ(plain->digest, on->digest);   // schemas that do not say keep their digests
  EXPECT_NE(plain->digest, off->digest);
}

TEST(SchemaSpeculative, RejectsWhatIsNotABoolean) {
  EXPECT_TRUE(failsWith(parse("name: a\nsteps: [{id: a, run: x, speculative: no}]\n", "s.yaml"),
                        Errc::kBadValue, "s.yaml:2:38", "'speculative' must be true or false"));
  EXPECT_TRUE(failsWith(parse("name: a\ndefaults: {speculative: 1}\nsteps: [{id: a, run: x}]\n",
                              "s.yaml"),
                        Errc::kBadValue, "s.yaml:2:25", "'speculative' must be true or false"));
}

}  // namespace
}  // namespace td::schema
