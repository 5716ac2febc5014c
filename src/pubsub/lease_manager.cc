#include "lease_manager.h"

namespace dataflow::pubsub {

void LeaseManager::Add(const std::string& ack_id, std::size_t bytes) {
  const auto now = Now();
  std::lock_guard lock(mu_);
  leases_[ack_id] = Lease{.received = now,
                          .next_extension = now + options_.ack_deadline / 2,
                          .expires = now + options_.ack_deadline,
                          .bytes = bytes};
}

bool LeaseManager::MarkHandedOut(const std::string& ack_id) {
  std::lock_guard lock(mu_);
  auto it = leases_.find(ack_id);
  if (it == leases_.end()) return false;
  it->second.handed_out = true;
  return true;
}

std::optional<LeaseManager::Lease> LeaseManager::Remove(const std::string& ack_id) {
  std::lock_guard lock(mu_);
  auto it = leases_.find(ack_id);
  if (it == leases_.end()) return std::nullopt;
  Lease out = it->second;
  leases_.erase(it);
  return out;
}

LeaseManager::Due LeaseManager::Tick() {
  const auto now = Now();
  Due due;
  std::lock_guard lock(mu_);
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (now - it->second.received > options_.max_lease_extension) {
      // Let the server redeliver it; a later settle of this copy is ignored.
      if (it->second.handed_out) {
        ++due.released_messages;
        due.released_bytes += it->second.bytes;
      }
      it = leases_.erase(it);
      continue;
    }
    if (it->second.next_extension <= now) {
      due.extend.push_back(LeasedId{it->first, it->second.expires});
      it->second.next_extension = now + options_.ack_deadline / 2;
    }
    ++it;
  }
  return due;
}

std::vector<LeasedId> LeaseManager::TakeAll() {
  std::lock_guard lock(mu_);
  std::vector<LeasedId> out;
  out.reserve(leases_.size());
  for (auto& [id, lease] : leases_) out.push_back(LeasedId{id, lease.expires});
  leases_.clear();
  return out;
}

void LeaseManager::Apply(const ExtensionResult& result) {
  std::lock_guard lock(mu_);
  for (const auto& id : result.ids) {
    auto it = leases_.find(id);
    if (it == leases_.end()) continue;
    if (result.confirmed) {
      it->second.expires = result.at + options_.ack_deadline;
    } else {
      it->second.next_extension = result.at;
    }
  }
}

std::size_t LeaseManager::size() const {
  std::lock_guard lock(mu_);
  return leases_.size();
}

std::optional<LeaseManager::Lease> LeaseManager::Find(const std::string& ack_id) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(ack_id);
  if (it == leases_.end()) return std::nullopt;
  return it->second;
}

}  // namespace dataflow::pubsub
