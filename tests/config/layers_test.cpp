// td_config: flags > TD_* environment > --config file > defaults, for every kind of option
// (integer, string, flag, negated flag, repeatable, the librdkafka map), the errors that say
// where, and --print-config with secrets redacted.
#include "config/layers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "tests/support/process.h"

namespace td::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// A CLI11 app shaped like td-coordinator's and td-worker's, plus the layers.
struct Harness {
  CLI::App app{"test"};
  std::string bootstrap;
  int lease_ms = 5000;
  int heartbeat_ms = 1000;
  std::string prefix = "td.";
  std::string group = "td-coordinator";
  bool exactly_once = false;
  bool step_stats = true;
  std::vector<std::string> builds_on;
  std::vector<std::string> properties;
  std::vector<std::string> admin_properties;
  std::string repository;
  std::string repo_state;
  std::ostringstream out;
  std::ostringstream err;
  std::optional<Layers> layers;

  Harness() {
    app.add_option("--bootstrap-server", bootstrap, "servers")->required();
    app.add_option("-X", properties, "librdkafka property key=value");
    app.add_option("--lease-ms", lease_ms, "lease")
        ->check(CLI::Range(500, 3600 * 1000))
        ->capture_default_str();
    app.add_option("--heartbeat-interval-ms", heartbeat_ms, "heartbeat")->capture_default_str();
    app.add_option("--topic-prefix", prefix, "prefix")->capture_default_str();
    app.add_option("--consumer-group", group, "group")->capture_default_str();
    app.add_flag("--exactly-once", exactly_once, "transactions");
    app.add_flag("!--no-step-stats", step_stats, "no history");
    app.add_option("--builds-on", builds_on, "refs (repeatable)");
    app.add_option("--admin-property", admin_properties, "KEY=VALUE (repeatable)");
    auto* repo = app.add_option("--repository", repository, "repository");
    app.add_option("--repo-state", repo_state, "file")->excludes(repo);
    layers.emplace(app, "td-test");
  }

  // The exit code parse() asks for, or -1 when the program would go on.
  int run(std::vector<std::string> args, const Environment& env = {}) {
    args.insert(args.begin(), "td-test");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    auto exit = layers->parse(static_cast<int>(argv.size()), argv.data(), env, out, err);
    return exit ? *exit : -1;
  }

  // {property -> value} of the merged -X option.
  std::map<std::string, std::string> kafka() const {
    std::map<std::string, std::string> out_map;
    for (const auto& p : properties) {
      auto eq = p.find('=');
      out_map[p.substr(0, eq)] = p.substr(eq + 1);
    }
    return out_map;
  }
};

std::string writeFile(const testing::TempDir& dir, const std::string& name,
                      const std::string& text) {
  auto path = dir.path() / name;
  std::ofstream(path) << text;
  return path.string();
}

