// Firestore as the source of truth at the end of a fetcher chain, and FirestorePresenceCache.
//
// Firestore<K,V> reads the document KeyString(key) from FirestoreOptions::collection_name
// over the gRPC Firestore API and decodes its fields into V through JSON (map -> object,
// array -> array, scalars -> JSON scalars; timestamps become RFC 3339 strings, bytes
// base64, geo points {"latitude","longitude"}), so any V with nlohmann from_json works.
// A missing document is NotFound; RPC failures keep their gRPC code. FIRESTORE_EMULATOR_HOST,
// when set, points the channel at an emulator (no credentials). Thread-safe; one channel
// shared by all callers.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dataflow/cache/codec.h"
#include "dataflow/cache/fetcher.h"

namespace dataflow::cache {

struct FirestoreOptions {
  std::string project_id;  // empty: $GOOGLE_CLOUD_PROJECT
  std::string collection_name;
  std::string database_id = "(default)";
  // host:port overriding FIRESTORE_EMULATOR_HOST and the public endpoint (plaintext if
  // `insecure`); normally empty.
  std::string endpoint;
  bool insecure = false;
  std::chrono::milliseconds timeout{10000};  // per RPC
};

// Documents of one collection as JSON objects: the seam between the typed caches and gRPC.
class FirestoreDocumentStub {
 public:
  virtual ~FirestoreDocumentStub() = default;
  // The document's fields as a JSON object; NotFound if the document does not exist.
  virtual absl::StatusOr<nlohmann::json> Get(std::string_view id) = 0;
  // Creates or replaces the document with these fields (`fields` must be an object).
  virtual absl::Status Set(std::string_view id, const nlohmann::json& fields) = 0;
  // Deleting an absent document is OK.
  virtual absl::Status Delete(std::string_view id) = 0;
};

// Validates the config and creates the channel (lazily connecting).
absl::StatusOr<std::shared_ptr<FirestoreDocumentStub>> MakeFirestoreDocumentStub(
    const FirestoreOptions& config);

template <typename K, typename V>
class Firestore final : public Fetcher<K, V> {
 public:
  static absl::StatusOr<std::unique_ptr<Firestore>> Create(const FirestoreOptions& config) {
    auto stub = MakeFirestoreDocumentStub(config);
    if (!stub.ok()) return stub.status();
    return Create(*std::move(stub));
  }
  static absl::StatusOr<std::unique_ptr<Firestore>> Create(
      std::shared_ptr<FirestoreDocumentStub> stub) {
    if (stub == nullptr) return absl::InvalidArgumentError("Firestore: stub is null");
    return std::unique_ptr<Firestore>(new Firestore(std::move(stub)));
  }
  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    auto fields = stub_->Get(KeyString(key));
    if (!fields.ok()) return fields.status();
    return JsonCodec<V>::FromJson(*fields);
  }
  absl::Status Close() override {
    closed_.store(true, std::memory_order_release);
    return absl::OkStatus();
  }

 private:
  explicit Firestore(std::shared_ptr<FirestoreDocumentStub> stub) : stub_(std::move(stub)) {}
  const std::shared_ptr<FirestoreDocumentStub> stub_;
  std::atomic<bool> closed_{false};
};

// PresenceCache in a Firestore collection: V must encode to a JSON object (the document's
// fields). For deployments without Redis. Thread-safe.
template <typename K, typename V>
class FirestorePresenceCache final : public PresenceCache<K, V> {
 public:
  static absl::StatusOr<std::unique_ptr<FirestorePresenceCache>> Create(
      const FirestoreOptions& config) {
    auto stub = MakeFirestoreDocumentStub(config);
    if (!stub.ok()) return stub.status();
    return std::unique_ptr<FirestorePresenceCache>(new FirestorePresenceCache(*std::move(stub)));
  }
  absl::Status Set(const K& key, const V& value) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    nlohmann::json fields;
    try {
      fields = value;
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(std::string("presence: cannot encode value: ") + e.what());
    }
    return stub_->Set(KeyString(key), fields);
  }
  absl::StatusOr<V> Fetch(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    auto fields = stub_->Get(KeyString(key));
    if (!fields.ok()) return fields.status();
    return JsonCodec<V>::FromJson(*fields);
  }
  absl::Status Delete(const K& key) override {
    if (closed_.load(std::memory_order_acquire)) return ClosedError();
    return stub_->Delete(KeyString(key));
  }
  absl::Status Close() override {
    closed_.store(true, std::memory_order_release);
    return absl::OkStatus();
  }

 private:
  explicit FirestorePresenceCache(std::shared_ptr<FirestoreDocumentStub> stub)
      : stub_(std::move(stub)) {}
  const std::shared_ptr<FirestoreDocumentStub> stub_;
  std::atomic<bool> closed_{false};
};

}  // namespace dataflow::cache
