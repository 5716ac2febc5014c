// Enriched messages/s through EnrichmentService over the in-process broker (in and out), beside
// the core StreamingService with a no-op stage over the same broker, in the same run:
//
//   BM_BaselineNoOpStage         (c) StreamingService: consume → publish the envelope → ack
//   BM_EnrichAllHitL1            (a) EnrichmentService, LRU holding every device (warm)
//   BM_EnrichL1Miss10Redis/W     (b) LRU holding 90 % of the devices → RedisCache (real server),
//                                W = 5 (the default) and 10 workers
//   BM_EnrichL1Miss10FreeL2      (b') the same LRU → an in-memory table: (b) if every Redis
//                                lookup were free, i.e. the most batching could win
//
// and, for the batched-lookup question (docs/enrichment.md): Redis itself from 5 threads (one
// hiredis connection each: GET per key, MGET of k keys, RedisCache::Fetch per key), and a
// batch-aware worker prototype (WorkerPool, LRU, Redis; it lives only here) that fetches a
// popped batch's L1 misses with one GET per key (BM_ProtoBatchGet/W) or one MGET
// (BM_ProtoBatchMget/W). Every pipeline benchmark also reports the CPU this process and
// redis-server spent per message.
//
// The Redis benchmarks need $DATAFLOW_BENCH_REDIS=host:port (bench/enrichment/run.sh starts a
// redis-server on a free port); without it they are skipped with a message.
//
//   build/bench-enrichment/bench/enrichment/enrichment_bench [--benchmark_repetitions=3]
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"
#include "dataflow/enrichment/enricher.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/messagepipeline/publisher.h"
#include "dataflow/messagepipeline/streaming_service.h"

namespace dataflow::enrichment {
namespace {

namespace mp = messagepipeline;
using messagepipeline::Message;

constexpr std::size_t kMessages = 100'000;  // per iteration
constexpr int kDevices = 10'000;
constexpr int kWorkers = 5;  // the service's default
constexpr char kRedisPrefix[] = "bench:";

struct Device {
  std::string name;
  std::string location;
  int floor = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Device, name, location, floor)

std::string DeviceId(int i) { return "dev-" + std::to_string(i); }

// The source of truth, in memory.
class DeviceTable final : public cache::Fetcher<std::string, Device> {
 public:
  DeviceTable() {
    for (int i = 0; i < kDevices; ++i) {
      devices_[DeviceId(i)] = {"Sensor " + std::to_string(i), "building-" + std::to_string(i % 40),
                               i % 12};
    }
  }
  absl::StatusOr<Device> Fetch(const std::string& id) override {
    auto it = devices_.find(id);
    if (it == devices_.end()) return absl::NotFoundError("no device " + id);
    return it->second;
  }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  std::unordered_map<std::string, Device> devices_;
};

// One reading per message for a uniformly random device (fixed seed). Under uniform access an
// LRU holding a fraction f of the devices answers about f of the lookups.
const std::vector<std::string>& Payloads() {
  static const std::vector<std::string> payloads = [] {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> device(0, kDevices - 1);
    std::vector<std::string> out;
    out.reserve(kMessages);
    for (std::size_t i = 0; i < kMessages; ++i) {
      out.push_back(R"({"deviceId":")" + DeviceId(device(rng)) + R"(","temp":21.5,"seq":)" +
                    std::to_string(i) + "}");
    }
    return out;
  }();
  return payloads;
}

// A fresh broker with kMessages waiting on raw-sub; enriched-sub is drained and acked by an
// AckingReader, so publishes complete (end-to-end acknowledgement) as they would in a pipeline.
std::shared_ptr<mp::InProcessBroker> LoadedBroker() {
  // The whole run is published up front, before any consumer: subscriptions must hold it (the
  // default bound would block each publish beyond it for max_publish_block, then fail).
  auto broker = mp::InProcessBroker::Create(
      {.max_subscription_messages = 2 * kMessages, .max_subscription_bytes = std::size_t{1} << 30});
  (void)broker->CreateTopic("raw");
  (void)broker->CreateSubscription("raw-sub", "raw");
  (void)broker->CreateTopic("enriched");
  (void)broker->CreateSubscription("enriched-sub", "enriched");
  for (const auto& payload : Payloads()) {
    (void)broker->Publish("raw", mp::MessageData{.payload = payload});
  }
  return broker;
}

// Pops and acks everything delivered to `subscription` until stopped.
class AckingReader {
 public:
  AckingReader(mp::InProcessBroker& broker, const std::string& subscription)
      : consumer_(*broker.NewConsumer(subscription)) {
    (void)consumer_->Start();
    thread_ = std::jthread([this] {
      std::vector<mp::Message> batch;
      while (consumer_->Messages().PopBatch(batch, 64, 1) > 0) {
        for (auto& m : batch) m.Ack();
        batch.clear();
      }
    });
  }
  ~AckingReader() { (void)consumer_->Stop(std::chrono::steady_clock::now()); }

