// Detection of repository, base ref and change ref from CI variables and git facts
// (worker/ci_detect.h): one fixture per CI and build kind, URL normalisation, precedence.
#include "worker/ci_detect.h"
#include "worker/git_facts.h"

#include <gtest/gtest.h>

namespace td::worker {
namespace {

const std::string kSha1 = "1111111111111111111111111111111111111111";
const std::string kSha2 = "2222222222222222222222222222222222222222";
const std::string kGitHead = "9999999999999999999999999999999999999999";

struct Case {
  std::string name;
  EnvMap env;
  GitFacts git;
  std::string ci;
  std::string repository, repository_source;
  std::string base_ref, base_ref_source;
  std::string change_ref, change_ref_source;
  std::string build_kind_has;   // substring of build_kind, "" = not checked
};

GitFacts checkout() {
  return GitFacts{.origin_url = "git@github.com:org/app.git",
                  .head = kGitHead,
                  .branch = "feature",
                  .upstream_branch = "feature",
                  .default_branch = "main"};
}

std::vector<Case> cases() {
  return {
      {.name = "GitHubPushOnBranch",
       .env = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
               {"GITHUB_SERVER_URL", "https://github.com"}, {"GITHUB_SHA", kSha1},
               {"GITHUB_REF", "refs/heads/main"}, {"GITHUB_REF_NAME", "main"},
               {"GITHUB_EVENT_NAME", "push"}},
       .ci = "GitHub Actions",
       .repository = "github.com/org/app",
       .repository_source = "env GITHUB_SERVER_URL + GITHUB_REPOSITORY",
       .base_ref = "main", .base_ref_source = "env GITHUB_REF",
       .change_ref = kSha1, .change_ref_source = "env GITHUB_SHA",
       .build_kind_has = "branch main"},
      {.name = "GitHubPullRequestUsesBaseRefAndMergeCommit",
       .env = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
               {"GITHUB_SERVER_URL", "https://github.com"}, {"GITHUB_SHA", kSha2},
               {"GITHUB_REF", "refs/pull/17/merge"}, {"GITHUB_HEAD_REF", "feature"},
               {"GITHUB_BASE_REF", "main"}, {"GITHUB_EVENT_NAME", "pull_request"}},
       .git = checkout(),
       .ci = "GitHub Actions",
       .repository = "github.com/org/app",
       .repository_source = "env GITHUB_SERVER_URL + GITHUB_REPOSITORY",
       .base_ref = "main", .base_ref_source = "env GITHUB_BASE_REF",
       .change_ref = kSha2, .change_ref_source = "env GITHUB_SHA",
       .build_kind_has = "pull request 17 from feature"},
      {.name = "GitHubPullRequestTargetTakesTheCheckout",
       .env = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
               {"GITHUB_SHA", kSha1}, {"GITHUB_REF", "refs/heads/main"},
               {"GITHUB_BASE_REF", "main"}, {"GITHUB_EVENT_NAME", "pull_request_target"}},
       .git = checkout(),
       .ci = "GitHub Actions",
       .repository = "github.com/org/app", .repository_source = "env GITHUB_REPOSITORY",
       .base_ref = "main", .base_ref_source = "env GITHUB_BASE_REF",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "GitHubEnterpriseServerIsLowerCased",
       .env = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "Org/App"},
               {"GITHUB_SERVER_URL", "https://GHE.Example.com/"}, {"GITHUB_SHA", kSha1},
               {"GITHUB_REF", "refs/tags/v1.2"}},
       .ci = "GitHub Actions",
       .repository = "ghe.example.com/Org/App",
       .repository_source = "env GITHUB_SERVER_URL + GITHUB_REPOSITORY",
       .base_ref = "v1.2", .base_ref_source = "env GITHUB_REF",
       .change_ref = kSha1, .change_ref_source = "env GITHUB_SHA",
       .build_kind_has = "tag v1.2"},
      {.name = "GitHubMissingShaFallsBackToGit",
       .env = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"}},
       .git = checkout(),
       .ci = "GitHub Actions",
       .repository = "github.com/org/app", .repository_source = "env GITHUB_REPOSITORY",
       .base_ref = "feature", .base_ref_source = "git upstream of branch feature",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "GitLabBranchPipeline",
       .env = {{"GITLAB_CI", "true"}, {"CI_PROJECT_URL", "https://gitlab.example.com/group/app"},
               {"CI_REPOSITORY_URL",
                "https://gitlab-ci-token:glcbt-SECRET@gitlab.example.com/group/app.git"},
               {"CI_COMMIT_SHA", kSha1}, {"CI_COMMIT_REF_NAME", "main"},
               {"CI_DEFAULT_BRANCH", "main"}},
       .ci = "GitLab CI",
       .repository = "gitlab.example.com/group/app", .repository_source = "env CI_PROJECT_URL",
       .base_ref = "main", .base_ref_source = "env CI_COMMIT_REF_NAME",
       .change_ref = kSha1, .change_ref_source = "env CI_COMMIT_SHA",
       .build_kind_has = "ref main"},
      {.name = "GitLabMergeRequestUsesTargetBranch",
       .env = {{"GITLAB_CI", "true"}, {"CI_PROJECT_URL", "https://gitlab.com/group/sub/app"},
               {"CI_COMMIT_SHA", kSha2}, {"CI_COMMIT_REF_NAME", "feature"},
               {"CI_MERGE_REQUEST_IID", "42"},
               {"CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature"},
               {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "develop"},
               {"CI_MERGE_REQUEST_DIFF_BASE_SHA", kSha1}},
       .ci = "GitLab CI",
       .repository = "gitlab.com/group/sub/app", .repository_source = "env CI_PROJECT_URL",
       .base_ref = "develop", .base_ref_source = "env CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
       .change_ref = kSha2, .change_ref_source = "env CI_COMMIT_SHA",
       .build_kind_has = "merge request !42 from feature"},
      {.name = "GitLabRepositoryUrlLosesItsToken",
       .env = {{"GITLAB_CI", "true"},
               {"CI_REPOSITORY_URL",
                "https://gitlab-ci-token:glcbt-SECRET@gitlab.example.com/group/app.git"},
               {"CI_COMMIT_SHA", kSha1}, {"CI_COMMIT_REF_NAME", "main"}},
       .ci = "GitLab CI",
       .repository = "gitlab.example.com/group/app",
       .repository_source = "env CI_REPOSITORY_URL (credentials removed)",
       .base_ref = "main", .base_ref_source = "env CI_COMMIT_REF_NAME",
       .change_ref = kSha1, .change_ref_source = "env CI_COMMIT_SHA"},
      {.name = "JenkinsBranchBuild",
       .env = {{"JENKINS_URL", "https://ci.example.com/"},
               {"GIT_URL", "https://jenkins:SECRET@git.example.com/org/app.git"},
               {"GIT_BRANCH", "origin/release-1"}, {"GIT_COMMIT", kSha1}},
       .ci = "Jenkins",
       .repository = "git.example.com/org/app",
       .repository_source = "env GIT_URL (credentials removed)",
       .base_ref = "release-1", .base_ref_source = "env GIT_BRANCH",
       .change_ref = kSha1, .change_ref_source = "env GIT_COMMIT",
       .build_kind_has = "branch release-1"},
      {.name = "JenkinsMultibranchPullRequest",
       .env = {{"JENKINS_URL", "https://ci.example.com/"},
               {"GIT_URL", "git@git.example.com:org/app.git"}, {"BRANCH_NAME", "PR-5"},
               {"GIT_BRANCH", "PR-5"}, {"GIT_COMMIT", kSha2}, {"CHANGE_ID", "5"},
               {"CHANGE_TARGET", "main"}, {"CHANGE_BRANCH", "feature"}},
       .ci = "Jenkins",
       .repository = "git.example.com/org/app", .repository_source = "env GIT_URL",
       .base_ref = "main", .base_ref_source = "env CHANGE_TARGET",
       .change_ref = kSha2, .change_ref_source = "env GIT_COMMIT",
       .build_kind_has = "change 5 from feature"},
      {.name = "JenkinsWithoutGitVariablesUsesTheCheckout",
       .env = {{"JENKINS_URL", "https://ci.example.com/"}},
       .git = checkout(),
       .ci = "Jenkins",
       .repository = "github.com/org/app", .repository_source = "git remote origin",
       .base_ref = "feature", .base_ref_source = "git upstream of branch feature",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "BuildkiteBranchBuild",
       .env = {{"BUILDKITE", "true"}, {"BUILDKITE_REPO", "git@github.com:org/app.git"},
               {"BUILDKITE_BRANCH", "main"}, {"BUILDKITE_COMMIT", kSha1},
               {"BUILDKITE_PULL_REQUEST", "false"}},
       .ci = "Buildkite",
       .repository = "github.com/org/app", .repository_source = "env BUILDKITE_REPO",
       .base_ref = "main", .base_ref_source = "env BUILDKITE_BRANCH",
       .change_ref = kSha1, .change_ref_source = "env BUILDKITE_COMMIT",
       .build_kind_has = "branch main"},
      {.name = "BuildkitePullRequest",
       .env = {{"BUILDKITE", "true"}, {"BUILDKITE_REPO", "https://github.com/org/app.git"},
               {"BUILDKITE_BRANCH", "feature"}, {"BUILDKITE_COMMIT", kSha2},
               {"BUILDKITE_PULL_REQUEST", "9"},
               {"BUILDKITE_PULL_REQUEST_BASE_BRANCH", "main"}},
       .ci = "Buildkite",
       .repository = "github.com/org/app", .repository_source = "env BUILDKITE_REPO",
       .base_ref = "main", .base_ref_source = "env BUILDKITE_PULL_REQUEST_BASE_BRANCH",
       .change_ref = kSha2, .change_ref_source = "env BUILDKITE_COMMIT",
       .build_kind_has = "pull request 9"},
      {.name = "BuildkiteCommitHeadIsNotAChange",
       .env = {{"BUILDKITE", "true"}, {"BUILDKITE_REPO", "git@github.com:org/app.git"},
               {"BUILDKITE_BRANCH", "main"}, {"BUILDKITE_COMMIT", "HEAD"},
               {"BUILDKITE_PULL_REQUEST", "false"}},
       .git = checkout(),
       .ci = "Buildkite",
       .repository = "github.com/org/app", .repository_source = "env BUILDKITE_REPO",
       .base_ref = "main", .base_ref_source = "env BUILDKITE_BRANCH",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      // Outside CI the base is the branch changes merge into, not the branch one is on.
      {.name = "NoCiUsesTheCheckoutAndTheRemotesDefaultBranch",
       .env = {{"HOME", "/root"}},
       .git = checkout(),
       .ci = "",
       .repository = "github.com/org/app", .repository_source = "git remote origin",
       .base_ref = "main", .base_ref_source = "git origin/HEAD (the remote's default branch)",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "NoCiWithoutOriginHeadTakesOriginsMain",
       .git = {.origin_url = "https://github.com/org/app", .head = kGitHead,
               .branch = "feature", .upstream_branch = "feature", .default_branch = "main",
               .default_branch_guessed = true},
       .ci = "",
       .repository = "github.com/org/app", .repository_source = "git remote origin",
       .base_ref = "main", .base_ref_source = "git origin/main (origin/HEAD is not set)",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "NoCiWithoutOriginHeadFallsBackToTheUpstream",
       .git = {.origin_url = "https://github.com/org/app", .head = kGitHead,
               .branch = "feature", .upstream_branch = "develop"},
       .ci = "",
       .repository = "github.com/org/app", .repository_source = "git remote origin",
       .base_ref = "develop", .base_ref_source = "git upstream of branch feature",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "GitHubMergeQueueEntryMergesIntoItsBaseBranch",
       .env = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
               {"GITHUB_SHA", kSha1}, {"GITHUB_EVENT_NAME", "merge_group"},
               {"GITHUB_REF", "refs/heads/gh-readonly-queue/release/1.x/pr-123-" + kSha2}},
       .git = checkout(),
       .ci = "GitHub Actions",
       .repository = "github.com/org/app", .repository_source = "env GITHUB_REPOSITORY",
       .base_ref = "release/1.x", .base_ref_source = "env GITHUB_REF (merge queue branch)",
       .change_ref = kSha1, .change_ref_source = "env GITHUB_SHA",
       .build_kind_has = "merge queue, pull request 123"},
      {.name = "GitLabMergeTrain",
       .env = {{"GITLAB_CI", "true"}, {"CI_PROJECT_URL", "https://gitlab.com/g/app"},
               {"CI_MERGE_REQUEST_IID", "7"}, {"CI_MERGE_REQUEST_EVENT_TYPE", "merge_train"},
               {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"},
               {"CI_MERGE_REQUEST_TARGET_BRANCH_SHA", kSha2}, {"CI_COMMIT_SHA", kSha1}},
       .ci = "GitLab CI",
       .repository = "gitlab.com/g/app", .repository_source = "env CI_PROJECT_URL",
       .base_ref = "main", .base_ref_source = "env CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
       .change_ref = kSha1, .change_ref_source = "env CI_COMMIT_SHA",
       .build_kind_has = "merge train, merge request !7"},
      {.name = "NoCiLocalBranchWithoutUpstream",
       .git = {.origin_url = "https://github.com/org/app", .head = kGitHead, .branch = "wip"},
       .ci = "",
       .repository = "github.com/org/app", .repository_source = "git remote origin",
       .base_ref = "wip", .base_ref_source = "git branch",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "NoCiDetachedHeadUsesOriginsDefaultBranch",
       .git = {.origin_url = "https://github.com/org/app", .head = kGitHead,
               .default_branch = "main"},
       .ci = "",
       .repository = "github.com/org/app", .repository_source = "git remote origin",
       .base_ref = "main", .base_ref_source = "git origin/HEAD (the remote's default branch)",
       .change_ref = kGitHead, .change_ref_source = "git HEAD"},
      {.name = "NothingKnown", .ci = ""},
      {.name = "GitHubActionsFalseIsNotGitHub",
       .env = {{"GITHUB_ACTIONS", "false"}, {"GITHUB_SHA", kSha1}},
       .ci = ""},
  };
}

