#include "dataflow/cache/firestore.h"

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <google/firestore/v1/firestore.grpc.pb.h>
#include <grpcpp/client_context.h>

#include <cstdint>

#include "dataflow/cache/firestore_value.h"
#include "dataflow/gcp/channel.h"
#include "dataflow/gcp/project.h"
#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::cache {

namespace fs = ::google::firestore::v1;

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
  GrpcFirestoreStub(FirestoreOptions config, std::string prefix,
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

  const FirestoreOptions config_;
  const std::string prefix_;  // projects/P/databases/D/documents/C/
  const std::unique_ptr<fs::Firestore::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<FirestoreDocumentStub>> MakeFirestoreDocumentStub(
    const FirestoreOptions& config) {
  auto project = gcp::ResolveProjectId(config.project_id);
  if (!project.ok()) return project.status();
  if (config.collection_name.empty() || config.collection_name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        "FirestoreOptions.collection_name must be a non-empty collection id without '/'");
  }
  if (config.database_id.empty()) {
    return absl::InvalidArgumentError("FirestoreOptions.database_id must not be empty");
  }
  if (config.timeout.count() <= 0) {
    return absl::InvalidArgumentError("FirestoreOptions.timeout must be > 0");
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
