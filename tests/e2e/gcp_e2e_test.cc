// Opt-in (ctest label `gcp`): the end-to-end pipeline of pipeline_e2e_test.cc, run as the
// `dataflow` program, against Google's own services instead of emulators:
//   MQTT (a local Mosquitto) → ingestion → Pub/Sub → enrichment (LRU → Firestore) → Pub/Sub →
//   {BigQuery (Storage Write API), Cloud Storage (gzip JSONL)}
// in scratch resources named dataflow-e2e-<unix time>-<pid> that it deletes afterwards.
// Skipped, saying what to set, unless DATAFLOW_GCP_PROJECT, DATAFLOW_GCP_BUCKET and Application
// Default Credentials are given; skipped too when any *_EMULATOR_HOST variable is set (the
// clients would talk to an emulator, not to Google). docs/operations.md ("Running against
// Google Cloud") lists the roles it needs and what has and has not been run against Google.
// Keep a single TEST in this binary: ctest marks the whole binary skipped when gtest prints
// "[  SKIPPED ]" (SKIP_REGULAR_EXPRESSION), whatever the other tests did.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dataflow/cache/firestore.h"
#include "dataflow/gcp/access_token.h"
#include "dataflow/gcp/http_client.h"
#include "dataflow/gcp/project.h"
#include "dataflow/pubsub/admin.h"
#include "dataflow/pubsub/pubsub_stub.h"
#include "dataflow_testing/mosquitto_server.h"
#include "dataflow_testing/server_process.h"
#include "e2e_readings.h"

extern char** environ;  // NOLINT: POSIX