 private:
  std::shared_ptr<mp::MessageConsumer> consumer_;
  std::jthread thread_;
};

// Signals once kMessages have reached the publishing stage.
struct Progress {
  std::atomic<std::size_t> published{0};
  std::promise<void> all;
  void Count() {
    if (published.fetch_add(1, std::memory_order_relaxed) + 1 == kMessages) all.set_value();
  }
};

mp::AsyncMessageProcessor CountingPublisher(const std::shared_ptr<mp::InProcessBroker>& broker,
                                            Progress* progress) {
  return [publish = mp::PublishEnvelope(broker->NewPublisher(), "enriched"), progress](
             mp::Message& m, mp::Completion done) {
    progress->Count();
    publish(m, std::move(done));
  };
}

double ProcessCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

Context ConnectTo(const std::string& addr) {
  const auto colon = addr.rfind(':');
  Context c(redisConnect(addr.substr(0, colon).c_str(), std::atoi(addr.c_str() + colon + 1)));
  if (c != nullptr && c->err != 0) c.reset();
  return c;
}

// The server's used_cpu_user + used_cpu_sys (INFO cpu), or 0.
double RedisCpuSeconds(redisContext* c) {
  if (c == nullptr) return 0;
  auto* r = static_cast<redisReply*>(redisCommand(c, "INFO cpu"));
  double total = 0;
  if (r != nullptr && r->type == REDIS_REPLY_STRING) {
    const std::string info(r->str, r->len);
    for (const char* field : {"used_cpu_user:", "used_cpu_sys:"}) {
      const auto at = info.find(field);
      if (at != std::string::npos) total += std::atof(info.c_str() + at + std::strlen(field));
    }
  }
  if (r != nullptr) freeReplyObject(r);
  return total;
}

struct PipelineOptions {
  std::shared_ptr<MessageEnricher> enricher;  // checked: every message enriched
  bool redis = false;                         // also meter redis-server's CPU
};

// Times Start → every message published → Stop (which waits for the last acks). `make`
// builds the service over a loaded broker. Besides msg/s, reports the CPU this process and
// (with options.redis) redis-server spent per message: on a shared machine wall-clock rates
// swing with the neighbours' load, CPU per message much less.
template <typename MakeService>
void RunPipeline(benchmark::State& state, MakeService make, PipelineOptions options = {}) {
  Context redis_info;
  if (const char* addr = std::getenv("DATAFLOW_BENCH_REDIS"); options.redis && addr != nullptr) {
    redis_info = ConnectTo(addr);
  }
  double cpu = 0;
  double redis_cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto broker = LoadedBroker();
    auto reader = std::make_unique<AckingReader>(*broker, "enriched-sub");
    Progress progress;
    auto service = make(*broker->NewConsumer("raw-sub"), CountingPublisher(broker, &progress));
    if (!service.ok()) {
      state.SkipWithError(service.status().ToString().c_str());
      return;
    }
    const auto before = options.enricher ? options.enricher->metrics().enriched : 0;
    const double cpu0 = ProcessCpuSeconds();
    const double redis_cpu0 = RedisCpuSeconds(redis_info.get());
    state.ResumeTiming();
    (void)(*service)->Start();
    progress.all.get_future().wait();
    (void)(*service)->Stop(std::chrono::minutes(1));
    state.PauseTiming();
    cpu += ProcessCpuSeconds() - cpu0;
    redis_cpu += RedisCpuSeconds(redis_info.get()) - redis_cpu0;
    if (broker->Stats("raw-sub")->acked != kMessages ||
        broker->Stats("enriched-sub")->acked != kMessages) {
      state.SkipWithError("messages were lost");
    }
    if (options.enricher && options.enricher->metrics().enriched - before != kMessages) {
      state.SkipWithError("not every message was enriched");
    }
    // Freed here, not on the timed side of the loop's end.
    service->reset();
    reader.reset();
    broker.reset();
    state.ResumeTiming();
  }
  const double messages = static_cast<double>(state.iterations() * kMessages);
  state.SetItemsProcessed(static_cast<int64_t>(messages));
  state.counters["cpu_us_per_msg"] = cpu * 1e6 / messages;
  if (options.redis) state.counters["redis_cpu_us_per_msg"] = redis_cpu * 1e6 / messages;
}

// (c) The core service over the same broker, with a stage that does nothing but the publish.
void BM_BaselineNoOpStage(benchmark::State& state) {
  RunPipeline(
      state, [](std::shared_ptr<mp::MessageConsumer> consumer, mp::AsyncMessageProcessor publish) {
        return mp::StreamingService<std::monostate>::CreateAsync(
            {.common = {.name = "baseline", .num_workers = kWorkers}}, std::move(consumer),
            [](const mp::Message&) { return std::optional<std::monostate>(std::monostate{}); },
            [publish = std::move(publish)](mp::Message& m, std::monostate&, mp::Completion done) {
              publish(m, std::move(done));
            });
      });
}

using Lru = cache::InMemoryLruCache<std::string, Device>;

// Runs the enrichment service over `lru`, reporting the LRU hit ratio of the timed runs.
void RunEnrichment(benchmark::State& state, const std::shared_ptr<Lru>& lru, bool redis = false,
                   int workers = kWorkers) {
  auto enricher =
      *MakeEnricher<std::string, Device>(lru, JsonPayloadKey("deviceId"), JsonApplier<Device>());
  const auto before = lru->Stats();
  RunPipeline(
      state,
      [&](std::shared_ptr<mp::MessageConsumer> consumer, mp::AsyncMessageProcessor publish) {
        return EnrichmentService::CreateAsync({.common = {.num_workers = workers}},
                                              std::move(consumer), enricher, std::move(publish));
      },
      {.enricher = enricher, .redis = redis});
  const auto after = lru->Stats();
  const double hits = static_cast<double>(after.hits - before.hits);
  const double misses = static_cast<double>(after.misses - before.misses);
  state.counters["l1_hit_ratio"] = hits / (hits + misses);
}

// Fills the LRU from the chain below it, in key order; with max_size < kDevices it ends up
// holding the last max_size devices, and uniform lookups then miss it at the steady rate.
void Warm(Lru& lru) {
  for (int i = 0; i < kDevices; ++i) (void)lru.Fetch(DeviceId(i));
}

// (a) Every lookup answered by a warm LRU.
void BM_EnrichAllHitL1(benchmark::State& state) {
  // Twice the devices: shards fill unevenly, and none may evict.
  std::shared_ptr<Lru> lru =
      *Lru::Create({.max_size = 2 * kDevices}, std::make_shared<DeviceTable>());
  Warm(*lru);
  RunEnrichment(state, lru);
}

const char* RedisAddr(benchmark::State& state) {
  const char* addr = std::getenv("DATAFLOW_BENCH_REDIS");
  if (addr == nullptr) state.SkipWithError("set DATAFLOW_BENCH_REDIS=host:port (see run.sh)");
  return addr;
}

using Redis = cache::RedisCache<std::string, Device>;

// A RedisCache over the device table, with every device written to Redis.
absl::StatusOr<std::shared_ptr<Redis>> LoadedRedis(const char* addr) {
  auto table = std::make_shared<DeviceTable>();
  auto redis = Redis::Create({.addr = addr, .key_prefix = kRedisPrefix}, table);
  if (!redis.ok()) return redis.status();
  for (int i = 0; i < kDevices; ++i) {
    if (auto s = (*redis)->Write(DeviceId(i), *table->Fetch(DeviceId(i))); !s.ok()) return s;
  }
  return std::shared_ptr<Redis>(*std::move(redis));
}

// (b) 90 % of lookups from the LRU, 10 % from Redis.
void BM_EnrichL1Miss10Redis(benchmark::State& state) {
  const char* addr = RedisAddr(state);
  if (addr == nullptr) return;
  auto redis = LoadedRedis(addr);
  if (!redis.ok()) {
    state.SkipWithError(redis.status().ToString().c_str());
    return;
  }
  std::shared_ptr<Lru> lru = *Lru::Create({.max_size = kDevices * 9 / 10}, *redis);
  Warm(*lru);
  const auto before = (*redis)->Stats();
  RunEnrichment(state, lru, /*redis=*/true, static_cast<int>(state.range(0)));
  const auto after = (*redis)->Stats();
  state.counters["redis_hits"] = benchmark::Counter(static_cast<double>(after.hits - before.hits),
                                                    benchmark::Counter::kAvgIterations);
  if (after.backend_errors != before.backend_errors || after.fallback_calls != 0) {
    state.SkipWithError("Redis did not answer every L1 miss");
  }
}

// (b) with a free L2: the same LRU over the in-memory table.
void BM_EnrichL1Miss10FreeL2(benchmark::State& state) {
  std::shared_ptr<Lru> lru =
      *Lru::Create({.max_size = kDevices * 9 / 10}, std::make_shared<DeviceTable>());
  Warm(*lru);
  RunEnrichment(state, lru);
}

BENCHMARK(BM_BaselineNoOpStage)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EnrichAllHitL1)->UseRealTime()->Unit(benchmark::kMillisecond);
// Also with twice the workers: do more threads hide Redis's latency as well as fewer trips?
BENCHMARK(BM_EnrichL1Miss10Redis)
    ->Arg(kWorkers)
    ->Arg(2 * kWorkers)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EnrichL1Miss10FreeL2)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- Batched lookups: GET per key vs MGET, from kWorkers threads ---

