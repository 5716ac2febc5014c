// A strict wire-level fake of the few GCS JSON API calls the Cloud Storage emulator gets
// wrong or lacks: multi-chunk resumable uploads (Content-Range checked against the committed
// offset, 256 KiB chunk units, 308 + Range replies, status queries), bucket creation, and
// the ifGenerationMatch=0 precondition (412 when the object exists). Also simple media
// uploads and alt=media downloads, so a test can read back what it wrote. Requests it does
// not implement get 501, and malformed ones 400, so a client bug shows as a failure.
// Fault injection: the next N chunk PUTs fail with 503, or the next media upload is stored
// but answered with 503 (a lost reply). Runs in-process on a free loopback port. Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataflow_testing/http_server_thread.h"

namespace dataflow::testing {

class GcsFakeServer {
 public:
  GcsFakeServer();  // starts listening; port() is ready when the constructor returns
  ~GcsFakeServer();
  GcsFakeServer(const GcsFakeServer&) = delete;
  GcsFakeServer& operator=(const GcsFakeServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void CreateBucket(const std::string& bucket);
  // The object's bytes, or nullptr-like empty optional semantics via `found`.
  std::string Object(const std::string& bucket, const std::string& name, bool* found);
  std::vector<std::string> Names(const std::string& bucket);

  std::atomic<int> fail_next_chunks{0};       // chunk PUTs answered 503 without storing
  std::atomic<int> lose_next_media_reply{0};  // media uploads stored, then answered 503
  std::atomic<int> chunk_puts{0};             // PUTs with data, accepted
  std::atomic<int> status_queries{0};         // "bytes */total" PUTs
  std::atomic<int> preconditions_failed{0};   // 412 replies
  std::atomic<int> create_requests{0};        // object-create POSTs (media or resumable)

 private:
  struct Session {
    std::string bucket, name, data;
    bool done = false;
  };
  std::mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> buckets_;
  std::map<std::string, Session> sessions_;
  int next_session_ = 1;
  std::unique_ptr<httplib::Server> server_;
  HttpServerThread accept_loop_;  // after server_: stopped before it goes
  int port_ = 0;
};

}  // namespace dataflow::testing