TEST(ConfigLayers, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml",
                              "bootstrap-server: file:9092\n"
                              "lease-ms: 4000\n"
                              "heartbeat-interval-ms: 700\n"
                              "topic-prefix: file.\n"
                              "builds-on: [f1, f2]\n"
                              "kafka:\n"
                              "  a.flag: file\n"
                              "  b.env: file\n"
                              "  c.file: file\n");
  Harness h;
  const Environment env = {{"TD_LEASE_MS", "3000"},
                           {"TD_HEARTBEAT_INTERVAL_MS", "600"},
                           {"TD_BUILDS_ON", "e1,e2,e3"},
                           {"TD_KAFKA_A_FLAG", "env"},
                           {"TD_KAFKA_B_ENV", "env"}};
  ASSERT_EQ(h.run({"--config", file, "--lease-ms", "2000", "--builds-on", "x", "-X", "a.flag=flag",
                   "-X", "d.twice=1", "-X", "d.twice=2"},
                  env),
            -1)
      << h.err.str();
  // Integer: all three layers set it; the flag wins.
  EXPECT_EQ(h.lease_ms, 2000);
  EXPECT_EQ(h.layers->origin("lease-ms").source, Source::kFlag);
  // Integer: environment and file; the environment wins.
  EXPECT_EQ(h.heartbeat_ms, 600);
  EXPECT_EQ(h.layers->origin("heartbeat-interval-ms").where, "TD_HEARTBEAT_INTERVAL_MS");
  // String: only the file.
  EXPECT_EQ(h.prefix, "file.");
  EXPECT_EQ(h.layers->origin("topic-prefix").where, file + ":4");
  EXPECT_EQ(h.bootstrap, "file:9092");
  // Untouched: the default.
  EXPECT_EQ(h.group, "td-coordinator");
  EXPECT_EQ(h.layers->origin("consumer-group").source, Source::kDefault);
  // Repeatable: the highest layer replaces the lists below it, it does not append to them.
  EXPECT_THAT(h.builds_on, ::testing::ElementsAre("x"));
  // librdkafka properties merge key by key; a repeated -X keeps the last.
  EXPECT_EQ(h.kafka(),
            (std::map<std::string, std::string>{
                {"a.flag", "flag"}, {"b.env", "env"}, {"c.file", "file"}, {"d.twice", "2"}}));
  EXPECT_EQ(h.layers->kafkaOrigin("a.flag")->source, Source::kFlag);
  EXPECT_EQ(h.layers->kafkaOrigin("b.env")->where, "TD_KAFKA_B_ENV");
  EXPECT_EQ(h.layers->kafkaOrigin("c.file")->where, file + ":9");
}

TEST(ConfigLayers, EnvironmentBeatsFileForFlagsAndLists) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml",
                              "bootstrap-server: b\nexactly-once: false\nno-step-stats: false\n"
                              "builds-on: [f1]\n");
  Harness h;
  ASSERT_EQ(
      h.run({"--config", file},
            {{"TD_EXACTLY_ONCE", "true"}, {"TD_NO_STEP_STATS", "yes"}, {"TD_BUILDS_ON", "e1,e2"}}),
      -1)
      << h.err.str();
  EXPECT_TRUE(h.exactly_once);
  EXPECT_FALSE(h.step_stats);
  EXPECT_THAT(h.builds_on, ::testing::ElementsAre("e1", "e2"));
  EXPECT_EQ(h.layers->origin("exactly-once").where, "TD_EXACTLY_ONCE");
}

TEST(ConfigLayers, FileBeatsDefaultsForEveryKind) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml",
                              "bootstrap_server: b\n"  // '_' is accepted for '-'
                              "exactly-once: true\nno-step-stats: true\nbuilds-on: [f1, f2]\n"
                              "lease-ms: 1500\n");
  Harness h;
  ASSERT_EQ(h.run({"--config", file}), -1) << h.err.str();
  EXPECT_EQ(h.bootstrap, "b");
  EXPECT_TRUE(h.exactly_once);
  EXPECT_FALSE(h.step_stats);
  EXPECT_THAT(h.builds_on, ::testing::ElementsAre("f1", "f2"));
  EXPECT_EQ(h.lease_ms, 1500);
}

TEST(ConfigLayers, ConfigFileFromTdConfigVariable) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml", "bootstrap-server: from-file\n");
  Harness h;
  ASSERT_EQ(h.run({}, {{"TD_CONFIG", file}}), -1) << h.err.str();
  EXPECT_EQ(h.bootstrap, "from-file");
}

TEST(ConfigLayers, RequiredOptionMayComeFromAnyLayerAndIsNamedWhenMissing) {
  Harness from_env;
  EXPECT_EQ(from_env.run({}, {{"TD_BOOTSTRAP_SERVER", "e:1"}}), -1) << from_env.err.str();
  EXPECT_EQ(from_env.bootstrap, "e:1");
  Harness missing;
  EXPECT_EQ(missing.run({}, {{"TD_BOOTSTRAP_SERVER", ""}}), 2);  // empty counts as unset
  EXPECT_THAT(missing.err.str(), HasSubstr("missing --bootstrap-server"));
  EXPECT_THAT(missing.err.str(), HasSubstr("TD_BOOTSTRAP_SERVER"));
}

