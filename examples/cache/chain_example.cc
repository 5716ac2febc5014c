// The package docs' chain, in C++: InMemoryLruCache -> RedisCache -> Firestore.
// Needs a Redis at $REDIS_ADDR (default localhost:6379) and Firestore (set
// FIRESTORE_EMULATOR_HOST for the emulator) with project $GOOGLE_CLOUD_PROJECT.
#include <cstdlib>
#include <iostream>
#include <string>

#include "dataflow/cache/firestore.h"
#include "dataflow/cache/lru_cache.h"
#include "dataflow/cache/redis_cache.h"

struct UserProfile {
  std::string name;
  std::string email;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(UserProfile, name, email)

int main() {
  namespace cache = dataflow::cache;
  using namespace std::chrono_literals;
  const char* redis_addr = std::getenv("REDIS_ADDR");

  // Layer 3: the source of truth.
  auto firestore = cache::Firestore<std::string, UserProfile>::Create(
      {.project_id = "", .collection_name = "users"});  // project from GOOGLE_CLOUD_PROJECT
  if (!firestore.ok()) {
    std::cerr << "firestore: " << firestore.status() << "\n";
    return 1;
  }
  // Layer 2: Redis, falling back to Firestore; values written back with a 1 h TTL.
  auto redis = cache::RedisCache<std::string, UserProfile>::Create(
      {.addr = redis_addr != nullptr ? redis_addr : "localhost:6379", .cache_ttl = 1h},
      std::shared_ptr<cache::Fetcher<std::string, UserProfile>>(*std::move(firestore)));
  if (!redis.ok()) {
    std::cerr << "redis: " << redis.status() << "\n";
    return 1;
  }
  // Layer 1: the in-memory LRU, falling back to Redis.
  auto lru = cache::InMemoryLruCache<std::string, UserProfile>::Create(
      {.max_size = 10000},
      std::shared_ptr<cache::Fetcher<std::string, UserProfile>>(*std::move(redis)));
  if (!lru.ok()) {
    std::cerr << "lru: " << lru.status() << "\n";
    return 1;
  }

  // The service only sees the top of the chain.
  absl::StatusOr<UserProfile> user = (*lru)->Fetch("user-123");
  if (absl::IsNotFound(user.status())) {
    std::cout << "user-123 does not exist\n";
  } else if (!user.ok()) {
    std::cerr << "fetch failed: " << user.status() << "\n";
    return 1;
  } else {
    std::cout << user->name << " <" << user->email << ">\n";
  }
  return 0;
}
