#include "dataflow/cache/firestore.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/time/time.h>
#include <google/firestore/v1/firestore.grpc.pb.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <limits>

#include "dataflow/cache/firestore_value.h"
#include "dataflow/gcp/channel.h"
#include "dataflow/gcp/project.h"
#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::cache {

namespace fs = ::google::firestore::v1;

namespace {

absl::StatusOr<nlohmann::json> FieldsToJson(
    const google::protobuf::Map<std::string, fs::Value>& fields, int depth);

// `depth`: the containers around `value`. Documents are outside data and protobuf nests up
// to its own recursion limit, so the JSON is held to the cache's value limit (a map or
// array beyond it is refused before it is built, as ParseJsonBounded does for text).
absl::StatusOr<nlohmann::json> ValueToJson(const fs::Value& value, int depth) {
  const bool container = value.value_type_case() == fs::Value::kArrayValue ||
                         value.value_type_case() == fs::Value::kMapValue ||
                         value.value_type_case() == fs::Value::kGeoPointValue;
  if (container && depth + 1 > kCacheValueJsonLimits.max_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("firestore: value nested deeper than the limit of ",
                     kCacheValueJsonLimits.max_depth, " levels"));
  }
  switch (value.value_type_case()) {
    case fs::Value::kNullValue:
    case fs::Value::VALUE_TYPE_NOT_SET:
      return nullptr;
    case fs::Value::kBooleanValue:
      return value.boolean_value();
    case fs::Value::kIntegerValue:
      return value.integer_value();
    case fs::Value::kDoubleValue:
      return value.double_value();
    case fs::Value::kTimestampValue: {
      const absl::Time t = absl::FromUnixSeconds(value.timestamp_value().seconds()) +
                           absl::Nanoseconds(value.timestamp_value().nanos());
      return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
    }
    case fs::Value::kStringValue:
      return value.string_value();
    case fs::Value::kBytesValue:
      return absl::Base64Escape(value.bytes_value());
    case fs::Value::kReferenceValue:
      return value.reference_value();
    case fs::Value::kGeoPointValue:
      return nlohmann::json{{"latitude", value.geo_point_value().latitude()},
                            {"longitude", value.geo_point_value().longitude()}};
    case fs::Value::kArrayValue: {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& v : value.array_value().values()) {
        auto j = ValueToJson(v, depth + 1);
        if (!j.ok()) return j.status();
        array.push_back(*std::move(j));
      }
      return array;
    }
    case fs::Value::kMapValue:
      return FieldsToJson(value.map_value().fields(), depth + 1);
    default:
      return absl::InvalidArgumentError(absl::StrCat("firestore: value kind ",
                                                     static_cast<int>(value.value_type_case()),
                                                     " has no JSON form"));
  }
}

// `depth`: the containers around the fields, the object they make included.
absl::StatusOr<nlohmann::json> FieldsToJson(
    const google::protobuf::Map<std::string, fs::Value>& fields, int depth) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [name, v] : fields) {
    auto j = ValueToJson(v, depth);
    if (!j.ok()) {
      return absl::Status(j.status().code(),
                          absl::StrCat("field \"", name, "\": ", j.status().message()));
    }
    object[name] = *std::move(j);
  }
  return object;
}

}  // namespace

absl::StatusOr<nlohmann::json> FirestoreValueToJson(const fs::Value& value) {
  return ValueToJson(value, 0);
}

absl::StatusOr<nlohmann::json> FirestoreFieldsToJson(
    const google::protobuf::Map<std::string, fs::Value>& fields) {
  return FieldsToJson(fields, 1);
}

absl::StatusOr<fs::Value> JsonToFirestoreValue(const nlohmann::json& json) {
  fs::Value value;
  switch (json.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      value.set_null_value(google::protobuf::NULL_VALUE);
      break;
    case nlohmann::json::value_t::boolean:
      value.set_boolean_value(json.get<bool>());
      break;
    case nlohmann::json::value_t::number_integer:
      value.set_integer_value(json.get<std::int64_t>());
      break;
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = json.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("firestore: integer ", u, " does not fit a 64-bit signed integer"));
      }
      value.set_integer_value(static_cast<std::int64_t>(u));
      break;
    }
    case nlohmann::json::value_t::number_float:
      value.set_double_value(json.get<double>());
      break;
    case nlohmann::json::value_t::string:
      value.set_string_value(json.get_ref<const std::string&>());
      break;
    case nlohmann::json::value_t::binary: {
      const auto& b = json.get_binary();
      value.set_bytes_value(std::string(b.begin(), b.end()));
      break;
    }
    case nlohmann::json::value_t::array:
      for (const auto& element : json) {
        if (element.is_array()) {
          return absl::InvalidArgumentError("firestore: an array cannot directly contain an array");
        }
        auto v = JsonToFirestoreValue(element);
        if (!v.ok()) return v.status();
        *value.mutable_array_value()->add_values() = *std::move(v);
      }
      value.mutable_array_value();  // an empty array is still an array
      break;
    case nlohmann::json::value_t::object:
      if (absl::Status s = JsonToFirestoreFields(json, value.mutable_map_value()->mutable_fields());
          !s.ok()) {
        return s;
      }
      break;
  }
  return value;
}