TEST(ConfigLayers, UnknownKeyIsAnErrorNamingKeyFileAndLine) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml", "bootstrap-server: b\n\nleese-ms: 10\n");
  Harness h;
  EXPECT_EQ(h.run({"--config", file}), 2);
  EXPECT_THAT(h.err.str(), HasSubstr(file + ":3:1: unknown key 'leese-ms'"));
  EXPECT_THAT(h.err.str(), HasSubstr("lease-ms"));  // the allowed keys are listed
}

TEST(ConfigLayers, YamlSyntaxErrorNamesFileAndLine) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml", "bootstrap-server: b\nkafka: {a: [1}\n");
  Harness h;
  EXPECT_EQ(h.run({"--config", file}), 2);
  EXPECT_THAT(h.err.str(), HasSubstr(file + ":2:"));
  EXPECT_THAT(h.err.str(), HasSubstr("YAML syntax error"));
}

TEST(ConfigLayers, BadValuesSayWhere) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml", "bootstrap-server: b\nlease-ms: 10\n");
  Harness in_file;
  EXPECT_EQ(in_file.run({"--config", file}), 2);
  EXPECT_THAT(in_file.err.str(), HasSubstr(file + ":2:11: --lease-ms"));
  Harness in_env;
  EXPECT_EQ(in_env.run({"--bootstrap-server", "b"}, {{"TD_LEASE_MS", "soon"}}), 2);
  EXPECT_THAT(in_env.err.str(), HasSubstr("TD_LEASE_MS: --lease-ms"));
  Harness bad_flag;
  EXPECT_EQ(bad_flag.run({"--bootstrap-server", "b"}, {{"TD_EXACTLY_ONCE", "maybe"}}), 2);
  EXPECT_THAT(bad_flag.err.str(), HasSubstr("TD_EXACTLY_ONCE"));
  Harness list_for_scalar;
  const auto list = writeFile(dir, "l.yaml", "bootstrap-server: [a, b]\n");
  EXPECT_EQ(list_for_scalar.run({"--config", list}), 2);
  EXPECT_THAT(list_for_scalar.err.str(), HasSubstr("takes one value"));
  Harness duplicate;
  const auto dup = writeFile(dir, "d.yaml", "bootstrap-server: a\nbootstrap-server: b\n");
  EXPECT_EQ(duplicate.run({"--config", dup}), 2);
  EXPECT_THAT(duplicate.err.str(),
              HasSubstr(dup + ":2:1: duplicate key 'bootstrap-server' (first on line 1)"));
  Harness kafka_list;
  const auto kl = writeFile(dir, "k.yaml", "kafka:\n  debug: [a, b]\n");
  EXPECT_EQ(kafka_list.run({"--config", kl, "--bootstrap-server", "b"}), 2);
  EXPECT_THAT(kafka_list.err.str(), HasSubstr(kl + ":2:3: kafka:"));
  Harness kafka_duplicate;
  const auto kd = writeFile(dir, "kd.yaml", "kafka:\n  linger.ms: 1\n  linger.ms: 2\n");
  EXPECT_EQ(kafka_duplicate.run({"--config", kd, "--bootstrap-server", "b"}), 2);
  EXPECT_THAT(kafka_duplicate.err.str(),
              HasSubstr(kd + ":3:3: kafka: duplicate property 'linger.ms' (first on line 2)"));
  Harness missing_file;
  EXPECT_EQ(missing_file.run({"--config", (dir.path() / "none.yaml").string()}), 2);
  EXPECT_THAT(missing_file.err.str(), HasSubstr("none.yaml: cannot read"));
  Harness bad_x;
  EXPECT_EQ(bad_x.run({"--bootstrap-server", "b", "-X", "sasl.password:hunter2"}), 2);
  EXPECT_THAT(bad_x.err.str(), Not(HasSubstr("hunter2")));
}

