// The deploy artifacts agree with the program: every Kubernetes manifest parses; each
// Deployment's config (from the ConfigMap) is valid, and its port, probe paths, Prometheus
// annotations and grace period match the config and the program's defaults; the secrets a
// config names reach its environment. Also the systemd unit and the Dockerfile.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "config.h"

namespace dataflow::app {
namespace {

namespace fs = std::filesystem;
const fs::path kSource = DATAFLOW_SOURCE_DIR;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Manifests {
  std::map<std::string, std::string> config_files;  // ConfigMap dataflow-config's data
  std::set<std::string> service_accounts_with_wi;   // with a Workload Identity annotation
  std::set<std::string> secret_keys;                // keys of Secret dataflow-secrets
  std::vector<YAML::Node> deployments;
  std::set<std::string> scaled_deployments;  // KEDA ScaledObject targets
};

Manifests LoadManifests() {
  Manifests m;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "deploy/kubernetes")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAllFromFile(entry.path().string());
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << entry.path() << ": " << e.what();
      continue;
    }
    for (const auto& doc : docs) {
      const auto kind = doc["kind"].as<std::string>("");
      EXPECT_FALSE(kind.empty()) << entry.path() << ": a document without kind";
      if (kind == "Kustomization") continue;
      EXPECT_TRUE(doc["apiVersion"] && doc["metadata"]["name"]) << entry.path();
      const auto name = doc["metadata"]["name"].as<std::string>("");
      if (kind == "ConfigMap" && name == "dataflow-config") {
        for (const auto& kv : doc["data"]) {
          m.config_files[kv.first.as<std::string>()] = kv.second.as<std::string>();
        }
      } else if (kind == "ServiceAccount" && doc["metadata"]["annotations"] &&
                 doc["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]) {
        m.service_accounts_with_wi.insert(name);
      } else if (kind == "Secret" && name == "dataflow-secrets") {
        for (const auto& kv : doc["stringData"]) m.secret_keys.insert(kv.first.as<std::string>());
      } else if (kind == "Deployment") {
        m.deployments.push_back(doc);
      } else if (kind == "ScaledObject") {
        m.scaled_deployments.insert(doc["spec"]["scaleTargetRef"]["name"].as<std::string>());
      }
    }
  }
  EXPECT_GT(files, 0);
  return m;
}

// The ${VAR} names (without a :- default) a config text refers to.
std::set<std::string> ReferencedVariables(const std::string& text) {
  std::set<std::string> names;
  const std::regex var(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\})");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), var); it != std::sregex_iterator();
       ++it) {
    names.insert((*it)[1]);
  }
  return names;
}