namespace dataflow::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kBigQuery[] = "https://bigquery.googleapis.com/bigquery/v2/projects/";
constexpr char kStorage[] = "https://storage.googleapis.com/storage/v1/b/";
constexpr char kTable[] = "readings";
constexpr int kDevices = 4;  // device-3 has no Firestore document: it passes unenriched
constexpr int kReadings = 20;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// Empty when the run is enabled (and project, bucket and tokens are set), else why not.
std::string WhyNotEnabled(std::string& project, std::string& bucket,
                          std::shared_ptr<gcp::AccessTokenProvider>& tokens) {
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    if (name.ends_with("_EMULATOR_HOST") && entry.size() > name.size() + 1) {
      return absl::StrCat(std::string(name),
                          " is set: this test runs only against Google's services; unset every "
                          "*_EMULATOR_HOST variable to run it");
    }
  }
  project = Env("DATAFLOW_GCP_PROJECT");
  bucket = Env("DATAFLOW_GCP_BUCKET");
  if (project.empty() || bucket.empty()) {
    return absl::StrCat(
        project.empty() ? "DATAFLOW_GCP_PROJECT" : "DATAFLOW_GCP_BUCKET",
        " is not set. To run this test against Google Cloud, set DATAFLOW_GCP_PROJECT=<project "
        "id> and DATAFLOW_GCP_BUCKET=<an existing bucket the credentials may write to and delete "
        "in>, with Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, or `gcloud "
        "auth application-default login`); docs/operations.md, \"Running against Google "
        "Cloud\"");
  }
  if (auto valid = gcp::ValidateProjectId(project); !valid.ok()) {
    return absl::StrCat("DATAFLOW_GCP_PROJECT: ", valid.message());
  }
  if (bucket.find('/') != std::string::npos) {
    return "DATAFLOW_GCP_BUCKET must be a bucket name (no gs://, no '/')";
  }
  auto adc = gcp::MakeDefaultAccessTokenProvider();
  if (!adc.ok()) {
    return absl::StrCat(
        "DATAFLOW_GCP_PROJECT and DATAFLOW_GCP_BUCKET are set but no Application Default "
        "Credentials resolve (set GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth "
        "application-default login`): ",
        adc.status().message());
  }
  tokens = *std::move(adc);
  return "";
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class GcpPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = WhyNotEnabled(project_, bucket_, tokens_); !why.empty()) {
      GTEST_SKIP() << why;
    }
    enabled_ = true;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    tag_ = absl::StrCat("dataflow-e2e-", now, "-", ::getpid());
    dataset_ = absl::StrReplaceAll(tag_, {{"-", "_"}});  // dataset ids: letters, digits, '_'
    dir_ = fs::temp_directory_path() / tag_;
    fs::create_directories(dir_);
    http_ = gcp::MakeCurlHttpClient();
    std::printf("[gcp e2e] project %s, scratch resources named %s (dataset %s, gs://%s/%s/)\n",
                project_.c_str(), tag_.c_str(), dataset_.c_str(), bucket_.c_str(), tag_.c_str());

    auto mosquitto = MosquittoServer::Start();
    ASSERT_TRUE(mosquitto.ok()) << mosquitto.status();
    mosquitto_ = *std::move(mosquitto);
    auto firestore =
        cache::MakeFirestoreDocumentStub({.project_id = project_, .collection_name = tag_});
    ASSERT_TRUE(firestore.ok()) << firestore.status();
    firestore_ = *std::move(firestore);
  }

  // Runs after a failed assertion too: whatever was created is deleted, and what could not
  // be deleted fails the test, named, so it can be removed by hand.
  void TearDown() override {
    if (!enabled_) return;
    if (process_ != nullptr) process_->Stop(std::chrono::seconds(60));
    Cleanup();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string Topic(const std::string& name) const { return tag_ + "-" + name; }
  std::vector<std::string> Subscriptions() const {
    return {Topic("raw-enrichment"), Topic("enriched-bigquery"), Topic("enriched-icestore")};
  }
  std::vector<std::string> Topics() const { return {Topic("raw"), Topic("enriched")}; }

  // Device documents device-0 .. device-(kDevices-2) in the collection named tag_.
  void SeedRegistry() {
    for (int i = 0; i + 1 < kDevices; ++i) {
      seeded_.push_back(DeviceId(i));  // before Set: a half-done write is deleted too
      const absl::Status set = firestore_->Set(
          DeviceId(i),
          {{"name", "Sensor " + std::to_string(i)}, {"location", i % 2 == 0 ? "london" : "paris"}});
      ASSERT_TRUE(set.ok()) << "Firestore: " << set;
    }
  }

  std::string Config(int ops_port) const {
    return absl::StrCat("project: ", project_,
                        "\ncreate_pubsub_resources: true\nshutdown_timeout: 30s\n"
                        "ops: {host: 127.0.0.1, port: ",
                        ops_port,
                        "}\nservices:\n"
                        "  - name: ingestion\n"
                        "    ingestion:\n"
                        "      mqtt:\n"
                        "        broker_url: ",
                        mosquitto_->url(), "\n        client_id: ", tag_,
                        "\n        topic_mappings: [{name: telemetry, topic: \"", tag_,
                        "/+/telemetry\", qos: 1}]\n"
                        "      sink: pubsub\n"
                        "      routes: {telemetry: ",
                        Topic("raw"),
                        "}\n"
                        "  - name: enrichment\n"
                        "    enrichment:\n"
                        "      source: {pubsub: {subscription: ",
                        Topic("raw-enrichment"), ", topic: ", Topic("raw"),
                        "}}\n"
                        "      sink: pubsub\n"
                        "      topic: ",
                        Topic("enriched"),
                        "\n      key: {json_field: deviceId}\n"
                        "      cache:\n"
                        "        lru: {max_size: 100}\n"
                        "        firestore: {collection: ",
                        tag_,
                        "}\n"
                        "      on_not_found: pass_unenriched\n"
                        "      on_error: nack\n"
                        "  - name: bigquery\n"
                        "    bigquery:\n"
                        "      source: {pubsub: {subscription: ",
                        Topic("enriched-bigquery"), ", topic: ", Topic("enriched"),
                        "}}\n"
                        "      batch_size: 50\n"
                        "      flush_interval: 1s\n"
                        "      table: {dataset: ",
                        dataset_, ", table: ", kTable, ", create_dataset: true}\n",
                        kReadingsSchemaYaml,
                        "  - name: icestore\n"
                        "    icestore:\n"
                        "      source: {pubsub: {subscription: ",
                        Topic("enriched-icestore"), ", topic: ", Topic("enriched"),
                        "}}\n"
                        "      batch_size: 100\n"
                        "      flush_interval: 2s\n"
                        "      gcs: {bucket: ",
                        bucket_, ", prefix: ", tag_, "}\n");
  }

  // One authorized REST call; any HTTP status is a response.
  absl::StatusOr<gcp::HttpResponse> Call(const std::string& method, const std::string& url,
                                         const std::string& body = "") {
    auto token = tokens_->Token();
    if (!token.ok()) return token.status();
    gcp::HttpRequest request{.method = method, .url = url, .body = body};
    request.headers["Authorization"] = "Bearer " + *token;
    if (!body.empty()) request.headers["Content-Type"] = "application/json";
    return http_->Send(request);
  }
  static absl::Status Check(const absl::StatusOr<gcp::HttpResponse>& r, const std::string& what) {
    if (!r.ok()) return r.status();
    if (r->status >= 200 && r->status < 300) return absl::OkStatus();
    const std::string error =
        absl::StrCat(what, ": HTTP ", r->status, ": ", r->body.substr(0, 500));
    return r->status == 404 ? absl::NotFoundError(error) : absl::UnknownError(error);
  }

  // The table's rows through a query (jobs.query): rows the Storage Write API committed are
  // visible to queries at once, while tabledata.list may not show them for a while.
  absl::StatusOr<std::vector<nlohmann::json>> Rows() {
    const nlohmann::json request = {
        {"query", absl::StrCat("SELECT temperature, device_id, device_name, location FROM `",
                               project_, ".", dataset_, ".", kTable, "`")},
        {"useLegacySql", false},
        {"useQueryCache", false},
        {"timeoutMs", 20000},
        {"maxResults", 10000}};
    auto r = Call("POST", absl::StrCat(kBigQuery, project_, "/queries"), request.dump());
    if (auto s = Check(r, "jobs.query"); !s.ok()) return s;
    const auto response = nlohmann::json::parse(r->body, nullptr, false);
    if (!response.is_object()) return absl::InternalError("jobs.query: not JSON: " + r->body);
    if (!response.value("jobComplete", false)) {
      return absl::UnavailableError("jobs.query: the query did not complete within timeoutMs");
    }
    if (!response.value("pageToken", std::string()).empty()) {
      return absl::InternalError("jobs.query: more rows than one page (the test sends few)");
    }
    // Each row is {"f": [{"v": value}, ...]} in the SELECT's column order; values are strings
    // (or null).
    std::vector<nlohmann::json> rows;
    try {
      for (const auto& row : response.value("rows", nlohmann::json::array())) {
        const auto& f = row.at("f");
        rows.push_back({{"temperature", std::stod(f.at(0).at("v").get<std::string>())},
                        {"device_id", f.at(1).at("v")},
                        {"device_name", f.at(2).at("v")},
                        {"location", f.at(3).at("v")}});
      }
    } catch (const std::exception& e) {  // nlohmann's and std::stod's
      return absl::InternalError(
          absl::StrCat("jobs.query: unexpected rows (", e.what(), "): ", r->body.substr(0, 500)));
    }
    return rows;
  }
  SeenReadings SeenRows() {
    SeenReadings seen;
    auto rows = Rows();
    if (!rows.ok()) {
      last_error_ = rows.status().ToString();
      return seen;
    }
    for (const auto& row : *rows) seen.Add(static_cast<int>(row["temperature"].get<double>()));
    return seen;
  }

  // Names of the objects under gs://bucket/tag_/ (objects.list, every page).
  absl::StatusOr<std::vector<std::string>> ListObjects() {
    std::vector<std::string> names;
    std::string page;
    do {
      std::string url =
          absl::StrCat(kStorage, gcp::UrlEncode(bucket_), "/o?prefix=", gcp::UrlEncode(tag_ + "/"));
      if (!page.empty()) absl::StrAppend(&url, "&pageToken=", gcp::UrlEncode(page));
      auto r = Call("GET", url);
      if (auto s = Check(r, "objects.list"); !s.ok()) return s;
      const auto response = nlohmann::json::parse(r->body, nullptr, false);
      if (!response.is_object()) return absl::InternalError("objects.list: not JSON");
      for (const auto& item : response.value("items", nlohmann::json::array())) {
        names.push_back(item.at("name").get<std::string>());
      }
      page = response.value("nextPageToken", std::string());
    } while (!page.empty());
    return names;
  }
  std::string ObjectUrl(const std::string& name) const {
    return absl::StrCat(kStorage, gcp::UrlEncode(bucket_), "/o/", gcp::UrlEncode(name));
  }
  SeenReadings ArchivedLines() {
    SeenReadings seen;
    auto names = ListObjects();
    if (!names.ok()) {
      last_error_ = names.status().ToString();
      return seen;
    }
    for (const auto& name : *names) {
      auto r = Call("GET", ObjectUrl(name) + "?alt=media");
      if (auto s = Check(r, "objects.get " + name); !s.ok()) {
        last_error_ = s.ToString();
        continue;
      }
      if (auto added = AddArchivedReadings(r->body, seen); !added.ok()) {
        ADD_FAILURE() << name << ": " << added;
      }
    }
    return seen;
  }

  void Cleanup() {
    std::vector<std::string> deleted, absent, failed;
    auto note = [&](const absl::Status& s, const std::string& what) {
      if (s.ok()) {
        deleted.push_back(what);
      } else if (absl::IsNotFound(s)) {
        absent.push_back(what);  // never created (the test stopped before)
      } else {
        failed.push_back(what + ": " + s.ToString());
      }
    };
    // Pub/Sub: subscriptions first, so none is left attached to a deleted topic.
    auto stub = pubsub::MakePubsubStub();
    if (!stub.ok()) {
      failed.push_back("Pub/Sub: no client: " + stub.status().ToString());
    } else {
      for (const auto& s : Subscriptions()) {
        note(pubsub::DeleteSubscription(**stub, project_, s), "subscription " + s);
      }
      for (const auto& t : Topics()) note(pubsub::DeleteTopic(**stub, project_, t), "topic " + t);
    }
    note(Check(Call("DELETE", absl::StrCat(kBigQuery, project_, "/datasets/", dataset_,
                                           "?deleteContents=true")),
               "datasets.delete"),
         "dataset " + dataset_);
    if (auto names = ListObjects(); !names.ok()) {
      failed.push_back("objects under gs://" + bucket_ + "/" + tag_ +
                       "/: " + names.status().ToString());
    } else {
      for (const auto& name : *names) {
        note(Check(Call("DELETE", ObjectUrl(name)), "objects.delete"),
             "gs://" + bucket_ + "/" + name);
      }
    }
    if (firestore_ != nullptr) {
      for (const auto& id : seeded_) {
        note(firestore_->Delete(id), "Firestore document " + tag_ + "/" + id);
      }
    }
    std::printf("[gcp e2e] cleanup: %zu deleted, %zu not found (never created), %zu failed\n",
                deleted.size(), absent.size(), failed.size());
    for (const auto& what : absent) std::printf("[gcp e2e]   not found: %s\n", what.c_str());
    for (const auto& what : failed) ADD_FAILURE() << "cleanup failed, delete by hand: " << what;
  }

  bool enabled_ = false;
  std::string project_, bucket_, tag_, dataset_, last_error_;
  std::shared_ptr<gcp::AccessTokenProvider> tokens_;
  std::shared_ptr<gcp::HttpClient> http_;
  std::shared_ptr<cache::FirestoreDocumentStub> firestore_;
  std::vector<std::string> seeded_;
  fs::path dir_;
  std::unique_ptr<MosquittoServer> mosquitto_;
  std::unique_ptr<ServerProcess> process_;
};

