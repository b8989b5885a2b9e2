// The secret-name rule of common/redact.h, which --print-config and the Kafka error messages use.
#include "common/redact.h"

#include <gtest/gtest.h>

namespace td {
namespace {

TEST(Redact, SecretNames) {
  for (const char* name :
       {"sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "ssl_key",
        "sasl.oauthbearer.config", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.extensions",
        "sasl.jaas.config", "SASL.PASSWORD", "some.token", "private.key.data", "aws.credentials"}) {
    EXPECT_TRUE(isSecretName(name)) << name;
  }
  for (const char* name : {"sasl.username", "sasl.mechanism", "security.protocol",
                           "ssl.key.location", "ssl.keystore.location", "ssl.ca.location",
                           "ssl.certificate.pem", "sasl.oauthbearer.token.endpoint.url",
                           "sasl.oauthbearer.client.id", "bootstrap-server", "linger.ms"}) {
    EXPECT_FALSE(isSecretName(name)) << name;
  }
}

TEST(Redact, Values) {
  EXPECT_EQ(redactValue("sasl.password", "hunter2"), "[redacted]");
  EXPECT_EQ(redactValue("sasl.username", "td"), "td");
  EXPECT_EQ(redactKeyValue("sasl.password=a=b"), "sasl.password=[redacted]");
  EXPECT_EQ(redactKeyValue("linger.ms=5"), "linger.ms=5");
  EXPECT_EQ(redactKeyValue("sasl.password:hunter2"), "[redacted]");  // mistyped separator
  EXPECT_EQ(redactKeyValue("novalue"), "novalue");
}

}  // namespace
}  // namespace td