Context Connect(benchmark::State& state) {
  const char* addr = RedisAddr(state);
  if (addr == nullptr) return nullptr;
  Context c = ConnectTo(addr);
  if (c == nullptr) state.SkipWithError("cannot connect to redis");
  return c;
}

// Random device keys, as L1 misses would ask for them.
std::vector<std::string> RedisKeys(unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> device(0, kDevices - 1);
  std::vector<std::string> keys(1 << 14);
  for (auto& k : keys) k = kRedisPrefix + DeviceId(device(rng));
  return keys;
}

// Keys are written by the first thread of the (b) setup or here, whichever runs first.
bool EnsureLoaded(benchmark::State& state) {
  static std::once_flag once;
  static absl::Status loaded;
  std::call_once(once, [&] {
    const char* addr = std::getenv("DATAFLOW_BENCH_REDIS");
    if (addr == nullptr) {
      loaded = absl::FailedPreconditionError("no DATAFLOW_BENCH_REDIS");
      return;
    }
    auto redis = LoadedRedis(addr);
    loaded = redis.status();
  });
  if (!loaded.ok()) state.SkipWithError(loaded.ToString().c_str());
  return loaded.ok();
}

void BM_RedisGetPerKey(benchmark::State& state) {
  if (!EnsureLoaded(state)) return;
  Context c = Connect(state);
  if (c == nullptr) return;
  const auto keys = RedisKeys(7 + static_cast<unsigned>(state.thread_index()));
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & (keys.size() - 1)];
    auto* r = static_cast<redisReply*>(redisCommand(c.get(), "GET %b", key.data(), key.size()));
    if (r == nullptr || r->type != REDIS_REPLY_STRING) state.SkipWithError("GET failed");
    if (r != nullptr) freeReplyObject(r);
  }
  state.SetItemsProcessed(state.iterations());  // keys
}

