// No secret ever printed: runs the dataflow program with distinctive secrets in its config and
// environment (`validate` of good and broken configs; `run` at log level trace against an
// unreachable MQTT broker, against a Mosquitto that is stopped while /healthz, /readyz,
// /metrics and an unknown path are fetched, and against an unreachable Redis), captures every
// line printed and every body served, and finds none of the secrets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dataflow_testing/mosquitto_server.h"
#include "dataflow_testing/server_process.h"

extern char** environ;  // NOLINT: POSIX

namespace dataflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// Each distinctive enough never to appear by chance.
const std::vector<std::string> kSecrets = {
    "Sekrit-MqttPw-4d1f",     // MQTT password, from ${MQTT_PASSWORD}
    "Sekrit-RedisPw-9b2e",    // Redis password, from a DATAFLOW__ override
    "Sekrit-UrlPw-77aa",      // credentials inside a URL
    "Sekrit-LiteralPw-31c0",  // a password literal with an unterminated ${
};

struct Output {
  int exit_code = -1;
  std::string text;  // stdout and stderr, interleaved
};

// Runs the program to completion with `env` added; captures everything it prints.
Output RunProgram(const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return {};
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_s{DATAFLOW_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(pipefd[1]);
  Output out;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) out.text.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  return out;
}

fs::path Write(const fs::path& dir, const std::string& name, const std::string& text) {
  const fs::path path = dir / name;
  std::ofstream(path) << text;
  return path;
}

std::string Slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void ExpectNoSecret(const std::string& where, const std::string& text) {
  for (const auto& secret : kSecrets) {
    EXPECT_THAT(text, Not(HasSubstr(secret))) << where << " printed a secret:\n" << text;
  }
}

class SecretsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dataflow-secrets-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // An MQTT ingestion into an in-process topic archived locally; `mqtt` is the mqtt block's
  // body (indented), `extra` more services.
  std::string Config(const std::string& mqtt, const std::string& extra = "") const {
    return "log_level: trace\n"
           "ops:\n"
           "  host: 127.0.0.1\n"
           "  port: ${OPS_PORT:-0}\n"
           "in_process:\n"
           "  topics: [raw]\n"
           "  subscriptions: [{name: raw-sub, topic: raw}]\n"
           "services:\n"
           "  - name: ingest\n"
           "    ingestion:\n"
           "      mqtt:\n" +
           mqtt +
           "        topic_mappings: [{name: t, topic: \"devices/+/data\", qos: 1}]\n"
           "      sink: in_process\n"
           "      routes: {t: raw}\n"
           "  - name: archive\n"
           "    icestore:\n"
           "      source: {in_process: {subscription: raw-sub}}\n"
           "      local: {root: " +
           (dir_ / "archive").string() + "}\n" + extra;
  }

  fs::path dir_;
};

TEST_F(SecretsE2eTest, ValidateNeverPrintsASecret) {
  const std::map<std::string, std::string> env = {
      {"MQTT_PASSWORD", kSecrets[0]},
      {"DATAFLOW__SERVICES__ENRICH__ENRICHMENT__CACHE__REDIS__PASSWORD", kSecrets[1]}};
  const std::string enrich =
      "  - name: enrich\n"
      "    enrichment:\n"
      "      source: {in_process: {subscription: raw-sub}}\n"
      "      sink: in_process\n"
      "      topic: raw\n"
      "      key: {attribute: device_id}\n"
      "      cache:\n"
      "        redis: {addr: \"REDIS_ADDR\"}\n"
      "        json_file: registry.json\n";
  auto with_redis = [&](const std::string& addr) {
    std::string e = enrich;
    e.replace(e.find("REDIS_ADDR"), 10, addr);
    return e;
  };
  // Valid, with passwords from the environment and a remote host (warned about).
  const Output good =
      RunProgram({"validate", Write(dir_, "good.yaml",
                                    Config("        broker_url: tcp://broker.example.com:1883\n"
                                           "        username: device\n"
                                           "        password: ${MQTT_PASSWORD}\n",
                                           with_redis("cache.example.com:6379")))
                                  .string()},
                 env);
  EXPECT_EQ(good.exit_code, 0) << good.text;
  EXPECT_THAT(good.text, HasSubstr("mqtt.password: sent in plaintext"));
  EXPECT_THAT(good.text, HasSubstr("redis.password: sent in plaintext"));
  ExpectNoSecret("validate (valid config)", good.text);

  // Credentials inside URLs: refused.
  const Output in_url =
      RunProgram({"validate", Write(dir_, "url.yaml",
                                    Config("        broker_url: mqtts://device:" + kSecrets[2] +
                                               "@broker.example.com:8883\n",
                                           with_redis("redis://:" + kSecrets[2] + "@cache:6379")))
                                  .string()},
                 env);
  EXPECT_EQ(in_url.exit_code, 2) << in_url.text;
  EXPECT_THAT(in_url.text, HasSubstr("broker_url: contains credentials"));
  EXPECT_THAT(in_url.text, HasSubstr("redis.addr: contains credentials"));
  ExpectNoSecret("validate (credentials in URLs)", in_url.text);

  // A broken password value, and environment values in keys that do not take them.
  const Output broken = RunProgram(
      {"validate", Write(dir_, "broken.yaml",
                         Config("        broker_url: tcp://127.0.0.1:1883\n"
                                "        password: \"" +
                                    kSecrets[3] +
                                    "${MQTT_PASSWORD\"\n"
                                    "        keep_alive: ${MQTT_PASSWORD}\n",
                                with_redis("127.0.0.1:6379") + "      workers: ${MQTT_PASSWORD}\n"))
                       .string()},
      env);
  EXPECT_EQ(broken.exit_code, 2) << broken.text;
  EXPECT_THAT(broken.text, HasSubstr("mqtt.password: unterminated ${"));
  EXPECT_THAT(broken.text, HasSubstr("mqtt.keep_alive: expected a duration"));
  ExpectNoSecret("validate (broken config)", broken.text);
}

