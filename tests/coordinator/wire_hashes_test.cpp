// Golden values for every hash that travels on the wire or names something another process
// keeps: FNV-1a and SHA-256 (reference vectors), the compatibility key, the partition a family
// lands on, group ids, and the backoff jitter a replay must reproduce. A change to any of them
// splits families across versions, moves groups to other partitions, or renames groups, so
// these values never change; a failure here means the wire changed.
#include <gtest/gtest.h>

#include "common/hash.h"
#include "protocol/protocol.h"
#include "tests/coordinator/core_fixture.h"

namespace td::coordinator::testing {
namespace {

TEST(WireHashes, Fnv1a64MatchesItsReferenceVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(WireHashes, Sha256HexMatchesFips180Vectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex64(0), "0000000000000000");
  EXPECT_EQ(hex64(0xcbf29ce484222325ULL), "cbf29ce484222325");
}

td::v1::PeerRegistered goldenPeer() {
  td::v1::PeerRegistered peer = PeerBuilder("peer-1").build();
  peer.set_schema_name("build");
  peer.set_schema_digest(sha256Hex("schema"));
  peer.set_remote_cache_id("grpc://cache:9092");
  peer.mutable_repos(0)->set_repository("https://git.example/app.git");
  peer.mutable_repos(0)->set_base_ref("main");
  auto* lib = peer.add_repos();
  lib->set_repository("https://git.example/lib.git");   // repos are sorted before hashing
  lib->set_base_ref("release-2");
  lib->set_change_ref("c2");
  return peer;
}

TEST(WireHashes, CompatibilityKeyIsSha256OfTheLengthPrefixedFields) {
  const td::v1::PeerRegistered peer = goldenPeer();
  const std::string canonical = "5:build64:" + sha256Hex("schema") + "17:grpc://cache:9092" +
                                "27:https://git.example/app.git4:main" +
                                "27:https://git.example/lib.git9:release-2";
  EXPECT_EQ(protocol::compatibilityKey(peer), sha256Hex(canonical).substr(0, 32));
  EXPECT_EQ(protocol::compatibilityKey(peer), "6d821c6c8c18484aa3826923ada1c075");
  // The repositories' order and every field outside the key do not matter.
  td::v1::PeerRegistered reordered = peer;
  std::swap(*reordered.mutable_repos(0), *reordered.mutable_repos(1));
  reordered.set_peer_id("peer-2");
  reordered.mutable_repos(0)->set_change_ref("other");
  EXPECT_EQ(protocol::compatibilityKey(reordered), protocol::compatibilityKey(peer));
}

TEST(WireHashes, PartitionOfAFamily) {
  const std::string key = protocol::compatibilityKey(goldenPeer());
  EXPECT_EQ(protocol::partitionFor(key, 1), 0);
  EXPECT_EQ(protocol::partitionFor(key, 4), 1);
  EXPECT_EQ(protocol::partitionFor(key, 12), 1);
  EXPECT_EQ(protocol::partitionFor("0123456789abcdef0123456789abcdef", 16), 5);
}

class WireHashesCore : public CoreTest {};

TEST_F(WireHashesCore, GroupIdIsSchemaNameAndTwelveHexOfKeyPeerAndSession) {
  td::v1::PeerRegistered peer = goldenPeer();
  peer.set_compatibility_key(protocol::compatibilityKey(peer));
  Effects joined = run(Registration{.peer = peer});
  ASSERT_FALSE(joined.empty());
  ASSERT_TRUE(std::holds_alternative<PublishJoin>(joined.back()));
  const std::string id = std::get<PublishJoin>(joined.back()).record.joined().group_id();
  EXPECT_EQ(id, "build-" + hex64(fnv1a64(peer.compatibility_key() + "\npeer-1\npeer-1-s1"))
                               .substr(0, 12));
  EXPECT_EQ(id, "build-c3512d6d30d7");
}

TEST_F(WireHashesCore, BackoffJitterComesFromAHashOfGroupStepAndAttempt) {
  auto peer = PeerBuilder("1").change("c1").step("flaky", 10).build();
  auto* retry = peer.mutable_steps(0)->mutable_retry();
  *retry = protocol::defaultRetryPolicy();
  retry->set_backoff_initial_ms(1000);
  retry->set_backoff_multiplier(2);
  retry->set_backoff_max_ms(60000);
  retry->set_backoff_jitter(0.5);
  peer.set_compatibility_key(protocol::compatibilityKey(peer));
  Effects joined = run(Registration{.peer = peer});
  const auto g = std::get<PublishJoin>(joined.back()).record.joined().group_id();
  std::vector<std::uint64_t> waits;
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    Effects e = finish(g, "1", "flaky", attempt, td::v1::STEP_OUTCOME_FAILED);
    waits.push_back(events(e).back().step_queued().backoff_ms());
    clock_.advance(Millis(waits.back()));
    ASSERT_EQ(assignments(run(Tick{})).size(), 1u);
  }
  // 1 000, 2 000 and 4 000 ms, each times 1 + 0.5 x (2u - 1) for u from the hash. FNV-1a's last
  // byte moves its high bits little, so the three attempts of one step get nearly one factor;
  // other steps and groups get others.
  EXPECT_EQ(waits, (std::vector<std::uint64_t>{725, 1450, 2901}));
}

}  // namespace
}  // namespace td::coordinator::testing
