// Attributes: a message's string key/value pairs, with std::map's read interface.
//
// Copies share their entries until one of them changes (copy on write): a message's
// attributes are copied at every hop (into each delivery of a published message, into the
// envelope and the row it becomes) and hardly ever changed, and copying a std::map of
// strings was most of what those hops cost. Reads never copy. Iterators and references
// are const: entries change only through operator[], emplace, try_emplace, insert,
// insert_or_assign, erase and clear, which first take a private copy when the entries are
// shared. Thread-safety is std::map's: concurrent reads of one Attributes are safe, and
// copies may be used and changed on different threads as if they were independent.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace dataflow::messagepipeline {

class Attributes {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  using key_type = Map::key_type;
  using mapped_type = Map::mapped_type;
  using value_type = Map::value_type;
  using size_type = Map::size_type;
  using const_iterator = Map::const_iterator;
  using iterator = const_iterator;  // entries change through the writers, never in place

  Attributes() noexcept = default;
  Attributes(std::initializer_list<value_type> entries) {
    if (entries.size() != 0) Mutable().insert(entries);
  }
  template <typename InputIt>
  Attributes(InputIt first, InputIt last) {
    if (first != last) Mutable().insert(first, last);
  }
  explicit Attributes(Map entries) {
    if (!entries.empty()) rep_ = new Rep(std::move(entries));
  }
  Attributes(const Attributes& other) noexcept : rep_(other.rep_) {
    if (rep_ != nullptr) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  Attributes(Attributes&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  Attributes& operator=(const Attributes& other) noexcept {
    Attributes(other).swap(*this);
    return *this;
  }
  Attributes& operator=(Attributes&& other) noexcept {
    Attributes(std::move(other)).swap(*this);
    return *this;
  }
  ~Attributes() { Release(); }
  void swap(Attributes& other) noexcept { std::swap(rep_, other.rep_); }

  // Reads.
  [[nodiscard]] const Map& map() const noexcept { return rep_ != nullptr ? rep_->map : Empty(); }
  [[nodiscard]] const_iterator begin() const noexcept { return map().begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return map().end(); }
  [[nodiscard]] const_iterator cbegin() const noexcept { return begin(); }
  [[nodiscard]] const_iterator cend() const noexcept { return end(); }
  [[nodiscard]] size_type size() const noexcept { return map().size(); }
  [[nodiscard]] bool empty() const noexcept { return map().empty(); }
  template <typename Key>
  [[nodiscard]] const_iterator find(const Key& key) const {
    return map().find(key);
  }
  template <typename Key>
  [[nodiscard]] size_type count(const Key& key) const {
    return map().count(key);
  }
  template <typename Key>
  [[nodiscard]] bool contains(const Key& key) const {
    return map().contains(key);
  }
  template <typename Key>
  [[nodiscard]] const mapped_type& at(const Key& key) const {
    auto it = map().find(key);
    if (it == map().end()) throw std::out_of_range("Attributes::at: no such key");
    return it->second;
  }

  // Writes: each takes a private copy of the entries first when they are shared.
  mapped_type& operator[](std::string_view key) {
    Map& m = Mutable();
    auto it = m.find(key);
    if (it == m.end()) it = m.emplace(std::string(key), std::string()).first;
    return it->second;
  }
  template <typename... Args>
  std::pair<const_iterator, bool> emplace(Args&&... args) {
    return Mutable().emplace(std::forward<Args>(args)...);
  }
  template <typename... Args>
  std::pair<const_iterator, bool> try_emplace(key_type key, Args&&... args) {
    return Mutable().try_emplace(std::move(key), std::forward<Args>(args)...);
  }
  std::pair<const_iterator, bool> insert(value_type entry) {
    return Mutable().insert(std::move(entry));
  }
  template <typename Value>
  std::pair<const_iterator, bool> insert_or_assign(key_type key, Value&& value) {
    return Mutable().insert_or_assign(std::move(key), std::forward<Value>(value));
  }
  template <typename Key>
  size_type erase(const Key& key) {
    if (!contains(key)) return 0;  // no copy for nothing
    Map& m = Mutable();
    auto it = m.find(key);
    m.erase(it);
    return 1;
  }
  void clear() noexcept { Release(); }

  friend bool operator==(const Attributes& a, const Attributes& b) {
    return a.rep_ == b.rep_ || a.map() == b.map();
  }

 private:
  struct Rep {
    explicit Rep(Map entries) : map(std::move(entries)) {}
    std::atomic<std::size_t> refs{1};
    Map map;
  };

  static const Map& Empty() noexcept {
    static const Map empty;
    return empty;
  }
  // The acquire pairs with the release of every other copy's Release(): their reads of the
  // entries happen before this copy changes them in place.
  Map& Mutable() {
    if (rep_ == nullptr) {
      rep_ = new Rep(Map{});
    } else if (rep_->refs.load(std::memory_order_acquire) != 1) {
      Rep* own = new Rep(rep_->map);
      Release();
      rep_ = own;
    }
    return rep_->map;
  }
  void Release() noexcept {
    if (rep_ != nullptr && rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete rep_;
    rep_ = nullptr;
  }

  Rep* rep_ = nullptr;
};

}  // namespace dataflow::messagepipeline