TEST_F(SecretsE2eTest, RunAgainstAnUnreachableOrLostBrokerNeverPrintsOrServesASecret) {
  const std::string mqtt_block =
      "        username: device\n"
      "        password: ${MQTT_PASSWORD}\n";
  // Nothing listens: the first connection fails and the program exits.
  const Output unreachable = RunProgram(
      {"run", Write(dir_, "unreachable.yaml",
                    Config("        broker_url: tcp://127.0.0.1:" + std::to_string(FreeTcpPort()) +
                           "\n" + mqtt_block))
                  .string()},
      {{"MQTT_PASSWORD", kSecrets[0]}});
  EXPECT_EQ(unreachable.exit_code, 1) << unreachable.text;
  EXPECT_THAT(unreachable.text, HasSubstr("cannot connect"));
  ExpectNoSecret("dataflow run (unreachable broker)", unreachable.text);

  // A broker that goes away while the program runs: it reconnects, not ready meanwhile.
  auto broker = MosquittoServer::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const int ops_port = FreeTcpPort();
  const fs::path config = Write(
      dir_, "run.yaml", Config("        broker_url: " + (*broker)->url() + "\n" + mqtt_block));
  auto program = ServerProcess::Start(
      {.name = "dataflow-secrets",
       .argv = {DATAFLOW_BINARY, "run", config.string()},
       .env = {{"MQTT_PASSWORD", kSecrets[0]}, {"OPS_PORT", std::to_string(ops_port)}},
       .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; }});
  ASSERT_TRUE(program.ok()) << program.status();
  std::map<std::string, std::string> bodies;  // what the ops endpoints served
  EXPECT_EQ(HttpGetStatus(ops_port, "/metrics", &bodies["/metrics (connected)"]), 200);
  EXPECT_EQ(HttpGetStatus(ops_port, "/" + kSecrets[0], &bodies["404"]), 404);
  (*broker)->process().Stop();
  EXPECT_TRUE(WaitFor(
      [&] { return HttpGetStatus(ops_port, "/readyz", &bodies["/readyz (not ready)"]) == 503; },
      20s));
  EXPECT_TRUE(WaitFor(
      [&] { return Slurp((*program)->log_path()).find("reconnecting") != std::string::npos; },
      20s));
  EXPECT_EQ(HttpGetStatus(ops_port, "/metrics", &bodies["/metrics (lost)"]), 200);
  EXPECT_EQ(HttpGetStatus(ops_port, "/healthz", &bodies["/healthz"]), 200);
  EXPECT_THAT(bodies["/readyz (not ready)"], HasSubstr("ingest"));
  for (const auto& [where, body] : bodies) ExpectNoSecret(where, body);
  (*program)->Stop();
  const std::string log = Slurp((*program)->log_path());
  EXPECT_THAT(log, HasSubstr("reconnecting"));
  EXPECT_THAT(log, HasSubstr("not ready components="));
  ExpectNoSecret("dataflow run (log)", log);
}

TEST_F(SecretsE2eTest, RunWithAnUnreachableRedisFailsWithoutPrintingThePassword) {
  const std::string config = Config("        broker_url: tcp://127.0.0.1:1\n",
                                    "  - name: enrich\n"
                                    "    enrichment:\n"
                                    "      source: {in_process: {subscription: raw-sub}}\n"
                                    "      sink: in_process\n"
                                    "      topic: raw\n"
                                    "      key: {attribute: device_id}\n"
                                    "      cache:\n"
                                    "        redis: {addr: \"127.0.0.1:" +
                                        std::to_string(FreeTcpPort()) +
                                        "\", password: \"${REDIS_PASSWORD}\"}\n"
                                        "        json_file: " +
                                        Write(dir_, "registry.json", "{}").string() + "\n");
  const Output out = RunProgram({"run", Write(dir_, "redis.yaml", config).string()},
                                {{"REDIS_PASSWORD", kSecrets[1]}});
  EXPECT_EQ(out.exit_code, 1) << out.text;  // built, then failed: not a config error (2)
  EXPECT_THAT(out.text, HasSubstr("cache.redis (127.0.0.1:"));
  ExpectNoSecret("dataflow run (unreachable Redis)", out.text);
}

}  // namespace
}  // namespace dataflow::testing
