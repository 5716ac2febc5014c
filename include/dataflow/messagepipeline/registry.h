// Factories by name: how a program picks a backend ("pubsub", "sqlite", "gcs", ...) named in
// its configuration without knowing every backend. Each package registers its own backends
// once; an unknown name is an error that lists the names this build knows.
//
//   Registry<std::shared_ptr<Uploader>, const ArchiveConfig&> archives("archive");
//   archives.Register("local", [](const ArchiveConfig& c) { return MakeLocal(c); });
//   auto uploader = archives.Create("local", config);  // or NotFound naming "local"'s peers
//
// Thread-safety: register before use; Create and Names from any thread afterwards.
#pragma once

#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dataflow::messagepipeline {

template <typename Product, typename... Args>
class Registry {
 public:
  using Factory = std::function<absl::StatusOr<Product>(Args...)>;

  // `what` names the kind of backend in errors ("source backend"); `missing_hint` is appended
  // to the error for an unknown name (e.g. which build has the others).
  explicit Registry(std::string what, std::string missing_hint = "")
      : what_(std::move(what)), missing_hint_(std::move(missing_hint)) {}

  // Adds or replaces the factory of `name`.
  void Register(std::string name, Factory factory) {
    factories_[std::move(name)] = std::move(factory);
  }
  // Forgets `name` (a build or test without that backend).
  void Unregister(const std::string& name) { factories_.erase(name); }

  [[nodiscard]] bool Has(std::string_view name) const {
    return factories_.find(name) != factories_.end();
  }
  // The registered names, sorted.
  [[nodiscard]] std::vector<std::string> Names() const {
    std::vector<std::string> names;
    for (const auto& [name, factory] : factories_) names.push_back(name);
    return names;
  }

  // What the factory of `name` makes; NotFound listing the known names if there is none.
  absl::StatusOr<Product> Create(std::string_view name, Args... args) const {
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::string message = absl::StrCat(
          "unknown ", what_, " \"", std::string(name),
          "\" (this build has: ", factories_.empty() ? "none" : absl::StrJoin(Names(), ", "), ")");
      if (!missing_hint_.empty()) absl::StrAppend(&message, "; ", missing_hint_);
      return absl::NotFoundError(message);
    }
    return it->second(std::forward<Args>(args)...);
  }

 private:
  std::string what_;
  std::string missing_hint_;
  std::map<std::string, Factory, std::less<>> factories_;
};

}  // namespace dataflow::messagepipeline