void BM_RedisMget(benchmark::State& state) {
  if (!EnsureLoaded(state)) return;
  Context c = Connect(state);
  if (c == nullptr) return;
  const auto k = static_cast<std::size_t>(state.range(0));
  const auto keys = RedisKeys(7 + static_cast<unsigned>(state.thread_index()));
  std::vector<const char*> argv(k + 1);
  std::vector<size_t> lens(k + 1);
  argv[0] = "MGET";
  lens[0] = 4;
  std::size_t i = 0;
  for (auto _ : state) {
    for (std::size_t j = 1; j <= k; ++j) {
      const std::string& key = keys[i++ & (keys.size() - 1)];
      argv[j] = key.data();
      lens[j] = key.size();
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(k + 1), argv.data(), lens.data()));
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != k) {
      state.SkipWithError("MGET failed");
    }
    if (r != nullptr) freeReplyObject(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * k));  // keys
}

// Our per-key path: pooled connection, GET, JSON decode.
void BM_RedisCacheFetch(benchmark::State& state) {
  static std::shared_ptr<Redis> redis;
  if (state.thread_index() == 0) {
    const char* addr = RedisAddr(state);
    auto loaded = addr != nullptr && EnsureLoaded(state)
                      ? Redis::Create({.addr = addr, .key_prefix = kRedisPrefix})
                      : absl::StatusOr<std::unique_ptr<Redis>>(absl::UnavailableError("no redis"));
    redis = loaded.ok() ? std::shared_ptr<Redis>(*std::move(loaded)) : nullptr;
  }
  // Other threads wait here until thread 0 has set up (the loop start is a barrier).
  const auto keys = RedisKeys(7 + static_cast<unsigned>(state.thread_index()));
  std::size_t i = 0;
  for (auto _ : state) {
    if (redis == nullptr) {
      state.SkipWithError("no redis (set DATAFLOW_BENCH_REDIS)");
      break;
    }
    auto v = redis->Fetch(keys[i++ & (keys.size() - 1)].substr(sizeof(kRedisPrefix) - 1));
    if (!v.ok()) state.SkipWithError(v.status().ToString().c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_RedisGetPerKey)->Threads(kWorkers)->UseRealTime();
BENCHMARK(BM_RedisMget)->Arg(1)->Arg(3)->Arg(8)->Arg(32)->Threads(kWorkers)->UseRealTime();
BENCHMARK(BM_RedisCacheFetch)->Threads(kWorkers)->UseRealTime();

// --- Batched lookups end to end: a prototype, for this measurement only ---
//
// A WorkerPool whose workers take each popped batch (up to 32 messages), answer what they can
// from the LRU, fetch the L1 misses from Redis, write them into the LRU, enrich, publish and
// ack. The two variants differ only in the round trips: one GET per missed key, or one MGET
// for all of a batch's misses. Same LRU (90 % of the devices), same broker, same workers.
struct ProtoStats {
  std::atomic<std::uint64_t> round_trips{0};
  std::atomic<std::uint64_t> keys{0};
  std::atomic<std::uint64_t> errors{0};
};

template <bool kMget>
class ProtoService {
 public:
  ProtoService(std::shared_ptr<mp::MessageConsumer> consumer, mp::AsyncMessageProcessor publish,
               std::string addr, Lru* lru, ProtoStats* stats, int workers)
      : publish_(std::move(publish)),
        addr_(std::move(addr)),
        lru_(lru),
        stats_(stats),
        pool_("proto", std::move(consumer), workers, &policy_) {}

  absl::Status Start() {
    return pool_.Start({.handle_batch = [this](std::span<mp::Message> b) { HandleBatch(b); }});
  }
  absl::Status Stop(std::chrono::steady_clock::duration timeout) {
    return pool_.Stop(std::chrono::steady_clock::now() + timeout);
  }

 private:
  void HandleBatch(std::span<mp::Message> batch) {
    std::vector<std::optional<std::string>> keys(batch.size());
    std::vector<std::optional<Device>> values(batch.size());
    std::vector<std::size_t> missed;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      keys[i] = extract_(batch[i]);
      if (!keys[i]) continue;
      auto hit = lru_->Fetch(*keys[i]);
      if (hit.ok()) {
        values[i] = *std::move(hit);
      } else {
        missed.push_back(i);
      }
    }
    if (!missed.empty()) FetchMissed(keys, missed, values);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (values[i]) apply_(batch[i], *values[i]);
      std::promise<absl::Status> published;
      publish_(batch[i], [&published](absl::Status s) { published.set_value(std::move(s)); });
      if (published.get_future().get().ok()) {
        batch[i].Ack();
      } else {
        batch[i].Nack();
      }
    }
  }

  void FetchMissed(const std::vector<std::optional<std::string>>& keys,
                   const std::vector<std::size_t>& missed,
                   std::vector<std::optional<Device>>& values) {
    thread_local Context conn;  // one connection per worker, like a pool of kWorkers
    if (conn == nullptr) conn = ConnectTo(addr_);
    if (conn == nullptr) {
      stats_->errors.fetch_add(missed.size(), std::memory_order_relaxed);
      return;
    }
    std::vector<std::string> redis_keys;
    for (std::size_t i : missed) redis_keys.push_back(kRedisPrefix + *keys[i]);
    auto store = [&](std::size_t i, const redisReply* r) {
      absl::StatusOr<Device> value = absl::UnavailableError("no reply");
      if (r != nullptr && r->type == REDIS_REPLY_STRING) {
        value = cache::JsonCodec<Device>::Decode(std::string_view(r->str, r->len));
      }
      if (!value.ok()) {
        stats_->errors.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      lru_->Write(*keys[i], *value);
      values[i] = *std::move(value);
    };
    if constexpr (kMget) {
      std::vector<const char*> argv{"MGET"};
      std::vector<size_t> lens{4};
      for (const auto& k : redis_keys) {
        argv.push_back(k.data());
        lens.push_back(k.size());
      }
      auto* r = static_cast<redisReply*>(
          redisCommandArgv(conn.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
      if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == missed.size()) {
        for (std::size_t j = 0; j < missed.size(); ++j) store(missed[j], r->element[j]);
      } else {
        stats_->errors.fetch_add(missed.size(), std::memory_order_relaxed);
      }
      if (r != nullptr) freeReplyObject(r);
      stats_->round_trips.fetch_add(1, std::memory_order_relaxed);
    } else {
      for (std::size_t j = 0; j < missed.size(); ++j) {
        const std::string& k = redis_keys[j];
        auto* r = static_cast<redisReply*>(redisCommand(conn.get(), "GET %b", k.data(), k.size()));
        store(missed[j], r);
        if (r != nullptr) freeReplyObject(r);
      }
      stats_->round_trips.fetch_add(missed.size(), std::memory_order_relaxed);
    }
    stats_->keys.fetch_add(missed.size(), std::memory_order_relaxed);
  }

  const mp::AsyncMessageProcessor publish_;
  const std::string addr_;
  Lru* const lru_;
  ProtoStats* const stats_;
  const KeyExtractor<std::string> extract_ = JsonPayloadKey("deviceId");
  const Applier<Device> apply_ = JsonApplier<Device>();
  mp::ServiceCounters counters_;
  // The pool nacks and counts what it cannot hand to HandleBatch through this.
  mp::DeliveryPolicy policy_{mp::DeliveryPolicyOptions{.source = "proto"}, &counters_};
  mp::WorkerPool pool_;  // last: its threads use everything above
};

template <bool kMget>
void BM_ProtoBatchLookups(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  const char* addr = RedisAddr(state);
  if (addr == nullptr || !EnsureLoaded(state)) return;
  // No fallback: a miss is NotFound and the worker asks Redis itself.
  std::shared_ptr<Lru> lru = *Lru::Create({.max_size = kDevices * 9 / 10});
  DeviceTable table;
  for (int i = 0; i < kDevices; ++i) lru->Write(DeviceId(i), *table.Fetch(DeviceId(i)));
  ProtoStats stats;
  const auto before = lru->Stats();
  RunPipeline(
      state,
      [&](std::shared_ptr<mp::MessageConsumer> consumer, mp::AsyncMessageProcessor publish) {
        return absl::StatusOr<std::unique_ptr<ProtoService<kMget>>>(
            std::make_unique<ProtoService<kMget>>(std::move(consumer), std::move(publish), addr,
                                                  lru.get(), &stats, workers));
      },
      {.redis = true});
  if (stats.errors.load() != 0) state.SkipWithError("Redis lookups failed");
  const auto after = lru->Stats();
  const double hits = static_cast<double>(after.hits - before.hits);
  const double misses = static_cast<double>(after.misses - before.misses);
  state.counters["l1_hit_ratio"] = hits / (hits + misses);
  state.counters["keys_per_round_trip"] =
      static_cast<double>(stats.keys.load()) / static_cast<double>(stats.round_trips.load());
}

void BM_ProtoBatchGet(benchmark::State& state) { BM_ProtoBatchLookups<false>(state); }
void BM_ProtoBatchMget(benchmark::State& state) { BM_ProtoBatchLookups<true>(state); }
BENCHMARK(BM_ProtoBatchGet)
    ->Arg(kWorkers)
    ->Arg(2 * kWorkers)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProtoBatchMget)->Arg(kWorkers)->UseRealTime()->Unit(benchmark::kMillisecond);

// Collects items/s and counters (medians when repeated) and prints the figures and ratios.
class Summary : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.error_occurred) continue;
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
      std::string name = run.run_name.function_name;
      if (!run.run_name.args.empty()) name += "/" + run.run_name.args;
      // Single repetitions are overwritten by the median when it comes.
      for (const auto& [counter, value] : run.counters) figures_[name][counter] = value.value;
    }
  }

  void Print() const {
    std::printf(
        "\n== messages/s (median), %d workers, in-process broker in and out; CPU per message "
        "(this process + redis-server) ==\n",
        kWorkers);
    const double base = Get("BM_BaselineNoOpStage", "items_per_second");
    struct Row {
      const char* label;
      const char* name;
    };
    for (const Row& row : {Row{"(c)  StreamingService, no-op stage", "BM_BaselineNoOpStage"},
                           Row{"(a)  all-hit L1 (LRU warm)        ", "BM_EnrichAllHitL1"},
                           Row{"(b)  90 % L1 / 10 % Redis         ", "BM_EnrichL1Miss10Redis/5"},
                           Row{"(b') 90 % L1 / 10 % free L2       ", "BM_EnrichL1Miss10FreeL2"},
                           Row{"(b10) as (b), 10 workers          ", "BM_EnrichL1Miss10Redis/10"},
                           Row{"(p1) prototype, GET per miss      ", "BM_ProtoBatchGet/5"},
                           Row{"(p2) prototype, MGET per batch    ", "BM_ProtoBatchMget/5"},
                           Row{"(p10) as (p1), 10 workers         ", "BM_ProtoBatchGet/10"}}) {
      const double rate = Get(row.name, "items_per_second");
      if (rate <= 0) continue;
      std::printf("  %s %8.0f msg/s  ratio to (c) %.2f  cpu %5.1f + %4.1f us/msg", row.label, rate,
                  base > 0 ? rate / base : 0.0, Get(row.name, "cpu_us_per_msg"),
                  Get(row.name, "redis_cpu_us_per_msg"));
      if (const double hit = Get(row.name, "l1_hit_ratio"); hit > 0) {
        std::printf("  L1 hits %.3f", hit);
      }
      if (const double k = Get(row.name, "keys_per_round_trip"); k > 0) {
        std::printf("  keys/round trip %.1f", k);
      }
      std::printf("\n");
    }
    const double redis = Get("BM_EnrichL1Miss10Redis/5", "items_per_second");
    const double free_l2 = Get("BM_EnrichL1Miss10FreeL2", "items_per_second");
    if (redis > 0 && free_l2 > 0) {
      std::printf("  the most faster Redis lookups (batched or not) could win: (b')/(b) = %.2f\n",
                  free_l2 / redis);
    }
    const double p1 = Get("BM_ProtoBatchGet/5", "items_per_second");
    const double p2 = Get("BM_ProtoBatchMget/5", "items_per_second");
    if (p1 > 0 && p2 > 0) {
      const auto cpu = [&](const char* n) {
        return Get(n, "cpu_us_per_msg") + Get(n, "redis_cpu_us_per_msg");
      };
      std::printf("  MGET vs GET in the prototype: msg/s %.2f, CPU per message %.2f\n", p2 / p1,
                  cpu("BM_ProtoBatchMget/5") / cpu("BM_ProtoBatchGet/5"));
    }

    std::printf("\n== Redis keys/s from %d threads (median) ==\n", kWorkers);
    const double get = Get("BM_RedisGetPerKey", "items_per_second");
    if (get > 0) std::printf("  GET per key (hiredis)          %10.0f keys/s\n", get);
    for (int k : {1, 3, 8, 32}) {
      const double mget = Get("BM_RedisMget/" + std::to_string(k), "items_per_second");
      if (mget <= 0) continue;
      std::printf("  MGET of %2d keys (hiredis)      %10.0f keys/s  ratio to GET %.2f\n", k, mget,
                  get > 0 ? mget / get : 0.0);
    }
    const double fetch = Get("BM_RedisCacheFetch", "items_per_second");
    if (fetch > 0) {
      std::printf("  RedisCache::Fetch per key      %10.0f keys/s  ratio to GET %.2f\n", fetch,
                  get > 0 ? fetch / get : 0.0);
    }
    if (redis > 0 && fetch > 0) {
      const double asked = redis * (1 - Get("BM_EnrichL1Miss10Redis/5", "l1_hit_ratio"));
      std::printf("  (b) asks Redis for %.0f keys/s: %.0f %% of what per-key fetches sustain\n",
                  asked, 100.0 * asked / fetch);
    }
  }

 private:
  double Get(const std::string& name, const std::string& counter) const {
    auto it = figures_.find(name);
    if (it == figures_.end()) return 0;
    auto c = it->second.find(counter);
    return c == it->second.end() ? 0 : c->second;
  }
  std::map<std::string, std::map<std::string, double>> figures_;
};

}  // namespace
}  // namespace dataflow::enrichment

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dataflow::enrichment::Summary summary;
  benchmark::RunSpecifiedBenchmarks(&summary);
  summary.Print();
  benchmark::Shutdown();
  return 0;
}
