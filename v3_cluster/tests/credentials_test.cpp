// credentials_test.cpp — where a node's NATS credentials come from: the file
// format, what is refused, the order of the sources, and the URL checks.
#include "credentials.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "nats_harness.hpp"

namespace iocp_chat::v3 {
namespace {

using test::TempDir;
using test::write_file;

/// Clears the IOCP_CHAT_NATS_* variables for one test, and restores nothing
/// (no test of this program relies on them being set).
struct CleanEnvironment : ::testing::Test {
  void SetUp() override {
    for (const char* name : {kCredentialsFileVariable, kTokenVariable, kUserVariable, kPasswordVariable}) {
      ::unsetenv(name);
    }
  }
  void TearDown() override { SetUp(); }
};

TEST(Credentials, ATokenOrAUserWithPassword) {
  const NatsCredentials token = parse_credentials("# comment\n\n  token = s3cr3t  \n", "test");
  EXPECT_EQ(token.token, "s3cr3t");
  EXPECT_TRUE(token.user.empty());
  const NatsCredentials user = parse_credentials("user=chat\npassword = p a s s\r\n", "test");
  EXPECT_EQ(user.user, "chat");
  EXPECT_EQ(user.password, "p a s s");
  EXPECT_TRUE(parse_credentials("# nothing\n", "test").empty());
}

TEST(Credentials, WhatCannotBeUsedIsRefusedWithoutShowingTheSecret) {
  for (const char* text :
       {"token s3cr3t\n", "tokn = s3cr3t\n", "token = a\ntoken = s3cr3t\n", "token =\n",
        "token = s3cr3t\nuser = chat\npassword = p\n", "user = chat\n", "password = s3cr3t\n"}) {
    try {
      parse_credentials(text, "file x");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const CredentialsError& error) {
      EXPECT_EQ(std::string(error.what()).find("s3cr3t"), std::string::npos) << error.what();
      EXPECT_EQ(std::string(error.what()).rfind("file x", 0), 0u) << error.what();
    }
  }
}

TEST(Credentials, AFileOthersMayReadIsWarnedAbout) {
  TempDir directory;
  const auto path = directory.path() / "nats.creds";
  std::vector<std::string> warnings;
  write_file(path, "token = t\n", 0600);
  EXPECT_EQ(read_credentials_file(path.string(), warnings).token, "t");
  EXPECT_TRUE(warnings.empty());
  write_file(path, "token = t\n", 0644);
  read_credentials_file(path.string(), warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("chmod 600"), std::string::npos);
  EXPECT_THROW(read_credentials_file((directory.path() / "missing").string(), warnings), CredentialsError);
  write_file(path, "# empty\n", 0600);
  EXPECT_THROW(read_credentials_file(path.string(), warnings), CredentialsError);
}

TEST_F(CleanEnvironment, TheOptionWinsThenTheFileVariableThenTheValues) {
  TempDir directory;
  const auto option_file = directory.path() / "option.creds";
  const auto variable_file = directory.path() / "variable.creds";
  write_file(option_file, "token = from-option\n");
  write_file(variable_file, "user = from-variable-file\npassword = p\n");
  ::setenv(kCredentialsFileVariable, variable_file.c_str(), 1);
  ::setenv(kTokenVariable, "from-environment", 1);
  std::vector<std::string> warnings;
  EXPECT_EQ(load_credentials(option_file.string(), warnings).token, "from-option");
  EXPECT_EQ(load_credentials("", warnings).user, "from-variable-file");
  ::unsetenv(kCredentialsFileVariable);
  const NatsCredentials from_environment = load_credentials("", warnings);
  EXPECT_EQ(from_environment.token, "from-environment");
  EXPECT_EQ(from_environment.source, "environment");
  ::unsetenv(kTokenVariable);
  ::setenv(kUserVariable, "chat", 1);
  EXPECT_THROW(load_credentials("", warnings), CredentialsError) << "a user without a password";
  ::setenv(kPasswordVariable, "p", 1);
  EXPECT_EQ(load_credentials("", warnings).password, "p");
}

TEST_F(CleanEnvironment, NoneIsNoneNotAnError) {
  std::vector<std::string> warnings;
  const NatsCredentials none = load_credentials("", warnings);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.source, "none");
}

TEST(Credentials, UrlsCarryingSecretsAreSpottedAndTlsIsAskedByTheScheme) {
  EXPECT_TRUE(url_has_credentials("nats://user:pass@host:4222"));
  EXPECT_TRUE(url_has_credentials("tls://token@host"));
  EXPECT_TRUE(url_has_credentials("user:pass@host:4222"));
  EXPECT_FALSE(url_has_credentials("nats://127.0.0.1:4222"));
  EXPECT_FALSE(url_has_credentials("nats://host:4222/path@x"));
  EXPECT_TRUE(url_wants_tls("tls://localhost:4222"));
  EXPECT_FALSE(url_wants_tls("nats://localhost:4222"));
  EXPECT_FALSE(url_wants_tls("tl"));
}

}  // namespace
}  // namespace iocp_chat::v3
