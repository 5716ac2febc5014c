#include "dataflow_testing/gcs_fake_server.h"

#include <httplib.h>

#include <cstdlib>
#include <regex>

namespace dataflow::testing {
namespace {

constexpr std::size_t kQuantum = 256 * 1024;

void Reply(httplib::Response& res, int status, const std::string& body = "") {
  res.status = status;
  res.set_content(body, "application/json");
}

}  // namespace

GcsFakeServer::GcsFakeServer() : server_(std::make_unique<httplib::Server>()) {
  auto& s = *server_;
  // Bucket creation: POST /storage/v1/b?project=P {"name": "..."}.
  s.Post("/storage/v1/b", [this](const httplib::Request& req, httplib::Response& res) {
    std::smatch m;
    static const std::regex kName(R"re("name"\s*:\s*"([^"]+)")re");
    if (!req.has_param("project") || !std::regex_search(req.body, m, kName)) {
      return Reply(res, 400, R"({"error":"project parameter and name are required"})");
    }
    std::lock_guard lock(mu_);
    if (!buckets_.emplace(m[1].str(), std::map<std::string, std::string>{}).second) {
      return Reply(res, 409, R"({"error":"bucket exists"})");
    }
    Reply(res, 200, "{\"name\":\"" + m[1].str() + "\"}");
  });
  s.Post(R"(/upload/storage/v1/b/([^/]+)/o)",
         [this](const httplib::Request& req, httplib::Response& res) {
           const std::string bucket = req.matches[1];
           const std::string type = req.get_param_value("uploadType");
           const std::string name = req.get_param_value("name");
           if (name.empty()) return Reply(res, 400, R"({"error":"name is required"})");
           ++create_requests;
           // GCS's limit on object names (UTF-8 bytes).
           if (name.size() > 1024) return Reply(res, 400, R"({"error":"invalid object name"})");
           std::lock_guard lock(mu_);
           auto b = buckets_.find(bucket);
           if (b == buckets_.end()) return Reply(res, 404, R"({"error":"no such bucket"})");
           const bool must_not_exist = req.has_param("ifGenerationMatch") &&
                                       req.get_param_value("ifGenerationMatch") == "0";
           if (must_not_exist && b->second.contains(name)) {
             ++preconditions_failed;
             return Reply(res, 412, R"({"error":"conditionNotMet"})");
           }
           if (type == "media") {
             b->second[name] = req.body;
             if (lose_next_media_reply.load() > 0) {
               --lose_next_media_reply;
               return Reply(res, 503, R"({"error":"reply lost"})");
             }
             return Reply(res, 200, "{\"name\":\"" + name + "\"}");
           }
           if (type == "resumable") {
             const std::string id = std::to_string(next_session_++);
             sessions_[id] = Session{.bucket = bucket, .name = name};
             res.set_header("Location", "http://127.0.0.1:" + std::to_string(port_) +
                                            "/upload/storage/v1/b/" + bucket +
                                            "/o?uploadType=resumable&upload_id=" + id);
             return Reply(res, 200);
           }
           Reply(res, 501, R"({"error":"uploadType not implemented by the fake"})");
         });
  s.Put(R"(/upload/storage/v1/b/([^/]+)/o)", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(req.get_param_value("upload_id"));
    if (it == sessions_.end()) return Reply(res, 404, R"({"error":"no such session"})");
    Session& session = it->second;
    const std::string range = req.get_header_value("Content-Range");
    auto committed_reply = [&] {
      if (!session.data.empty()) {
        res.set_header("Range", "bytes=0-" + std::to_string(session.data.size() - 1));
      }
      Reply(res, 308);
    };
    std::smatch m;
    static const std::regex kQuery(R"(bytes \*/(\d+|\*))");
    static const std::regex kChunk(R"(bytes (\d+)-(\d+)/(\d+|\*))");
    if (std::regex_match(range, m, kQuery)) {
      ++status_queries;
      if (!req.body.empty()) return Reply(res, 400, R"({"error":"a status query has no body"})");
      if (session.done) return Reply(res, 200, "{\"name\":\"" + session.name + "\"}");
      if (m[1] != "*" && std::stoull(m[1]) == session.data.size() && !session.data.empty()) {
        // Everything arrived; a query naming the total finalises (an empty last chunk).
        session.done = true;
        buckets_[session.bucket][session.name] = session.data;
        return Reply(res, 200, "{\"name\":\"" + session.name + "\"}");
      }
      return committed_reply();
    }
    if (!std::regex_match(range, m, kChunk)) {
      return Reply(res, 400, R"({"error":"bad Content-Range"})");
    }
    if (session.done) return Reply(res, 400, R"({"error":"session already finalised"})");
    if (fail_next_chunks.load() > 0) {
      --fail_next_chunks;
      return Reply(res, 503, R"({"error":"injected"})");
    }
    const std::size_t first = std::stoull(m[1]), last = std::stoull(m[2]);
    const bool final_chunk = m[3] != "*";
    if (first != session.data.size() || last < first || req.body.size() != last - first + 1) {
      return Reply(res, 400, R"({"error":"chunk does not continue at the committed offset"})");
    }
    if (!final_chunk && req.body.size() % kQuantum != 0) {
      return Reply(res, 400, R"({"error":"non-final chunk not a multiple of 256 KiB"})");
    }
    if (final_chunk && std::stoull(m[3]) != last + 1) {
      return Reply(res, 400, R"({"error":"total does not match the last byte"})");
    }
    session.data += req.body;
    ++chunk_puts;
    if (!final_chunk) return committed_reply();
    auto& objects = buckets_[session.bucket];
    if (objects.contains(session.name)) {
      ++preconditions_failed;
      return Reply(res, 412, R"({"error":"conditionNotMet"})");
    }
    session.done = true;
    objects[session.name] = session.data;
    Reply(res, 200, "{\"name\":\"" + session.name + "\"}");
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      res.status = 501;
      res.set_content(R"({"error":"not implemented by the fake"})", "application/json");
    }
  });
  port_ = s.bind_to_any_port("127.0.0.1");
  accept_loop_.Start(s);
}

GcsFakeServer::~GcsFakeServer() { accept_loop_.Stop(); }

void GcsFakeServer::CreateBucket(const std::string& bucket) {
  std::lock_guard lock(mu_);
  buckets_[bucket];
}

std::string GcsFakeServer::Object(const std::string& bucket, const std::string& name, bool* found) {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  *found = b != buckets_.end() && b->second.contains(name);
  return *found ? b->second.at(name) : std::string();
}

std::vector<std::string> GcsFakeServer::Names(const std::string& bucket) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, data] : buckets_[bucket]) out.push_back(name);
  return out;
}

}  // namespace dataflow::testing
