#include "coordinator/codec.h"

#include <gtest/gtest.h>

#include <random>

namespace td::coordinator {
namespace {

std::string validRegistrationBytes() {
  td::v1::RegistrationRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  record.mutable_registered()->set_peer_id("p1");
  return record.SerializeAsString();
}

TEST(Codec, DecodesARegistration) {
  protocol::routeProtobufLogs();
  auto input = decodeRegistrationRecord(validRegistrationBytes(), 3);
  ASSERT_TRUE(input.has_value()) << input.error().message();
  const auto& reg = std::get<Registration>(*input);
  EXPECT_EQ(reg.partition, 3);
  EXPECT_EQ(reg.peer.peer_id(), "p1");
}

TEST(Codec, DecodesUniverseReports) {
  td::v1::CompletionRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  record.mutable_universe_started()->set_peer_id("p1");
  auto started = decodeCompletionRecord(record.SerializeAsString());
  ASSERT_TRUE(started.has_value()) << started.error().message();
  EXPECT_EQ(std::get<td::v1::UniverseStarted>(*started).peer_id(), "p1");
  record.mutable_universe_finished()->set_exit_code(3);
  auto finished = decodeCompletionRecord(record.SerializeAsString());
  ASSERT_TRUE(finished.has_value()) << finished.error().message();
  EXPECT_EQ(std::get<td::v1::UniverseFinished>(*finished).exit_code(), 3);
}

TEST(Codec, RejectsGarbage) {
  auto input = decodeRegistrationRecord("\xff\xff\xff garbage", 0);
  ASSERT_FALSE(input.has_value());
  EXPECT_EQ(input.error().code(), Errc::kMalformed);
}

TEST(Codec, RejectsWrongVersion) {
  td::v1::CompletionRecord record;
  record.set_protocol_version(static_cast<td::v1::ProtocolVersion>(7));
  record.mutable_finished()->set_peer_id("p");
  auto input = decodeCompletionRecord(record.SerializeAsString());
  ASSERT_FALSE(input.has_value());
  EXPECT_EQ(input.error().code(), Errc::kUnsupportedVersion);
  EXPECT_NE(input.error().message().find("protocol_version 7"), std::string::npos);
}

TEST(Codec, RejectsEmptyAndHugeRecords) {
  td::v1::CompletionRecord record;
  record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  EXPECT_EQ(decodeCompletionRecord(record.SerializeAsString()).error().code(), Errc::kEmptyRecord);
  // A null or 0-byte value is an empty record, not "protocol_version 0".
  for (auto empty : {decodeCompletionRecord(""), decodeRegistrationRecord("", 0)}) {
    ASSERT_FALSE(empty.has_value());
    EXPECT_EQ(empty.error().code(), Errc::kEmptyRecord);
    EXPECT_NE(empty.error().message().find("empty record"), std::string::npos)
        << empty.error().message();
    EXPECT_EQ(empty.error().message().find("protocol_version"), std::string::npos)
        << empty.error().message();
  }
  std::string huge(protocol::kMaxRecordBytes + 1, 'x');
  EXPECT_EQ(decodeCompletionRecord(huge).error().code(), Errc::kTooLarge);
}

TEST(Codec, RandomMutationsNeverCrash) {
  std::mt19937 rng(42);
  const std::string base = validRegistrationBytes();
  for (int i = 0; i < 5000; ++i) {
    std::string bytes = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && !bytes.empty(); ++k) {
      std::size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[pos] = static_cast<char>(rng()); break;
        case 1: bytes.resize(pos); break;
        default: bytes.insert(pos, 1, static_cast<char>(rng())); break;
      }
    }
    auto r = decodeRegistrationRecord(bytes, 0);
    auto c = decodeCompletionRecord(bytes);
    if (!r) {
      EXPECT_FALSE(r.error().message().empty());
    }
    if (!c) {
      EXPECT_FALSE(c.error().message().empty());
    }
  }
}

}  // namespace
}  // namespace td::coordinator
