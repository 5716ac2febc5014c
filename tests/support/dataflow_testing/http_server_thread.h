// Runs an httplib::Server's accept loop on its own thread for a test stand-in, and stops it
// reliably. httplib's stop() does nothing until the accept loop has started, so stopping a
// server that was bound but whose thread had not yet reached listen_after_bind() would leave
// the join waiting forever; Stop() waits for the loop to start (or end) first.
// Header-only; Start and Stop from one thread.
#pragma once

#include <httplib.h>

#include <atomic>
#include <thread>

namespace dataflow::testing {

class HttpServerThread {
 public:
  HttpServerThread() = default;
  ~HttpServerThread() { Stop(); }
  HttpServerThread(const HttpServerThread&) = delete;
  HttpServerThread& operator=(const HttpServerThread&) = delete;

  // `server` is bound already (bind_to_any_port listens, so early connections wait in the
  // backlog) and must outlive Stop().
  void Start(httplib::Server& server) {
    server_ = &server;
    thread_ = std::thread([this] {
      server_->listen_after_bind();
      ended_ = true;
    });
  }
  void Stop() {
    if (!thread_.joinable()) return;
    while (!server_->is_running() && !ended_) std::this_thread::yield();
    server_->stop();
    thread_.join();
  }

 private:
  httplib::Server* server_ = nullptr;
  std::thread thread_;
  std::atomic<bool> ended_{false};
};

}  // namespace dataflow::testing