TEST(ConfigLayers, ExcludedOptionYieldsToAHigherLayerAndClashesInOne) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml", "bootstrap-server: b\nrepository: r\n");
  Harness h;
  ASSERT_EQ(h.run({"--config", file, "--repo-state", "s.yaml"}), -1) << h.err.str();
  EXPECT_EQ(h.repo_state, "s.yaml");
  EXPECT_EQ(h.repository, "");
  const auto both =
      writeFile(dir, "both.yaml", "bootstrap-server: b\nrepository: r\nrepo-state: s\n");
  Harness clash;
  EXPECT_EQ(clash.run({"--config", both}), 2);
  EXPECT_THAT(clash.err.str(), HasSubstr("excludes"));
}

TEST(ConfigLayers, PrintConfigShowsOriginsAndRedactsSecretsFromEveryLayer) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml",
                              "bootstrap-server: b:9093\n"
                              "kafka:\n"
                              "  security.protocol: SASL_SSL\n"
                              "  sasl.password: file-secret-1\n"
                              "  ssl.key.pem: file-secret-2\n"
                              "  ssl.key.location: /etc/td/client.key\n");
  Harness h;
  ASSERT_EQ(
      h.run({"--config", file, "--print-config", "-X", "sasl.oauthbearer.config=flag-secret-3",
             "--lease-ms", "2500"},
            {{"TD_KAFKA_SSL_KEY_PASSWORD", "env-secret-4"}, {"TD_KAFKA_SASL_USERNAME", "td"}}),
      0)
      << h.err.str();
  const std::string printed = h.out.str();
  for (const char* secret : {"file-secret-1", "file-secret-2", "flag-secret-3", "env-secret-4"}) {
    EXPECT_THAT(printed, Not(HasSubstr(secret)));
  }
  EXPECT_THAT(printed, HasSubstr("sasl.password: \"[redacted]\"  # file " + file + ":4"));
  EXPECT_THAT(printed,
              HasSubstr("ssl.key.password: \"[redacted]\"  # env TD_KAFKA_SSL_KEY_PASSWORD"));
  EXPECT_THAT(printed, HasSubstr("sasl.oauthbearer.config: \"[redacted]\"  # flag -X"));
  EXPECT_THAT(printed, HasSubstr("sasl.username: td  # env TD_KAFKA_SASL_USERNAME"));
  EXPECT_THAT(printed, HasSubstr("ssl.key.location: /etc/td/client.key  # file"));
  EXPECT_THAT(printed, HasSubstr("lease-ms: 2500  # flag --lease-ms"));
  EXPECT_THAT(printed, HasSubstr("consumer-group: td-coordinator  # default"));
  EXPECT_THAT(printed, HasSubstr("no-step-stats: false  # default"));
  EXPECT_THAT(h.layers->secretEnvironmentNames(),
              UnorderedElementsAre("TD_KAFKA_SSL_KEY_PASSWORD"));
}

// Options whose values are KEY=VALUE entries (td-coordinator's --admin-property) hide the
// values of secret keys, from a file and from a flag alike.
TEST(ConfigLayers, PrintConfigRedactsSecretValuesOfKeyValueOptions) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml",
                              "bootstrap-server: b:9093\n"
                              "admin-property: [sasl.username=admin, sasl.password=file-secret-5]\n");
  Harness from_file;
  ASSERT_EQ(from_file.run({"--config", file, "--print-config"}), 0) << from_file.err.str();
  EXPECT_THAT(from_file.out.str(), Not(HasSubstr("file-secret-5")));
  EXPECT_THAT(from_file.out.str(),
              HasSubstr("admin-property: [sasl.username=admin, \"sasl.password=[redacted]\"]"));
  Harness from_flag;
  ASSERT_EQ(from_flag.run({"--bootstrap-server", "b:1", "--print-config", "--admin-property",
                           "sasl.oauthbearer.config=flag-secret-6"}),
            0);
  EXPECT_THAT(from_flag.out.str(), Not(HasSubstr("flag-secret-6")));
  EXPECT_THAT(from_flag.out.str(), HasSubstr("sasl.oauthbearer.config=[redacted]"));
}