TEST(DeployTest, KubernetesDeploymentsMatchTheProgram) {
  const ProgramConfig defaults;
  const Manifests m = LoadManifests();
  std::set<std::string> kinds;
  ASSERT_EQ(m.deployments.size(), 4U) << "one Deployment per service kind";
  for (const auto& d : m.deployments) {
    const auto name = d["metadata"]["name"].as<std::string>();
    SCOPED_TRACE(name);
    const auto pod = d["spec"]["template"];
    const auto& container = pod["spec"]["containers"][0];

    // The config file this Deployment mounts as /etc/dataflow/config.yaml.
    std::string config_key;
    for (const auto& volume : pod["spec"]["volumes"]) {
      if (!volume["configMap"]) continue;
      EXPECT_EQ(volume["configMap"]["name"].as<std::string>(), "dataflow-config");
      for (const auto& item : volume["configMap"]["items"]) {
        if (item["path"].as<std::string>() == "config.yaml")
          config_key = item["key"].as<std::string>();
      }
    }
    bool mounted = false;
    for (const auto& mount : container["volumeMounts"]) {
      mounted |= mount["mountPath"].as<std::string>() == "/etc/dataflow";
    }
    EXPECT_TRUE(mounted) << "the config is not mounted at /etc/dataflow";
    ASSERT_TRUE(m.config_files.count(config_key)) << "no config " << config_key;
    const std::string& text = m.config_files.at(config_key);
    auto loaded = ParseConfig(text, {}, [](const std::string&) { return std::string("x"); });
    for (const auto& e : loaded.errors) ADD_FAILURE() << config_key << ": " << e.ToString();
    ASSERT_TRUE(loaded.ok());
    const ProgramConfig& config = loaded.config;
    ASSERT_EQ(config.services.size(), 1U);
    kinds.insert(config.services[0].kind());
    // The manifests are written for the defaults; a changed default must be seen here.
    EXPECT_EQ(config.ops.port, defaults.ops.port);
    EXPECT_EQ(config.ops.host, "0.0.0.0") << "probes come from outside the container";
    EXPECT_EQ(config.shutdown_timeout, defaults.shutdown_timeout);

    int ops_port = -1;
    for (const auto& port : container["ports"]) {
      if (port["name"].as<std::string>("") == "ops") ops_port = port["containerPort"].as<int>();
    }
    EXPECT_EQ(ops_port, config.ops.port);
    auto probe_port = [&](const YAML::Node& probe) {
      const auto p = probe["httpGet"]["port"];
      return p.as<std::string>() == "ops" ? ops_port : p.as<int>();
    };
    EXPECT_EQ(container["livenessProbe"]["httpGet"]["path"].as<std::string>(""), "/healthz");
    EXPECT_EQ(probe_port(container["livenessProbe"]), config.ops.port);
    EXPECT_EQ(container["readinessProbe"]["httpGet"]["path"].as<std::string>(""), "/readyz");
    EXPECT_EQ(probe_port(container["readinessProbe"]), config.ops.port);

    const auto annotations = pod["metadata"]["annotations"];
    EXPECT_EQ(annotations["prometheus.io/scrape"].as<std::string>(""), "true");
    EXPECT_EQ(annotations["prometheus.io/port"].as<std::string>(""),
              std::to_string(config.ops.port));
    EXPECT_EQ(annotations["prometheus.io/path"].as<std::string>(""), "/metrics");

    const auto grace =
        std::chrono::seconds(pod["spec"]["terminationGracePeriodSeconds"].as<int>(30));
    EXPECT_GT(grace, config.shutdown_timeout) << "Kubernetes' SIGKILL would cut the drain short";

    EXPECT_TRUE(
        m.service_accounts_with_wi.count(pod["spec"]["serviceAccountName"].as<std::string>("")))
        << "no Workload Identity service account";
    std::set<std::string> env;
    for (const auto& e : container["env"]) {
      env.insert(e["name"].as<std::string>());
      if (e["valueFrom"] && e["valueFrom"]["secretKeyRef"]) {
        EXPECT_TRUE(m.secret_keys.count(e["valueFrom"]["secretKeyRef"]["key"].as<std::string>()));
      }
    }
    for (const auto& var : ReferencedVariables(text)) {
      EXPECT_TRUE(env.count(var)) << config_key << " uses ${" << var << "}, not in the env";
    }
    if (config.services[0].kind() != std::string("ingestion")) {
      EXPECT_TRUE(m.scaled_deployments.count(name)) << "no autoscaler on the backlog";
    }
  }
  EXPECT_EQ(kinds.size(), 4U) << "one Deployment per service kind";
}

std::chrono::seconds SystemdSeconds(const std::string& value) {
  std::smatch match;
  if (std::regex_match(value, match, std::regex(R"((\d+)s?)"))) {
    return std::chrono::seconds(std::stoi(match[1]));
  }
  if (std::regex_match(value, match, std::regex(R"((\d+)min)"))) {
    return std::chrono::minutes(std::stoi(match[1]));
  }
  ADD_FAILURE() << "unexpected time span " << value;
  return {};
}

TEST(DeployTest, SystemdUnitOutlastsTheDrainAndDoesNotRestartOnBadConfig) {
  std::map<std::string, std::string> keys;
  std::istringstream unit(Slurp(kSource / "packaging/systemd/dataflow@.service"));
  for (std::string line; std::getline(unit, line);) {
    const auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || line[0] == '[' || eq == std::string::npos) continue;
    keys[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(keys["Restart"], "on-failure");
  EXPECT_EQ(keys["RestartPreventExitStatus"], "2");  // bad usage or config (main.cc)
  EXPECT_GT(SystemdSeconds(keys["TimeoutStopSec"]), ProgramConfig{}.shutdown_timeout);
  EXPECT_NE(keys["ExecStart"].find("dataflow run "), std::string::npos);
}

TEST(DeployTest, DockerfileExposesTheOpsPortAndStopsWithSigterm) {
  const std::string dockerfile = Slurp(kSource / "Dockerfile");
  const ProgramConfig defaults;
  EXPECT_TRUE(std::regex_search(
      dockerfile, std::regex("\\nEXPOSE " + std::to_string(defaults.ops.port) + "\\n")));
  EXPECT_NE(dockerfile.find("\nSTOPSIGNAL SIGTERM\n"), std::string::npos);
  EXPECT_NE(dockerfile.find(R"(ENTRYPOINT ["dataflow", "run", "/etc/dataflow/config.yaml"])"),
            std::string::npos);
  EXPECT_NE(dockerfile.find("FROM debian:12-slim"), std::string::npos);
  EXPECT_TRUE(std::regex_search(dockerfile, std::regex(R"(\nUSER [1-9][0-9]*)"))) << "non-root";
}

}  // namespace
}  // namespace dataflow::app