class Detect : public ::testing::TestWithParam<Case> {};

TEST_P(Detect, FillsValuesAndTheirSources) {
  const Case& c = GetParam();
  const DetectedRepo d = detectRepo(c.env, c.git);
  EXPECT_EQ(d.ci, c.ci);
  EXPECT_EQ(d.repository.value, c.repository);
  EXPECT_EQ(d.repository.source, c.repository_source);
  EXPECT_EQ(d.base_ref.value, c.base_ref);
  EXPECT_EQ(d.base_ref.source, c.base_ref_source);
  EXPECT_EQ(d.change_ref.value, c.change_ref);
  EXPECT_EQ(d.change_ref.source, c.change_ref_source);
  if (!c.build_kind_has.empty()) {
    EXPECT_NE(d.build_kind.find(c.build_kind_has), std::string::npos) << d.build_kind;
  }
  // No token ever survives into anything td-worker prints or sends.
  for (const auto& s : {d.repository.value, d.repository.source, d.base_ref.value,
                        d.change_ref.value, d.build_kind}) {
    EXPECT_EQ(s.find("SECRET"), std::string::npos) << s;
  }
  for (const auto& note : d.notes) EXPECT_EQ(note.find("SECRET"), std::string::npos) << note;
}

INSTANTIATE_TEST_SUITE_P(EachCi, Detect, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// Jobs of one matrix / parallel pipeline on one commit must register the same values, even
// when their checkouts differ (one checked out the PR's head instead of the merge commit).
TEST(DetectAgreement, MatrixJobsOfOneRunAgree) {
  EnvMap job1 = {{"GITHUB_ACTIONS", "true"}, {"GITHUB_REPOSITORY", "org/app"},
                 {"GITHUB_SERVER_URL", "https://github.com"}, {"GITHUB_SHA", kSha2},
                 {"GITHUB_REF", "refs/pull/17/merge"}, {"GITHUB_BASE_REF", "main"},
                 {"GITHUB_HEAD_REF", "feature"}, {"GITHUB_EVENT_NAME", "pull_request"},
                 {"GITHUB_JOB", "build"}, {"RUNNER_NAME", "runner-1"}};
  EnvMap job2 = job1;
  job2["RUNNER_NAME"] = "runner-7";
  GitFacts merge_checkout{.origin_url = "https://github.com/org/app", .head = kSha2};
  GitFacts head_checkout{.origin_url = "https://x-access-token:SECRET@github.com/org/app.git",
                         .head = kGitHead};
  auto a = detectRepo(job1, merge_checkout);
  auto b = detectRepo(job2, head_checkout);
  EXPECT_EQ(a.repository.value, b.repository.value);
  EXPECT_EQ(a.base_ref.value, b.base_ref.value);
  EXPECT_EQ(a.change_ref.value, b.change_ref.value);
  ASSERT_FALSE(b.notes.empty());   // says the checkout differs and which value won
  EXPECT_NE(b.notes[0].find(kGitHead), std::string::npos) << b.notes[0];
}

// A new commit pushed to the same pull request is a different change: it must not match the
// previous commit's (possibly completed) group.
TEST(DetectAgreement, NewCommitOfSamePullRequestIsANewChange) {
  EnvMap first = {{"GITLAB_CI", "true"}, {"CI_PROJECT_URL", "https://gitlab.com/g/app"},
                  {"CI_MERGE_REQUEST_IID", "42"},
                  {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"}, {"CI_COMMIT_SHA", kSha1}};
  EnvMap second = first;
  second["CI_COMMIT_SHA"] = kSha2;
  EXPECT_NE(detectRepo(first, {}).change_ref.value, detectRepo(second, {}).change_ref.value);
  EXPECT_EQ(detectRepo(first, {}).base_ref.value, detectRepo(second, {}).base_ref.value);
}

TEST(DetectQueues, MergeQueueAndTrainSayTheCommitsBelowAreEntriesAhead) {
  auto queue = detectRepo({{"GITHUB_ACTIONS", "true"}, {"GITHUB_EVENT_NAME", "merge_group"},
                           {"GITHUB_REF", "refs/heads/gh-readonly-queue/main/pr-5-" + kSha2}},
                          {});
  EXPECT_TRUE(queue.merge_queue);
  auto train = detectRepo({{"GITLAB_CI", "true"}, {"CI_MERGE_REQUEST_IID", "7"},
                           {"CI_MERGE_REQUEST_EVENT_TYPE", "merge_train"},
                           {"CI_MERGE_REQUEST_TARGET_BRANCH_SHA", kSha2}},
                          {});
  EXPECT_TRUE(train.merge_queue);
  EXPECT_EQ(train.base_commit.value, kSha2);
  EXPECT_EQ(train.base_commit.source, "env CI_MERGE_REQUEST_TARGET_BRANCH_SHA");
  auto pr = detectRepo({{"GITHUB_ACTIONS", "true"}, {"GITHUB_EVENT_NAME", "pull_request"},
                        {"GITHUB_BASE_REF", "main"}, {"GITHUB_REF", "refs/pull/3/merge"}},
                       {});
  EXPECT_FALSE(pr.merge_queue);
  EXPECT_FALSE(pr.base_commit.known());
}

// A merge_group event whose ref is not a queue branch cannot name the base: it says so.
TEST(DetectQueues, UnknownQueueRefIsANote) {
  auto d = detectRepo({{"GITHUB_ACTIONS", "true"}, {"GITHUB_EVENT_NAME", "merge_group"},
                       {"GITHUB_REF", "refs/heads/something"}},
                      {});
  EXPECT_FALSE(d.base_ref.known());
  ASSERT_FALSE(d.notes.empty());
  EXPECT_NE(d.notes[0].find("--base-ref"), std::string::npos) << d.notes[0];
}

CommitInfo commit(std::string sha, std::vector<std::string> parents,
                  std::vector<std::string> change_ids = {}) {
  return {std::move(sha), std::move(parents), std::move(change_ids)};
}

// A stack A <- B <- C on the base: C builds on B and A, B on A, A on nothing.
TEST(ChangesAhead, AStackBuildsOnTheCommitsBelowIt) {
  const std::vector<CommitInfo> range = {commit("c", {"b"}), commit("b", {"a"}),
                                         commit("a", {"base"})};
  auto c = changesAhead(range, "c", 64);
  EXPECT_EQ(c.refs, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(c.own, 1u);
  EXPECT_FALSE(c.truncated);
  EXPECT_EQ(changesAhead({range.begin() + 1, range.end()}, "b", 64).refs,
            (std::vector<std::string>{"a"}));
  EXPECT_TRUE(changesAhead({range.back()}, "a", 64).refs.empty());
  EXPECT_TRUE(changesAhead({}, "base", 64).refs.empty());   // HEAD is the base itself
}

// A CI's merge of a pull request into the base (GitHub's refs/pull/N/merge): the merge and
// every commit it brings in are the pull request's own change.
TEST(ChangesAhead, AMergeTipOwnsWhatItMergesIn) {
  const std::vector<CommitInfo> range = {commit("m", {"base", "p3"}), commit("p3", {"p2"}),
                                         commit("p2", {"p1"}), commit("p1", {"base"})};
  auto ahead = changesAhead(range, "m", 64);
  EXPECT_TRUE(ahead.refs.empty());
  EXPECT_EQ(ahead.own, 4u);
}

// A merge queue (or train) entry: a merge on top of the entry ahead of it, itself a merge.
// The entry ahead and what it merged are changes ahead; this entry's own commits are not.
TEST(ChangesAhead, AQueueEntryBuildsOnTheEntriesAhead) {
  const std::vector<CommitInfo> range = {commit("q2", {"q1", "y1"}), commit("y1", {"base"}),
                                         commit("q1", {"base", "x1"}), commit("x1", {"base"})};
  auto ahead = changesAhead(range, "q2", 64);
  EXPECT_EQ(ahead.refs, (std::vector<std::string>{"q1", "x1"}));
  EXPECT_EQ(ahead.own, 2u);
}

// Gerrit: every copy of HEAD's change (same Change-Id) is its own change, not one ahead.
TEST(ChangesAhead, CommitsWithTheTipsChangeIdAreItsOwnChange) {
  const std::vector<CommitInfo> range = {commit("b2", {"b1"}, {"Ib"}),
                                         commit("b1", {"a"}, {"Ib"}),
                                         commit("a", {"base"}, {"Ia"})};
  auto ahead = changesAhead(range, "b2", 64);
  EXPECT_EQ(ahead.refs, (std::vector<std::string>{"a"}));
  EXPECT_EQ(ahead.own, 2u);
}

TEST(ChangesAhead, KeepsTheNearestWhenThereAreTooMany) {
  std::vector<CommitInfo> range;
  for (int i = 10; i > 0; --i) {
    range.push_back(commit("c" + std::to_string(i), {"c" + std::to_string(i - 1)}));
  }
  auto ahead = changesAhead(range, "c10", 3);
  EXPECT_EQ(ahead.refs, (std::vector<std::string>{"c9", "c8", "c7"}));
  EXPECT_TRUE(ahead.truncated);
}

// What `git log --format=%H %P%x1f%(trailers:...)%x1e` prints, as git prints it.
TEST(ParseCommitLog, ReadsShasParentsAndChangeIds) {
  const std::string text = "c3 c2 x9\x1f\x1e\nc2 c1\x1fIabc, Idef\x1e\nc1\x1fIroot\x1e";
  auto commits = parseCommitLog(text);
  ASSERT_EQ(commits.size(), 3u);
  EXPECT_EQ(commits[0].sha, "c3");
  EXPECT_EQ(commits[0].parents, (std::vector<std::string>{"c2", "x9"}));
  EXPECT_TRUE(commits[0].change_ids.empty());
  EXPECT_EQ(commits[1].change_ids, (std::vector<std::string>{"Iabc", "Idef"}));
  EXPECT_TRUE(commits[2].parents.empty());   // a root commit
  EXPECT_EQ(commits[2].change_ids, (std::vector<std::string>{"Iroot"}));
  EXPECT_TRUE(parseCommitLog("").empty());
}

TEST(NormalizeRepositoryUrl, EveryFormOfOneRepositoryIsOneString) {
  for (const char* url : {"git@github.com:org/app.git", "git@github.com:org/app",
                          "https://github.com/org/app", "https://github.com/org/app.git",
                          "https://github.com/org/app/", "https://GitHub.com/org/app.git",
                          "https://user:ghp_SECRET@github.com/org/app.git",
                          "https://ghp_SECRET@github.com/org/app",
                          "https://github.com:443/org/app.git", "http://github.com/org/app",
                          "ssh://git@github.com/org/app.git", "ssh://git@github.com:22/org/app",
                          "git://github.com/org/app.git", "  https://github.com/org/app\n"}) {
    EXPECT_EQ(normalizeRepositoryUrl(url), "github.com/org/app") << url;
  }
}

TEST(NormalizeRepositoryUrl, KeepsWhatDistinguishesRepositories) {
  EXPECT_EQ(normalizeRepositoryUrl("https://git.example.com:8443/scm/org/app.git"),
            "git.example.com:8443/scm/org/app");
  EXPECT_EQ(normalizeRepositoryUrl("https://gitlab.com/group/sub/app.git"),
            "gitlab.com/group/sub/app");
  EXPECT_EQ(normalizeRepositoryUrl("/srv/git/app.git"), "/srv/git/app");
  EXPECT_EQ(normalizeRepositoryUrl("file:///srv/git/app.git/"), "file:///srv/git/app");
  EXPECT_EQ(normalizeRepositoryUrl("app"), "app");
  EXPECT_EQ(normalizeRepositoryUrl(""), "");
}

TEST(RedactCredentials, RemovesUserInfoOfUrlsOnly) {
  EXPECT_EQ(redactCredentials("https://gitlab-ci-token:glcbt-SECRET@gitlab.com/g/app.git"),
            "https://gitlab.com/g/app.git");
  EXPECT_EQ(redactCredentials("https://ghp_SECRET@github.com/org/app"),
            "https://github.com/org/app");
  EXPECT_EQ(redactCredentials("https://github.com/org/app@v1"), "https://github.com/org/app@v1");
  EXPECT_EQ(redactCredentials("git@github.com:org/app.git"), "git@github.com:org/app.git");
  EXPECT_EQ(redactCredentials("app"), "app");
}

TEST(ResolveRepo, ExplicitFlagsWinOverDetection) {
  DetectedRepo d;
  d.repository = {"github.com/org/app", "env GITHUB_REPOSITORY"};
  d.base_ref = {"main", "env GITHUB_BASE_REF"};
  d.change_ref = {kSha1, "env GITHUB_SHA"};
  auto r = resolveRepo("", "release", "", d);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->repository.value, "github.com/org/app");
  EXPECT_EQ(r->base_ref.value, "release");
  EXPECT_EQ(r->base_ref.source, "flag --base-ref");
  EXPECT_EQ(r->change_ref.source, "env GITHUB_SHA");

  auto all = resolveRepo("https://u:SECRET@example.com/app.git", "b", "c", d);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->repository.value, "https://example.com/app.git");   // as given, minus token
  EXPECT_EQ(all->repository.source, "flag --repository");
}

TEST(ResolveRepo, MissingValuesNameTheFlagsToPass) {
  auto r = resolveRepo("", "", "", DetectedRepo{});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), td::Errc::kInvalidArgument);
  for (const char* flag : {"--repository", "--base-ref", "--change-ref", "--repo-state"}) {
    EXPECT_NE(r.error().context().find(flag), std::string::npos) << r.error().context();
  }
  DetectedRepo only_repo;
  only_repo.repository = {"github.com/org/app", "git remote origin"};
  auto partly = resolveRepo("", "main", "", only_repo);
  ASSERT_FALSE(partly.has_value());
  EXPECT_NE(partly.error().context().find("--change-ref"), std::string::npos);
  EXPECT_EQ(partly.error().context().find("--base-ref"), std::string::npos)
      << partly.error().context();
}

}  // namespace
}  // namespace td::worker