absl::Status JsonToFirestoreFields(const nlohmann::json& json,
                                   google::protobuf::Map<std::string, fs::Value>* fields) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("firestore: document fields must be a JSON object, got ", json.type_name()));
  }
  for (const auto& [name, element] : json.items()) {
    auto v = JsonToFirestoreValue(element);
    if (!v.ok()) {
      return absl::Status(v.status().code(),
                          absl::StrCat("field \"", name, "\": ", v.status().message()));
    }
    (*fields)[name] = *std::move(v);
  }
  return absl::OkStatus();
}

namespace {

// Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as Firestore
// requires of document ids.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// Firestore's rules for a document id. Ids come from device data (a cache key), so one that
// breaks them is refused before any request, as a permanent error: no retry can make the
// lookup succeed. The id is quoted escaped and cut short: it is untrusted bytes.
absl::Status ValidateDocumentId(std::string_view id) {
  const char* why = nullptr;
  if (id.empty()) {
    why = "empty";
  } else if (id == "." || id == "..") {
    why = "'.' and '..' are not allowed";
  } else if (id.find('/') != std::string_view::npos) {
    why = "contains '/'";
  } else if (id.size() > 1500) {
    why = "longer than 1500 bytes";
  } else if (id.size() >= 4 && id.starts_with("__") && id.ends_with("__")) {
    why = "ids matching __.*__ are reserved";
  } else if (!IsValidUtf8(id)) {
    why = "not valid UTF-8";
  }
  if (why == nullptr) return absl::OkStatus();
  const std::string_view shown = id.substr(0, 64);
  return messagepipeline::PermanentError(
      absl::StrCat("firestore: \"", absl::CHexEscape(absl::string_view(shown.data(), shown.size())),
                   id.size() > shown.size() ? "..." : "", "\" is not a valid document id: ", why));
}

class GrpcFirestoreStub final : public FirestoreDocumentStub {
 public:
  GrpcFirestoreStub(FirestoreConfig config, std::string prefix,
                    std::shared_ptr<grpc::Channel> channel)
      : config_(std::move(config)),
        prefix_(std::move(prefix)),
        stub_(fs::Firestore::NewStub(std::move(channel))) {}

  absl::StatusOr<nlohmann::json> Get(std::string_view id) override {
    if (absl::Status s = ValidateDocumentId(id); !s.ok()) return s;
    fs::GetDocumentRequest request;
    request.set_name(Name(id));
    fs::Document document;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->GetDocument(&context, request, &document);
    if (!status.ok()) {
      return gcp::FromGrpcStatus(status, absl::StrCat("firestore get ", request.name()));
    }
    auto fields = FirestoreFieldsToJson(document.fields());
    if (!fields.ok()) {
      return absl::Status(fields.status().code(),
                          absl::StrCat(request.name(), ": ", fields.status().message()));
    }
    return fields;
  }

  absl::Status Set(std::string_view id, const nlohmann::json& fields) override {
    if (absl::Status s = ValidateDocumentId(id); !s.ok()) return s;
    fs::UpdateDocumentRequest request;
    fs::Document* document = request.mutable_document();
    document->set_name(Name(id));
    if (absl::Status s = JsonToFirestoreFields(fields, document->mutable_fields()); !s.ok()) {
      return s;
    }
    // No update mask: the document is created or replaced as a whole.
    fs::Document written;
    grpc::ClientContext context;
    SetDeadline(context);
    return gcp::FromGrpcStatus(stub_->UpdateDocument(&context, request, &written),
                               absl::StrCat("firestore set ", document->name()));
  }

  absl::Status Delete(std::string_view id) override {
    if (absl::Status s = ValidateDocumentId(id); !s.ok()) return s;
    fs::DeleteDocumentRequest request;
    request.set_name(Name(id));
    google::protobuf::Empty empty;
    grpc::ClientContext context;
    SetDeadline(context);
    return gcp::FromGrpcStatus(stub_->DeleteDocument(&context, request, &empty),
                               absl::StrCat("firestore delete ", request.name()));
  }

 private:
  std::string Name(std::string_view id) const { return absl::StrCat(prefix_, std::string(id)); }
  void SetDeadline(grpc::ClientContext& context) const {
    context.set_deadline(std::chrono::system_clock::now() + config_.timeout);
  }

  const FirestoreConfig config_;
  const std::string prefix_;  // projects/P/databases/D/documents/C/
  const std::unique_ptr<fs::Firestore::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<FirestoreDocumentStub>> MakeFirestoreDocumentStub(
    const FirestoreConfig& config) {
  auto project = gcp::ResolveProjectId(config.project_id);
  if (!project.ok()) return project.status();
  if (config.collection_name.empty() || config.collection_name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        "FirestoreConfig.collection_name must be a non-empty collection id without '/'");
  }
  if (config.database_id.empty()) {
    return absl::InvalidArgumentError("FirestoreConfig.database_id must not be empty");
  }
  if (config.timeout.count() <= 0) {
    return absl::InvalidArgumentError("FirestoreConfig.timeout must be > 0");
  }
  auto channel = gcp::MakeChannel({.default_endpoint = "firestore.googleapis.com:443",
                                   .endpoint = config.endpoint,
                                   .insecure = config.insecure,
                                   .emulator_host_env = "FIRESTORE_EMULATOR_HOST"});
  if (!channel.ok()) return channel.status();
  return std::make_shared<GrpcFirestoreStub>(
      config,
      absl::StrCat("projects/", *project, "/databases/", config.database_id, "/documents/",
                   config.collection_name, "/"),
      *std::move(channel));
}

}  // namespace dataflow::cache