TEST_F(GcpPipelineTest, EveryReadingIsStoredInBigQueryAndArchivedInCloudStorage) {
  const int ops_port = FreeTcpPort();
  const fs::path config = dir_ / "gcp.yaml";
  std::ofstream(config) << Config(ops_port);
  SeedRegistry();
  if (HasFatalFailure()) return;
  // Creating topics, subscriptions, the dataset and the table on Google takes seconds each.
  auto process = ServerProcess::Start(
      {.name = "dataflow-gcp",
       .argv = {DATAFLOW_BINARY, "run", config.string()},
       .env = {{"DATAFLOW_LOG_LEVEL", "info"}},
       .ready = [ops_port] { return HttpGetStatus(ops_port, "/readyz") == 200; },
       .ready_timeout = std::chrono::seconds(180)});
  ASSERT_TRUE(process.ok()) << process.status();
  process_ = *std::move(process);

  PublishReadings(mosquitto_->url(), tag_ + "-devices", tag_, 0, kReadings, kDevices);
  // Polled every 5 s (each poll is a query, a listing and downloads), for at most 5 minutes.
  const bool arrived = WaitFor(
      [&] {
        return SeenRows().distinct() >= static_cast<std::size_t>(kReadings) &&
               ArchivedLines().distinct() >= static_cast<std::size_t>(kReadings);
      },
      std::chrono::minutes(5), std::chrono::seconds(5));
  auto rows = Rows();
  ASSERT_TRUE(rows.ok()) << rows.status();
  SeenReadings stored;
  for (const auto& row : *rows) stored.Add(static_cast<int>(row["temperature"].get<double>()));
  const SeenReadings archived = ArchivedLines();
  EXPECT_TRUE(arrived) << "rows " << stored.distinct() << "/" << kReadings << ", archived lines "
                       << archived.distinct() << "/" << kReadings
                       << "; last error: " << last_error_;
  for (int n = 0; n < kReadings; ++n) {
    EXPECT_TRUE(stored.copies.contains(n)) << "reading " << n << " has no row";
    EXPECT_TRUE(archived.copies.contains(n)) << "reading " << n << " was not archived";
  }
  // Enriched from the Firestore documents written above; the device without one is not.
  for (const auto& row : *rows) {
    const int device = static_cast<int>(row["temperature"].get<double>()) % kDevices;
    EXPECT_EQ(row["device_id"], DeviceId(device)) << row.dump();
    if (device + 1 < kDevices) {
      EXPECT_EQ(row["device_name"], "Sensor " + std::to_string(device)) << row.dump();
      EXPECT_EQ(row["location"], device % 2 == 0 ? "london" : "paris") << row.dump();
    } else {
      EXPECT_TRUE(row["device_name"].is_null()) << "unknown device enriched: " << row.dump();
    }
  }
  std::printf(
      "[gcp e2e] %d readings: %zu rows (%zu duplicates), %zu archived lines (%zu "
      "duplicates)\n",
      kReadings, stored.total, stored.duplicates(), archived.total, archived.duplicates());

  process_->Stop(std::chrono::seconds(60));
  EXPECT_EQ(process_->last_exit_code(), 0) << Slurp(process_->log_path());
}

}  // namespace
}  // namespace dataflow::testing
