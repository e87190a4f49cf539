// backplane_auth_test.cpp — the backplane lets no one in: a node without the
// server's credentials is refused, a stray client without them cannot even
// connect, a client with lesser rights cannot inject a chat line, and TLS is
// used when the URL asks for it. Against a real nats-server.
#include <gtest/gtest.h>

#include "nats_fixture.hpp"

namespace iocp_chat::v3::test {
namespace {

using Auth = NatsTest;

std::string start_error(const BackplaneSettings& settings) {
  RecordingListener listener;
  Backplane backplane(settings, listener);
  try {
    backplane.start();
  } catch (const BackplaneError& error) {
    return error.what();
  }
  return "";
}

TEST_F(Auth, ANodeWithoutTheCredentialsIsRefused) {
  start_server();
  BackplaneSettings none = settings("a");
  none.credentials_file.clear();  // and no IOCP_CHAT_NATS_* variable (NatsTest clears them)
  const std::string refused = start_error(none);
  EXPECT_NE(refused.find("cannot connect"), std::string::npos) << refused;
  EXPECT_NE(refused.find("uthorization"), std::string::npos) << refused;

  write_file(directory_.path() / "wrong.creds", "token = not-the-token\n");
  BackplaneSettings wrong = settings("a");
  wrong.credentials_file = (directory_.path() / "wrong.creds").string();
  EXPECT_NE(start_error(wrong).find("cannot connect"), std::string::npos);

  EXPECT_EQ(start_error(settings("a")), "") << "the right token is accepted";

  ::setenv(kTokenVariable, token_.c_str(), 1);
  EXPECT_EQ(start_error(none), "") << "the token from the environment is accepted";
  ::unsetenv(kTokenVariable);
}

TEST_F(Auth, AUrlCarryingASecretIsRefusedBeforeConnecting) {
  BackplaneSettings with_secret;
  with_secret.urls = {"nats://" + token_ + "@127.0.0.1:4222"};
  with_secret.node = "a";
  RecordingListener listener;
  try {
    Backplane backplane(with_secret, listener);
    ADD_FAILURE() << "accepted a URL with a secret";
  } catch (const BackplaneError& error) {
    EXPECT_EQ(std::string(error.what()).find(token_), std::string::npos) << "the error repeats the secret";
  }
}

TEST_F(Auth, UserAndPasswordFromAFile) {
  NatsAuth auth;
  auth.users = {{"chat", "chat-password", {}, {}}};
  start_server(auth);
  write_file(directory_.path() / "user.creds", "user = chat\npassword = chat-password\n");
  BackplaneSettings user = settings("a");
  user.credentials_file = (directory_.path() / "user.creds").string();
  EXPECT_EQ(start_error(user), "");
  write_file(directory_.path() / "bad.creds", "user = chat\npassword = guess\n");
  user.credentials_file = (directory_.path() / "bad.creds").string();
  EXPECT_NE(start_error(user), "");
}

TEST_F(Auth, AStrayClientCannotInjectAChatLine) {
  // The server knows the nodes' user, and a guest allowed only public.>.
  NatsAuth auth;
  auth.users = {{"chat", "chat-password", {}, {}},
                {"guest", "guest-password", {"public.>"}, {"public.>", "_INBOX.>"}}};
  NatsServer& server = start_server(auth);
  write_file(credentials_, "user = chat\npassword = chat-password\n");
  RecordingListener heard;
  Backplane listener_node(settings("listener"), heard);
  listener_node.start();

  // The line a forger would send: a well-formed chat from a made-up node.
  RoomMessage forged;
  forged.kind = MessageKind::chat;
  forged.node = "mallory";
  forged.incarnation = 1;
  forged.sequence = 1;
  forged.user_id = "admin";
  forged.text = "forged";
  const std::string payload = encode(forged);
  const std::string subject = room_subjects("lobby").chat;

  // Without credentials: no connection at all.
  natsStatus status = NATS_OK;
  nats::Connection anonymous = connect_raw(server.url(), status);
  EXPECT_NE(status, NATS_OK);
  EXPECT_EQ(anonymous, nullptr);

  // With the guest's: connected, but the server drops the publication.
  nats::Connection guest = connect_raw(server.url(), status, {}, "guest", "guest-password");
  ASSERT_EQ(status, NATS_OK);
  natsConnection_Publish(guest.get(), subject.c_str(), payload.data(), static_cast<int>(payload.size()));
  natsConnection_FlushTimeout(guest.get(), 2000);

  // Control: the same payload from a connection with the nodes' rights arrives.
  RecordingListener speaker_heard;
  Backplane speaker(settings("speaker"), speaker_heard);
  speaker.start();
  ASSERT_TRUE(speaker.publish_chat("carol", "genuine"));
  ASSERT_TRUE(heard.wait_for("chat", "speaker", 5s)) << "the control message did not arrive";
  // The same forgery (numbered 2, text "control") from a client with the
  // nodes' rights does arrive: the listener was listening.
  forged.sequence = 2;
  forged.text = "control";
  const std::string control = encode(forged);
  nats::Connection chat_user = connect_raw(server.url(), status, {}, "chat", "chat-password");
  ASSERT_EQ(status, NATS_OK);
  natsConnection_Publish(chat_user.get(), subject.c_str(), control.data(), static_cast<int>(control.size()));
  natsConnection_FlushTimeout(chat_user.get(), 2000);
  ASSERT_TRUE(heard.wait_for("chat", "mallory", 5s)) << "the control did not arrive";

  // The guest's line was flushed through the server before the control was
  // sent, so had the server passed it, it would have arrived first.
  for (const Recorded& event : heard.events()) {
    EXPECT_NE(event.text, "forged") << "a client without the nodes' rights injected a chat line";
  }
  const char* last_error = nullptr;
  natsConnection_GetLastError(guest.get(), &last_error);
  EXPECT_NE(std::string(last_error != nullptr ? last_error : "").find("ermissions"), std::string::npos)
      << "the server did not report a permissions violation to the guest";
}

TEST_F(Auth, TlsWhenTheUrlSaysTls) {
  TempDir certificates;
  const std::optional<TlsFiles> tls = make_tls_files(certificates.path());
  if (!tls) GTEST_SKIP() << "openssl is not available to make test certificates";
  NatsServerConfig config;
  config.auth.token = token_;
  config.tls_cert = tls->server_cert;
  config.tls_key = tls->server_key;
  server_ = std::make_unique<NatsServer>(directory_.path(), std::move(config));
  server_->start();

  BackplaneSettings secure = settings("a", {server_->url("tls")});
  secure.tls_ca_file = tls->ca.string();
  {
    RecordingListener listener;
    Backplane backplane(secure, listener);
    ASSERT_NO_THROW(backplane.start());
    EXPECT_TRUE(backplane.connected());
    EXPECT_EQ(backplane.claim_and_wait("tina").status, ClaimStatus::claimed);
  }
  BackplaneSettings untrusted = secure;
  untrusted.tls_ca_file.clear();
  EXPECT_NE(start_error(untrusted), "") << "a server certificate from an unknown CA was accepted";
}

}  // namespace
}  // namespace iocp_chat::v3::test
