#include "dataflow/cache/redis_stub.h"

#include <absl/status/status.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <hiredis/hiredis.h>

#include <condition_variable>
#include <mutex>
#include <vector>

namespace dataflow::cache {
namespace {

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval ToTimeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

class HiredisStub final : public RedisStub {
 public:
  HiredisStub(RedisOptions config, std::string host, int port)
      : config_(std::move(config)), host_(std::move(host)), port_(port) {}

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    const char* argv[] = {"GET", key.data()};
    const size_t lens[] = {3, key.size()};
    auto reply = Command(2, argv, lens);
    if (!reply.ok()) return reply.status();
    redisReply* r = reply->get();
    if (r->type == REDIS_REPLY_NIL) return std::nullopt;
    if (r->type == REDIS_REPLY_STRING)
      return std::optional<std::string>(std::string(r->str, r->len));
    return absl::InternalError(absl::StrCat("redis GET: unexpected reply type ", r->type));
  }

  absl::Status Set(std::string_view key, std::string_view value,
                   std::chrono::milliseconds ttl) override {
    const std::string px = std::to_string(ttl.count());
    const char* argv[] = {"SET", key.data(), value.data(), "PX", px.c_str()};
    const size_t lens[] = {3, key.size(), value.size(), 2, px.size()};
    auto reply = Command(ttl.count() > 0 ? 5 : 3, argv, lens);
    return reply.ok() ? absl::OkStatus() : reply.status();
  }

  absl::Status Del(std::string_view key) override {
    const char* argv[] = {"DEL", key.data()};
    const size_t lens[] = {3, key.size()};
    auto reply = Command(2, argv, lens);
    return reply.ok() ? absl::OkStatus() : reply.status();
  }

  absl::Status Ping() override {
    const char* argv[] = {"PING"};
    const size_t lens[] = {4};
    auto reply = Command(1, argv, lens);
    return reply.ok() ? absl::OkStatus() : reply.status();
  }

  void Close() override {
    std::lock_guard lock(mu_);
    closed_ = true;
    idle_.clear();
    cv_.notify_all();
  }

 private:
  // Runs one command on a pooled connection. A connection that saw an I/O error is
  // dropped (hiredis cannot reuse it); a Redis error reply keeps it.
  absl::StatusOr<Reply> Command(int argc, const char** argv, const size_t* lens) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Context c = std::move(*conn);
    Reply reply(static_cast<redisReply*>(redisCommandArgv(c.get(), argc, argv, lens)));
    if (reply == nullptr) {
      absl::Status s = absl::UnavailableError(
          absl::StrCat("redis ", config_.addr, ": ", argv[0],
                       " failed: ", c->errstr[0] != '\0' ? c->errstr : "connection lost"));
      Release(nullptr);
      return s;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      std::string msg(reply->str, reply->len);
      Release(std::move(c));
      return absl::InternalError(absl::StrCat("redis ", config_.addr, ": ", argv[0], ": ", msg));
    }
    Release(std::move(c));
    return reply;
  }

  absl::StatusOr<Context> Acquire() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return closed_ || !idle_.empty() || open_ < config_.pool_size; });
      if (closed_) return absl::FailedPreconditionError("redis: client closed");
      if (!idle_.empty()) {
        Context c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      ++open_;  // reserve a slot; connect outside the lock
    }
    auto c = Connect();
    if (!c.ok()) Release(nullptr);
    return c;
  }

  // Returns a connection to the pool, or (null) gives back its slot.
  void Release(Context c) {
    std::lock_guard lock(mu_);
    if (c != nullptr && !closed_) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
    cv_.notify_one();
  }

  absl::StatusOr<Context> Connect() {
    Context c(redisConnectWithTimeout(host_.c_str(), port_, ToTimeval(config_.connect_timeout)));
    if (c == nullptr) return absl::ResourceExhaustedError("redis: cannot allocate a context");
    if (c->err != 0) {
      return absl::UnavailableError(
          absl::StrCat("redis: cannot connect to ", config_.addr, ": ", c->errstr));
    }
    redisSetTimeout(c.get(), ToTimeval(config_.command_timeout));
    if (!config_.password.empty()) {
      Reply r(static_cast<redisReply*>(
          redisCommand(c.get(), "AUTH %b", config_.password.data(), config_.password.size())));
      if (r == nullptr) {
        return absl::UnavailableError(absl::StrCat("redis ", config_.addr, ": AUTH: ", c->errstr));
      }
      if (r->type == REDIS_REPLY_ERROR) {
        return absl::PermissionDeniedError(
            absl::StrCat("redis ", config_.addr, ": AUTH rejected: ", std::string(r->str, r->len)));
      }
    }
    if (config_.db != 0) {
      Reply r(static_cast<redisReply*>(redisCommand(c.get(), "SELECT %d", config_.db)));
      if (r == nullptr) {
        return absl::UnavailableError(
            absl::StrCat("redis ", config_.addr, ": SELECT: ", c->errstr));
      }
      if (r->type == REDIS_REPLY_ERROR) {
        return absl::InvalidArgumentError(absl::StrCat(
            "redis ", config_.addr, ": SELECT ", config_.db, ": ", std::string(r->str, r->len)));
      }
    }
    return c;
  }

  const RedisOptions config_;
  const std::string host_;
  const int port_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Context> idle_;
  int open_ = 0;  // connections in use or idle, plus ones being opened
  bool closed_ = false;
};

}  // namespace

absl::StatusOr<std::shared_ptr<RedisStub>> MakeRedisStub(const RedisOptions& config) {
  const auto colon = config.addr.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(config.addr).substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("RedisOptions.addr must be host:port, got \"", config.addr, "\""));
  }
  if (config.db < 0) return absl::InvalidArgumentError("RedisOptions.db must be >= 0");
  if (config.pool_size <= 0)
    return absl::InvalidArgumentError("RedisOptions.pool_size must be > 0");
  if (config.cache_ttl.count() < 0) {
    return absl::InvalidArgumentError("RedisOptions.cache_ttl must be >= 0");
  }
  if (config.connect_timeout.count() <= 0 || config.command_timeout.count() <= 0) {
    return absl::InvalidArgumentError("RedisOptions timeouts must be > 0");
  }
  if (config.retry_interval.count() < 0) {
    return absl::InvalidArgumentError("RedisOptions.retry_interval must be >= 0");
  }
  auto stub = std::make_shared<HiredisStub>(config, config.addr.substr(0, colon), port);
  if (absl::Status s = stub->Ping(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("redis connect check failed: ", s.message()));
  }
  return stub;
}

}  // namespace dataflow::cache