TEST(ConfigLayers, WarnsWhenAConfigFileWithSecretsIsReadableByOthers) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.yaml", "bootstrap-server: b\nkafka: {sasl.password: x}\n");
  std::filesystem::permissions(file, std::filesystem::perms(0644));
  Harness open_file;
  ASSERT_EQ(open_file.run({"--config", file}), -1) << open_file.err.str();
  EXPECT_THAT(open_file.err.str(), HasSubstr("holds secrets (sasl.password)"));
  EXPECT_THAT(open_file.err.str(), HasSubstr("mode 0644"));
  std::filesystem::permissions(file, std::filesystem::perms(0600));
  Harness private_file;
  ASSERT_EQ(private_file.run({"--config", file}), -1);
  EXPECT_EQ(private_file.err.str(), "");
}

TEST(ConfigLayers, PrintedConfigReadsBackToTheSameValues) {
  testing::TempDir dir;
  Harness first;
  ASSERT_EQ(first.run({"--print-config", "--bootstrap-server", "h1:1,h2:2", "--topic-prefix",
                       "a b#c", "--no-step-stats", "--builds-on", "r1", "--builds-on", "r:2", "-X",
                       "client.rack=rack: 1"}),
            0)
      << first.err.str();
  const auto file = writeFile(dir, "printed.yaml", first.out.str());
  Harness second;
  ASSERT_EQ(second.run({"--config", file}), -1) << second.err.str() << first.out.str();
  EXPECT_EQ(second.bootstrap, "h1:1,h2:2");
  EXPECT_EQ(second.prefix, "a b#c");
  EXPECT_FALSE(second.step_stats);
  EXPECT_EQ(second.builds_on, first.builds_on);
  EXPECT_EQ(second.kafka(), first.kafka());
}

TEST(ConfigLayers, HelpExitsZeroAndMarksLayeredRequiredOptions) {
  Harness h;
  EXPECT_EQ(h.run({"--help"}), 0);
  EXPECT_THAT(h.out.str(), HasSubstr("--config"));
  EXPECT_THAT(h.out.str(), HasSubstr("(required)"));
}

TEST(ConfigLayers, EnvironmentNames) {
  EXPECT_EQ(envName("heartbeat-interval-ms"), "TD_HEARTBEAT_INTERVAL_MS");
  EXPECT_EQ(kafkaEnvName("sasl.mechanism"), "TD_KAFKA_SASL_MECHANISM");
}

// Why td_config layers the sources itself: CLI11 2.1.2's own set_config() + envname() read the
// file first and then skip the environment for every option the file set, so the file wins.
TEST(ConfigLayers, Cli11OwnConfigSupportLetsTheFileBeatTheEnvironment) {
  testing::TempDir dir;
  const auto file = writeFile(dir, "c.ini", "lease-ms=4000\n");
  CLI::App app;
  int lease_ms = 0;
  app.add_option("--lease-ms", lease_ms)->envname("TD_TEST_CLI11_LEASE_MS");
  app.set_config("--config");
  ::setenv("TD_TEST_CLI11_LEASE_MS", "3000", 1);
  std::vector<std::string> args = {file, "--config"};  // CLI11 takes them reversed
  app.parse(args);
  ::unsetenv("TD_TEST_CLI11_LEASE_MS");
  EXPECT_EQ(lease_ms, 4000);  // not 3000: hence config/layers.h
}

}  // namespace
}  // namespace td::config
